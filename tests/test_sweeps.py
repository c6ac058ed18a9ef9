"""Sweeps: rows hold both conventions and the metrics of the library on the same noise; with
perfect models the learned rows match the exact ones, and CFG with exact scores at w is
classifier guidance with the exact posterior at gamma = 1 + w."""

import pytest
import torch

from course_lib import conditional, diffusion, sample_metrics, sweeps, tables, toy

S = diffusion.make_schedule("linear", 1000)


def test_sweep_rows_hold_both_conventions(tiny):
    model, classifier, judge = tiny
    reference = torch.rand(40, 1, 28, 28) * 2 - 1
    rows = sweeps.sweep(model, judge, reference, ws=(0.0, 2.0), gammas=(1.0,), classifier=classifier, m=2, steps=2)
    assert [(r["guidance"], r["w"], r["gamma"]) for r in rows] == [("cfg", 0.0, 1.0), ("cfg", 2.0, 3.0),
                                                                  ("classifier", 0.0, 1.0)]
    x_T, labels = conditional.grid_noise(2, 0), conditional.grid_labels(2)
    images = conditional.cfg_grid(model, 2.0, x_T, 2, schedule=S)
    assert rows[1]["accuracy"] == sample_metrics.judged_accuracy(judge, images, labels)
    assert rows[1]["diversity"] == pytest.approx(sample_metrics.within_class_diversity(images, labels))
    assert rows[1]["frechet"] == pytest.approx(sample_metrics.frechet_distance(sample_metrics.judge_features(judge, images), sample_metrics.judge_features(judge, reference)))
    assert "accuracy" in tables.format_rows(rows)
    with pytest.raises(ValueError, match="classifier must be given"):
        sweeps.sweep(model, judge, reference, ws=(), gammas=(1.0,))


def test_sweep_2d_with_perfect_models_matches_exact_and_cfg_is_classifier_guidance():
    mix = toy.anisotropic()
    oracle, oracle_clf = toy.OracleDenoiser(mix, S), toy.OracleClassifier(mix, S)
    rows = sweeps.sweep_2d(mix, S, 1, model=oracle, classifier=oracle_clf, ws=(0.0, 2.0), gammas=(3.0,), n=200,
                           steps=10)
    exact, learned = tables.rows_where(rows, model="exact"), tables.rows_where(rows, model="learned")
    for a, b in zip(exact, learned):
        for key in ("precision", "recall", "diversity", "sw", "posterior"):
            assert a[key] == pytest.approx(b[key], abs=2e-3), key
    # CFG at w = 2 with exact scores is classifier guidance with the exact posterior at gamma = 3
    cfg2, cg3 = tables.rows_where(exact, guidance="cfg", w=2.0)[0], tables.rows_where(exact, gamma=3.0,
                                                                                     guidance="classifier")[0]
    assert cfg2["sw"] == pytest.approx(cg3["sw"], abs=1e-3)
    assert cfg2["posterior"] > tables.rows_where(exact, w=0.0)[0]["posterior"]
    assert cfg2["diversity"] < tables.rows_where(exact, w=0.0)[0]["diversity"]


def test_real_digits_row_and_knob_row():
    assert sweeps.knob_row("classifier", 3.0) == {"guidance": "classifier", "w": 2.0, "gamma": 3.0}
    with pytest.raises(ValueError, match="kind"):
        sweeps.knob_row("other", 1.0)


def test_sweep_2d_pairs_add_cfg_rows_and_k_none_skips_precision():
    mix = toy.anisotropic()
    rows = sweeps.sweep_2d(mix, S, 1, pairs={"same": (mix.eps_fn(S, 1), mix.eps_fn(S)),
                                             "broad": (mix.broadened(0.5).eps_fn(S, 1), mix.broadened(0.5).eps_fn(S))},
                           ws=(0.0, 2.0), gammas=(1.0,), n=100, steps=5, k=None)
    assert [r["model"] for r in tables.rows_where(rows, guidance="cfg", w=2.0)] == ["exact", "same", "broad"]
    assert tables.rows_where(rows, guidance="classifier", model="same") == []  # pairs add CFG rows only
    for exact, same in zip(tables.rows_where(rows, model="exact", guidance="cfg"), tables.rows_where(rows, model="same")):
        assert exact == {**same, "model": "exact"}
    broad = tables.rows_where(rows, model="broad", w=0.0)[0]
    assert broad["diversity"] > 1.1 * tables.rows_where(rows, model="exact", w=0.0)[0]["diversity"]  # wider law
    assert "precision" not in rows[0]
