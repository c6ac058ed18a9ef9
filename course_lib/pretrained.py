"""Pretrained weights shipped with the package, checked against a SHA-256 manifest::

    from course_lib import pretrained
    pretrained.available()            # ['mnist_cfg', 'mnist_classifier', 'mnist_judge', 'toy_cfg', 'toy_classifier']
    p = pretrained.load("toy_cfg")    # p.model, p.schedule, p.num_classes, p.meta
    p.model(x, t, y)                  # eps; y == p.num_classes is the null label
    p.meta["mixture"]                 # the GaussianMixture2D it learned

Each file ``weights/NAME.pt`` holds ``{"state_dict": ..., "meta": ...}`` with plain
data only (tensors, lists, numbers, strings), so ``torch.load(path,
weights_only=True)`` reads it. ``meta["arch"]`` holds the constructor arguments
of the network, ``meta["schedule"]`` the noise schedule, ``meta["command"]``
the exact command that made the file. ``weights/manifest.json`` records each
file's SHA-256 and that command; :func:`load` refuses a file whose hash differs.

To add a model (say ``mnist_cfg``), register its builder and training command
once, next to the others below::

    register("mnist_cfg", ConditionalUNet, "python -m course_lib.recipes mnist")

then write its file with :func:`save` from the training recipe.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .diffusion import Schedule, make_schedule
from .distillation import GuidanceUNet
from .files import atomic_write, sha256
from .models import ConditionalMLP, NoisyClassifier2D
from .toy import GaussianMixture2D
from .unet import ConditionalUNet, ImageClassifier, NoisyImageClassifier

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"


class WeightsError(RuntimeError):
    """A shipped weights file is missing, unlisted in the manifest, or corrupt."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """The weights file (or its manifest entry) does not exist."""


@dataclass(frozen=True)
class Entry:
    """How to rebuild one pretrained model: the network's constructor (called
    with ``meta["arch"]``) and the command that trains and writes its weights."""

    name: str
    builder: Callable[..., nn.Module]
    command: str

    @property
    def filename(self) -> str:
        return f"{self.name}.pt"


REGISTRY: dict[str, Entry] = {}


def register(name: str, builder: Callable[..., nn.Module], command: str) -> Entry:
    """Add (or replace) a registry entry; its weights live in ``weights/NAME.pt``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier such as 'toy_cfg', got {name!r}")
    REGISTRY[name] = Entry(name, builder, command)
    return REGISTRY[name]


register("toy_cfg", ConditionalMLP, "python -m course_lib.recipes toy")
register("toy_classifier", NoisyClassifier2D, "python -m course_lib.recipes toy")
register("mnist_cfg", ConditionalUNet, "python -m course_lib.recipes mnist")
register("mnist_classifier", NoisyImageClassifier, "python -m course_lib.recipes mnist")
register("mnist_judge", ImageClassifier, "python -m course_lib.recipes mnist")  # evaluation only, never guidance
register("mnist_cfg_weak", ConditionalUNet, "python -m course_lib.recipes mnist-weak")  # autoguidance's weak guide
register("mnist_cfg_distilled", GuidanceUNet, "python -m course_lib.recipes mnist-distilled")  # takes w as an input


@dataclass
class Pretrained:
    """A loaded model: ``model`` (in eval mode), its ``schedule``, ``num_classes``
    and ``meta`` (how it was trained; ``meta["mixture"]`` for 2-D models), the file it came
    from (``path``; None for a network trained in this process, which has a ``history``)."""

    name: str
    model: nn.Module
    schedule: Schedule
    num_classes: int
    meta: dict[str, Any] = field(repr=False)
    path: Path | None = field(repr=False)
    history: Any = field(default=None, repr=False)


def _root(root: str | os.PathLike | None) -> Path:
    return WEIGHTS_DIR if root is None else Path(root)


def read_manifest(root: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The manifest ``{filename: {"sha256", "bytes", "command"}}`` (empty if there is none)."""
    path = _root(root) / MANIFEST
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def available(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the registered models whose weights file is present and listed in the manifest, sorted."""
    folder = _root(root)
    listed = read_manifest(folder)
    return sorted(name for name, e in REGISTRY.items() if e.filename in listed and (folder / e.filename).is_file())


def _entry(name: str, root: str | os.PathLike | None) -> Entry:
    if name not in REGISTRY:
        raise ValueError(f"name must be one of the available models {available(root)} "
                         f"(registered: {sorted(REGISTRY)}), got {name!r}")
    return REGISTRY[name]


def verify(name: str, root: str | os.PathLike | None = None) -> Path:
    """Check ``NAME.pt`` against the manifest; return its path or raise :class:`WeightsError`
    naming the file and the command that rebuilds it."""
    entry = _entry(name, root)
    folder = _root(root)
    path = folder / entry.filename
    retrain = f"Rebuild it with:\n    {_rebuild_command(entry, folder)}"
    try:
        listed = read_manifest(folder).get(entry.filename)
    except (OSError, ValueError) as err:
        raise WeightsError(f"the manifest {folder / MANIFEST} is unreadable ({err}). {retrain}") from err
    if not path.is_file():
        raise MissingWeightsError(f"weights file for {name!r} not found: {path}. {retrain}")
    if listed is None:
        raise MissingWeightsError(f"{path.name} is not listed in {folder / MANIFEST}. {retrain}")
    digest = sha256(path)
    if digest != listed["sha256"]:
        raise WeightsError(f"weights file {path} is corrupt or was changed: its SHA-256 is {digest}, "
                           f"the manifest expects {listed['sha256']}. {retrain}")
    return path


def _rebuild_command(entry: Entry, folder: Path) -> str:
    """The command recorded in the manifest for ``entry``'s file (else the registry's), writing to
    ``folder``, where the weights are loaded from: a recorded ``--out`` is replaced."""
    try:
        listed = read_manifest(folder).get(entry.filename)
    except (OSError, ValueError):  # an unreadable manifest still gets an answer
        listed = None
    words = shlex.split(listed["command"] if listed else entry.command)
    words = [w for i, w in enumerate(words) if not (w == "--out" or w.startswith("--out=")
                                                    or (i and words[i - 1] == "--out"))]
    return shlex.join(words + ([] if folder.resolve() == WEIGHTS_DIR.resolve() else ["--out", str(folder)]))


def _mixture_to_meta(mixture: GaussianMixture2D) -> dict[str, list]:
    return {"means": mixture.means.tolist(), "covs": mixture.covs.tolist(), "weights": mixture.weights.tolist()}


def _mixture_from_meta(data: dict[str, list]) -> GaussianMixture2D:
    return GaussianMixture2D(data["means"], data["covs"], data["weights"])


def _check_plain(value: Any, where: str = "meta") -> None:
    """Raise ``ValueError`` unless ``value`` is plain data that ``weights_only`` loading accepts."""
    if value is None or type(value) in (bool, int, float, str):  # exact types: no str or int subclasses
        return
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise ValueError(f"{where} keys must be strings, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise ValueError(f"{where} must hold plain data (None, bool, int, float, str, list, dict), "
                     f"got {type(value).__name__}")


def save(name: str, model: nn.Module, meta: dict[str, Any], *, command: str | None = None,
         root: str | os.PathLike | None = None) -> Path:
    """Write ``NAME.pt`` (``state_dict`` + plain-data ``meta``) atomically and record its
    SHA-256 and ``command`` in the manifest. ``meta`` must hold ``"arch"`` (the
    builder's keyword arguments) and ``"schedule"`` (``{"kind", "T"}``); a
    ``GaussianMixture2D`` under ``"mixture"`` is stored as its means, covs and weights."""
    entry = _entry(name, root)
    folder = _root(root)
    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta["command"] = command = command or meta.get("command") or entry.command
    if isinstance(meta.get("mixture"), GaussianMixture2D):
        meta["mixture"] = _mixture_to_meta(meta["mixture"])
    for key in ("arch", "schedule"):
        if not isinstance(meta.get(key), dict):
            raise ValueError(f"meta[{key!r}] must be a dict, got {meta.get(key)!r}")
    _check_plain(meta)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = folder / entry.filename
    atomic_write(path, lambda f: torch.save({"state_dict": state, "meta": meta}, f))
    manifest = read_manifest(folder)
    manifest[entry.filename] = {"sha256": sha256(path), "bytes": path.stat().st_size, "command": command}
    manifest = dict(sorted(manifest.items()))
    atomic_write(folder / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2) + "\n"), mode="w")
    return path


def load(name: str, *, root: str | os.PathLike | None = None) -> Pretrained:
    """Load a shipped model after checking its SHA-256 against the manifest.

    Raises ``ValueError`` for an unknown ``name`` (listing the available ones) and
    :class:`WeightsError` for a missing or corrupt file (naming the file and the
    command that rebuilds it). ``root`` points at another weights folder."""
    entry = _entry(name, root)
    path = verify(name, root)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = dict(blob["meta"])
        model = entry.builder(**meta["arch"])
        model.load_state_dict(blob["state_dict"])
    except Exception as err:  # a file that hashes right but no longer fits the code
        raise WeightsError(f"could not build {name!r} from {path} ({err}). "
                           f"Rebuild it with:\n    {_rebuild_command(entry, path.parent)}") from err
    schedule = make_schedule(meta["schedule"]["kind"], meta["schedule"]["T"])
    if "mixture" in meta:
        meta["mixture"] = _mixture_from_meta(meta["mixture"])
    return Pretrained(name=name, model=model.eval(), schedule=schedule,
                      num_classes=int(meta["arch"]["num_classes"]), meta=meta, path=path)
