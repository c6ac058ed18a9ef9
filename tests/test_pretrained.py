"""The shipped 2-D weights: registry, manifest and hash checks, and their quality
against the exact mixture (a cheaper version of the targets in ``python -m
course_lib.recipes toy``'s docstring)."""

import json
import os
import shutil

import pytest
import torch

from course_lib import diffusion, guidance, pretrained, sample_metrics, toy
from course_lib.models import ConditionalMLP, NoisyClassifier2D

TOY = ["toy_cfg", "toy_classifier"]


@pytest.fixture(scope="module")
def cfg() -> pretrained.Pretrained:
    return pretrained.load("toy_cfg")


@pytest.fixture(scope="module")
def clf() -> pretrained.Pretrained:
    return pretrained.load("toy_classifier")


@pytest.fixture
def weights_copy(tmp_path):
    """A private copy of the shipped weights folder."""
    for name in TOY:
        shutil.copy(pretrained.WEIGHTS_DIR / f"{name}.pt", tmp_path)
    shutil.copy(pretrained.WEIGHTS_DIR / pretrained.MANIFEST, tmp_path)
    return tmp_path


def test_available_lists_the_shipped_toy_models() -> None:
    names = pretrained.available()
    assert set(TOY) <= set(names) and names == sorted(names)
    assert all(name in pretrained.REGISTRY for name in names)


def test_manifest_lists_hash_size_and_command_of_every_file() -> None:
    manifest = pretrained.read_manifest()
    for name in TOY:
        entry = manifest[f"{name}.pt"]
        path = pretrained.WEIGHTS_DIR / f"{name}.pt"
        assert entry["sha256"] == pretrained.sha256(path)
        assert entry["bytes"] == path.stat().st_size
        assert entry["command"].startswith("python -m course_lib.recipes toy")


def test_load_gives_eval_models_schedule_and_meta(cfg, clf) -> None:
    assert isinstance(cfg.model, ConditionalMLP) and isinstance(clf.model, NoisyClassifier2D)
    for p in (cfg, clf):
        assert not p.model.training and p.num_classes == 3 and p.schedule.T == 1000
        assert torch.allclose(p.schedule.betas, diffusion.make_schedule("linear", 1000).betas)
        for key in ("command", "seed", "steps", "seconds", "arch", "threads"):
            assert key in p.meta, key
        assert p.meta["command"] == pretrained.read_manifest()[f"{p.name}.pt"]["command"]
    assert cfg.meta["arch"] == {"num_classes": 3, "T": 1000, "width": cfg.model.width, "depth": cfg.model.depth}
    x, t = torch.zeros(4, 2), torch.full((4,), 10)
    assert cfg.model(x, t, torch.tensor([0, 1, 2, 3])).shape == (4, 2)
    assert clf.model(x, t).shape == (4, 3)


def test_meta_mixture_is_the_lessons_default(cfg, clf) -> None:
    ref = toy.anisotropic()
    for p in (cfg, clf):
        mix = p.meta["mixture"]
        assert isinstance(mix, toy.GaussianMixture2D)
        for a, b in ((mix.means, ref.means), (mix.covs, ref.covs), (mix.weights, ref.weights)):
            assert torch.allclose(a, b, atol=1e-12)


def test_files_load_with_weights_only() -> None:
    for name in TOY:
        blob = torch.load(pretrained.WEIGHTS_DIR / f"{name}.pt", weights_only=True)
        assert set(blob) == {"state_dict", "meta"}
        assert all(isinstance(v, torch.Tensor) for v in blob["state_dict"].values())
        json.dumps(blob["meta"])  # plain data only


def test_unknown_name_lists_available_names() -> None:
    with pytest.raises(ValueError, match="toy_cfg"):
        pretrained.load("toy_gan")


def test_corrupt_copy_names_file_and_retrain_command(weights_copy) -> None:
    path = weights_copy / "toy_cfg.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.WeightsError, match="python -m course_lib.recipes toy") as err:
        pretrained.load("toy_cfg", root=weights_copy)
    assert str(path) in str(err.value) and "corrupt" in str(err.value)
    assert pretrained.load("toy_classifier", root=weights_copy).num_classes == 3  # the other file still loads


def test_missing_file_names_file_and_retrain_command(weights_copy) -> None:
    (weights_copy / "toy_classifier.pt").unlink()
    assert pretrained.available(root=weights_copy) == ["toy_cfg"]
    with pytest.raises(pretrained.MissingWeightsError, match="python -m course_lib.recipes toy") as err:
        pretrained.load("toy_classifier", root=weights_copy)
    assert "toy_classifier.pt" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


def test_save_round_trips_and_updates_manifest_atomically(tmp_path) -> None:
    torch.manual_seed(0)
    model = NoisyClassifier2D(3, T=100, width=8, depth=1)
    meta = {"arch": {"num_classes": 3, "T": 100, "width": 8, "depth": 1},
            "schedule": {"kind": "cosine", "T": 100}, "seed": 0, "mixture": toy.unequal_weights()}
    path = pretrained.save("toy_classifier", model, meta, command="python -m course_lib.recipes toy --seed 0",
                           root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "toy_classifier.pt"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    assert pretrained.read_manifest(tmp_path)["toy_classifier.pt"]["sha256"] == pretrained.sha256(path)
    loaded = pretrained.load("toy_classifier", root=tmp_path)
    assert loaded.meta["command"] == "python -m course_lib.recipes toy --seed 0"
    assert torch.allclose(loaded.schedule.alpha_bars, diffusion.make_schedule("cosine", 100).alpha_bars)
    assert torch.allclose(loaded.meta["mixture"].weights, toy.unequal_weights().weights)
    x, t = torch.randn(5, 2), torch.randint(0, 100, (5,))
    assert torch.equal(loaded.model(x, t), model.eval()(x, t))


def test_save_rejects_meta_that_weights_only_cannot_load(tmp_path) -> None:
    model = NoisyClassifier2D(3, T=100, width=8, depth=1)
    meta = {"arch": {"num_classes": 3, "T": 100, "width": 8, "depth": 1}, "schedule": {"kind": "linear", "T": 100}}
    with pytest.raises(ValueError, match="plain data"):
        pretrained.save("toy_classifier", model, {**meta, "fn": print}, root=tmp_path)
    with pytest.raises(ValueError, match="unknown"):
        pretrained.save("unknown", model, meta, root=tmp_path)
    assert not any(tmp_path.iterdir())


# --- quality: the learned CFG against the exact one, class by class ----------------------------

N, STEPS = 1000, 20


def _sw_and_floor(learned_fn, exact_fn, schedule, seed):
    """SW between learned and exact samples through one sampler, and the sampling-noise
    floor: SW between two independent exact sample sets of the same size."""
    draw = lambda fn, s: diffusion.sample(fn, (N, 2), schedule, steps=STEPS, eta=1.0,
                                          generator=torch.Generator().manual_seed(s))
    exact_a, exact_b = draw(exact_fn, seed + 1), draw(exact_fn, seed + 2)
    learned = draw(learned_fn, seed)
    return sample_metrics.sliced_wasserstein(learned, exact_a), sample_metrics.sliced_wasserstein(exact_a, exact_b)


@pytest.mark.parametrize("w", [0.0, 3.0])
def test_learned_cfg_matches_exact_cfg(cfg, w) -> None:
    """Within 2x the noise floor plus 5% of the data's scale, for every class. Both sides
    go through the same 20-step sampler (at w = 0 too: 20 DDIM steps of the exact
    denoiser are themselves ~0.14 from p(x | y), which would hide the model's error)."""
    mix, schedule = cfg.meta["mixture"], cfg.schedule
    scale = mix.sample(20_000, generator=torch.Generator().manual_seed(0))[0].std(0).mean().item()
    with torch.no_grad():
        for k in range(3):
            learned = guidance.model_cfg_eps_fn(cfg.model, k, w, 3)
            exact = guidance.cfg(mix.eps_fn(schedule, k), mix.eps_fn(schedule), w)
            sw, floor = _sw_and_floor(learned, exact, schedule, seed=100 * k + 7)
            assert sw < 2 * floor + 0.05 * scale, (k, w, sw, floor)


def test_classifier_is_close_to_bayes(clf) -> None:
    mix, schedule = clf.meta["mixture"], clf.schedule
    g = torch.Generator().manual_seed(0)
    x0, y = mix.sample(4000, generator=g)
    with torch.no_grad():
        for t in (0, 100, 300):
            tt = torch.full((4000,), t)
            x_t = diffusion.q_sample(x0, tt, torch.randn(4000, 2, generator=g), schedule)
            bayes = mix.noised(float(schedule.alpha_bars[t])).posterior(x_t)
            learned = torch.softmax(clf.model(x_t, tt), dim=1).double()
            agree = (learned.argmax(1) == bayes.argmax(1)).float().mean().item()
            tv = 0.5 * (learned - bayes).abs().sum(1).mean().item()
            assert agree > 0.97 and tv < 0.05, (t, agree, tv)
