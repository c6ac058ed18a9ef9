"""Plant plausible bugs in the core maths, one at a time, and report which tests catch each.

    python tools/planted_bugs.py [--only NAME ...] [--workdir DIR]

Each bug is one textual change to one module of a copy of the tree (the checkout is never
touched); the copy's tests of the core maths run against it, and the failing tests are listed.
A bug no test catches is reported as MISSED and the command exits 1. docs/testing.md keeps the
last run's table. The mutation run (tools/mutation.sh) is the broad measure; these are the bugs
that a review of the tests found slipping through, kept as a regression check of the tests.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    name: str
    module: str
    old: str
    new: str
    tests: tuple[str, ...] = ("tests/test_diffusion.py", "tests/test_guidance.py")


BUGS = [
    Bug("eta ignored when steps is None (always DDPM)", "course_lib/diffusion.py",
        "ddpm = steps is None and eta == 1.0", "ddpm = steps is None"),
    Bug("cosine schedule offset s = 0.08 instead of 0.008", "course_lib/diffusion.py",
        "s = 0.008", "s = 0.08"),
    Bug("cosine schedule without the / (1 + s)", "course_lib/diffusion.py",
        "f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2", "f = torch.cos((steps + s) * math.pi / 2) ** 2"),
    Bug("linear schedule ends at 0.01", "course_lib/diffusion.py",
        "min(0.02 * scale, 0.999)", "min(0.01 * scale, 0.999)"),
    Bug("DDPM posterior variance beta_t instead of beta_tilde_t", "course_lib/diffusion.py",
        "var = (1 - ab_prev) / (1 - ab) * beta", "var = beta"),
    Bug("DDIM noise 10% too large", "course_lib/diffusion.py",
        "sigma = eta * math.sqrt(", "sigma = 1.1 * eta * math.sqrt("),
    Bug("sampler's eps 5% too small", "course_lib/diffusion.py",
        "eps = _check_eps(eps_fn(x, t_batch), x)", "eps = 0.95 * _check_eps(eps_fn(x, t_batch), x)"),
    Bug("score_from_eps without the minus sign", "course_lib/diffusion.py",
        "return -eps / _per_sample(schedule.sigmas, t, eps)", "return eps / _per_sample(schedule.sigmas, t, eps)"),
    Bug("CFG weights swapped between the two predictions", "course_lib/guidance.py",
        "return (1 + w) * eps_cond_fn(x, t) - w * eps_uncond_fn(x, t)",
        "return (1 + w) * eps_uncond_fn(x, t) - w * eps_cond_fn(x, t)"),
    Bug("CFG extrapolates with w / 2", "course_lib/guidance.py",
        "return (1 + w) * eps_cond_fn(x, t) - w * eps_uncond_fn(x, t)",
        "return (1 + w / 2) * eps_cond_fn(x, t) - w / 2 * eps_uncond_fn(x, t)"),
    Bug("classifier guidance adds the gradient", "course_lib/guidance.py",
        "return eps_fn(x, t) - gamma * _per_sample(schedule.sigmas, t, x) * grad",
        "return eps_fn(x, t) + gamma * _per_sample(schedule.sigmas, t, x) * grad"),
    Bug("label dropout at half the rate", "course_lib/guidance.py",
        "drop = torch.rand(y.shape[0], generator=generator) < p_uncond",
        "drop = torch.rand(y.shape[0], generator=generator) < p_uncond / 2",
        ("tests/test_guidance.py", "tests/test_training.py")),
    Bug("label dropout only drops class 0", "course_lib/guidance.py",
        "drop = torch.rand(y.shape[0], generator=generator) < p_uncond",
        "drop = (torch.rand(y.shape[0], generator=generator) < p_uncond * 3) & (y == 0)",
        ("tests/test_guidance.py", "tests/test_training.py")),
    Bug("guidance interval excludes its upper end", "course_lib/guidance.py",
        "inside = (t >= t_lo) & (t <= t_hi)", "inside = (t >= t_lo) & (t < t_hi)"),
    Bug("noised mixture keeps the clean covariance's weight", "course_lib/toy.py",
        "c2[..., None] * covs + s2[..., None] * eye", "covs + s2[..., None] * eye",
        ("tests/test_toy.py", "tests/test_oracles.py", "tests/test_diffusion.py")),
]


def _copy_tree(work: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for name in files:
        source = REPO / name
        if source.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)


def run_bug(bug: Bug, work: Path) -> list[str]:
    """Plant ``bug`` in the copy at ``work``, run its tests, restore; return the failing tests."""
    path = work / bug.module
    original = path.read_text()
    if original.count(bug.old) != 1:
        raise SystemExit(f"{bug.name}: the text to change occurs {original.count(bug.old)} times in {bug.module}")
    path.write_text(original.replace(bug.old, bug.new))
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", "-rfE",
                                 *bug.tests], cwd=work, capture_output=True, text=True)
    finally:
        path.write_text(original)
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, flags=re.MULTILINE)))
    if result.returncode != 0 and not failed:
        failed = [f"(pytest exit {result.returncode}: {result.stdout.strip().splitlines()[-1:]})"]
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", help="run only the bugs whose name contains one of these")
    parser.add_argument("--workdir", type=Path, default=None, help="where to copy the tree (default: a temp dir)")
    args = parser.parse_args(argv)
    bugs = [b for b in BUGS if not args.only or any(o in b.name for o in args.only)]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="planted-bugs-"))
    _copy_tree(work)
    missed = 0
    for bug in bugs:
        failed = run_bug(bug, work)
        missed += not failed
        print(f"{'caught' if failed else 'MISSED'}: {bug.name} ({bug.module})", flush=True)
        for test in failed:
            print(f"    {test}", flush=True)
    print(f"{len(bugs) - missed} of {len(bugs)} planted bugs caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
