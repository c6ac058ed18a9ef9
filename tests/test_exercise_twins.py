"""A twin cannot be bypassed through its other public routes: an exercise that arms one of the
mixture's oracles also arms every public function that computes the same answer (the delegate
in ``toy`` and the function it delegates to in ``oracles``, and the per-level answers both use)."""

import importlib
import pkgutil

import pytest

import course_lib.exercises

MIXTURE = "course_lib.toy.GaussianMixture2D"
SAME_ANSWER = {
    f"{MIXTURE}.eps_fn": {"course_lib.oracles.eps_fn", "course_lib.oracles.OracleDenoiser", "course_lib.toy.OracleDenoiser",
                          f"{MIXTURE}.noised_score", f"{MIXTURE}.denoised"},
    f"{MIXTURE}.log_posterior_fn": {"course_lib.oracles.log_posterior_fn", "course_lib.oracles.OracleClassifier",
                                    "course_lib.toy.OracleClassifier", f"{MIXTURE}.noised_log_posterior"},
    f"{MIXTURE}.noised": {"course_lib.toy.noised_gaussians", f"{MIXTURE}.noised_score"},
    "course_lib.flow.mixture_velocity_fn": {f"{MIXTURE}.denoised"},
}


def _exercises():
    for info in pkgutil.iter_modules(course_lib.exercises.__path__):
        module = importlib.import_module(f"course_lib.exercises.{info.name}")
        yield from getattr(module, "EXERCISES", ())


EXERCISES = list(_exercises())


def test_the_exercises_were_found():
    assert len(EXERCISES) >= 20 and any(f"{MIXTURE}.eps_fn" in e.twins for e in EXERCISES)


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.name for e in EXERCISES])
def test_every_route_to_an_armed_answer_is_armed(exercise):
    missing = {route for twin, routes in SAME_ANSWER.items() if twin in exercise.twins for route in routes} \
        - set(exercise.twins)
    assert not missing, f"{exercise.name} leaves {sorted(missing)} unarmed"
