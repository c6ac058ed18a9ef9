"""Call a submission's graded functions on the hidden cases, each solution cell by itself.

``python -I harness.py FOLDER START`` (run by path, under the supervisor of :mod:`sandbox`,
in a fresh folder that holds only what the grader wrote there) reads ``FOLDER/job.pt``, a
list of ``{"name", "source", "call", "cases"}`` written by the grader, and for each exercise
from index ``START`` on: marks ``started_<i>``, executes the solution cell's source alone in
a namespace holding only ``math``, ``np``, ``torch`` and ``course_lib``, calls the function
on every case the way the exercise says (``call(fn, *case)``, :class:`Exercise`) and writes the answers, or
the error that stopped them, to ``result_<i>.pt``. Answers must be tensors, numbers, or
tuples/lists of them: the grader reads them with ``torch.load(weights_only=True)`` and
compares them with references it computed itself. Nothing printed here is read.
"""

from __future__ import annotations

import builtins
import copy
import math
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import course_lib
from course_lib import files

MESSAGE_CHARS = 400


def _message(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."


def plain(value: Any, name: str) -> Any:
    """``value`` as plain tensors (on the CPU, no autograd, no subclass), floats, ints and tuples;
    ``TypeError`` naming what is not allowed."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().as_subclass(torch.Tensor).clone()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return tuple(plain(v, name) for v in value)
    raise TypeError(f"{name} returned a {type(value).__module__}.{type(value).__name__}; "
                    "return torch tensors, numbers, or a tuple of them")


def run_exercise(name: str, source: str, call: Callable[..., Any], cases: list[tuple]) -> dict[str, Any]:
    """``{"outputs": [...]}`` on every case, or ``{"error": message}``."""
    namespace = {"__name__": "__solution__", "__builtins__": builtins, "math": math, "np": np, "torch": torch,
                 "course_lib": course_lib}
    try:
        exec(compile(source, f"<solution cell {name}>", "exec"), namespace)
    except BaseException as err:  # noqa: BLE001 -- whatever the cell raises is the student's error
        return {"error": f"running the solution cell by itself failed: {_message(err)}"}
    fn = namespace.get(name)
    if not callable(fn):
        return {"error": f"the solution cell defines no function named {name}"}
    outputs = []
    for k, args in enumerate(cases):
        try:
            outputs.append(plain(call(fn, *copy.deepcopy(args)), name))
        except BaseException as err:  # noqa: BLE001
            return {"error": f"hidden case {k + 1} of {len(cases)}: {_message(err)}"}
    return {"outputs": outputs}


def main(argv: list[str] | None = None) -> int:
    folder, start = (argv or sys.argv[1:])[:2]
    folder, start = Path(folder), int(start)
    torch.set_num_threads(1)
    jobs = torch.load(folder / "job.pt", weights_only=False)  # written by the grader, read before any student code
    for i in range(start, len(jobs)):
        (folder / f"started_{i}").touch()
        result = run_exercise(jobs[i]["name"], jobs[i]["source"], jobs[i]["call"], jobs[i]["cases"])
        files.atomic_write(folder / f"result_{i}.pt", lambda f, result=result: torch.save(result, f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
