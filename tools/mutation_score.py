"""The mutation score of a mutmut run: ``python tools/mutation_score.py WORKDIR [MUTANT_GLOB ...]``.

Reads mutmut's results under ``WORKDIR/mutants`` and prints, per module, the mutants of the given
globs (default: those tools/mutation.sh runs) by status, and the share killed (a failing test or a
timeout) of those checked. Surviving mutants are listed by name; ``mutmut show NAME`` in WORKDIR
prints one."""

from __future__ import annotations

import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path

STATUS = {0: "survived", 1: "killed", 3: "killed", 33: "no tests", 5: "no tests", 36: "timeout", 24: "timeout",
          -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def main(argv: list[str]) -> int:
    work, globs = Path(argv[0]), argv[1:] or ["*"]
    totals: Counter = Counter()
    survivors = []
    for meta_path in sorted((work / "mutants").rglob("*.py.meta")):
        exit_codes = json.loads(meta_path.read_text())["exit_code_by_key"]
        counts = Counter()
        for name, code in exit_codes.items():
            if not any(fnmatch.fnmatchcase(name, g) for g in globs):
                continue
            status = STATUS.get(code, "suspicious")
            counts[status] += 1
            if status == "survived":
                survivors.append(name)
        if counts:
            print(f"{meta_path.name[:-5]:<14} {sum(counts.values()):5d} mutants: "
                  + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
            totals.update(counts)
    checked = totals["killed"] + totals["timeout"] + totals["survived"]
    killed = totals["killed"] + totals["timeout"]
    print(f"{'total':<14} {sum(totals.values()):5d} mutants: " + ", ".join(f"{v} {k}" for k, v in sorted(totals.items())))
    if checked:
        print(f"killed {killed} of {checked} checked: {100 * killed / checked:.1f}%")
    print("survivors:", *survivors, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
