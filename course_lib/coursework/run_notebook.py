"""Run one submitted notebook top to bottom in a fresh kernel, for the feedback copy.

``python -I run_notebook.py NOTEBOOK OUT.ipynb --cell-timeout S`` (run by path, under the
supervisor and in the bubblewrap sandbox of :mod:`sandbox`, as uid 65534, in the submission's own
temporary folder: the kernel's Jupyter runtime, IPython, matplotlib and cache folders all lie in
``HOME``, that folder, the only one it can write; see ``sandbox.minimal_env``). Errors do not stop
the run; a cell past ``--cell-timeout`` is interrupted, marked with an error output and the
run goes on (nbgrader's behaviour). The executed notebook is written to ``OUT.ipynb`` after
every cell, so a run cut short still leaves what it did. The exit status tells the grader how
it went: ``0`` ran to the end, ``3`` some cell timed out, ``4`` the kernel died, ``5`` the
notebook could not be run. Nothing here is a score: the grader scores the functions apart.
"""

from __future__ import annotations

import argparse
import os
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

OK, TIMED_OUT, KERNEL_DIED, FAILED = 0, 3, 4, 5
TIMEOUT_ERROR = "CellTimeout"


def _write(nb, out: str) -> None:
    """Write then move into place (not course_lib.files.atomic_write: this script imports neither
    course_lib nor torch, which would add seconds to every submission's start)."""
    tmp = f"{out}.part"
    nbformat.write(nb, tmp)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_notebook.py", description=__doc__.split("\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("out")
    parser.add_argument("--cell-timeout", type=int, required=True)
    args = parser.parse_args(argv)
    nb = nbformat.read(args.notebook, as_version=4)
    timed_out = []

    def after_cell(cell, cell_index, execute_reply) -> None:
        if (execute_reply or {}).get("content", {}).get("ename") == TIMEOUT_ERROR:
            timed_out.append(cell_index)
        _write(nb, args.out)

    error = {"ename": TIMEOUT_ERROR, "evalue": f"the grader stopped this cell after {args.cell_timeout} s",
             "traceback": [f"CellTimeout: the grader stopped this cell after {args.cell_timeout} s"]}
    client = NotebookClient(nb, timeout=args.cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, error_on_timeout=error, record_timing=False,
                            shutdown_kernel="immediate", on_cell_executed=after_cell,
                            resources={"metadata": {"path": os.getcwd()}})
    try:
        client.execute()
    except DeadKernelError:
        _write(nb, args.out)
        return KERNEL_DIED
    except Exception as err:  # anything else that stops nbclient (e.g. a kernel that never starts)
        print(f"runner: {type(err).__name__}: {err}", file=sys.stderr)
        _write(nb, args.out)
        return FAILED
    _write(nb, args.out)
    return TIMED_OUT if timed_out else OK


if __name__ == "__main__":
    sys.exit(main())
