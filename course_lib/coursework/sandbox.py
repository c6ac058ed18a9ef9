"""Run a command so that nothing it starts outlives it: the grader's process supervisor.

``python -I path/to/sandbox.py --timeout S --cpu S --memory BYTES -- CMD...`` (standard library only,
run by path so that the supervisor imports neither torch nor the student's code)
makes itself a *child subreaper* (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``): every process
``CMD`` starts, even one that double-forks into a new session (``setsid``, a daemon), is
re-parented to this supervisor when its parent dies instead of escaping to ``init``. When
``CMD`` exits, runs past ``--timeout`` seconds, or the supervisor is sent ``SIGTERM``, it
stops (``SIGSTOP``) every descendant until the tree stops growing, kills them all
(``SIGKILL``) and reaps them, then exits with ``CMD``'s exit status (``124`` on timeout,
``125`` when told to stop). ``CMD`` and everything under it run with per-process limits on
CPU time (``RLIMIT_CPU``), address space (``RLIMIT_AS``) and file size (``RLIMIT_FSIZE``).

:func:`run` starts the supervisor with a minimal environment (:func:`minimal_env`). What
this does not protect against (same user, network, readable files) is listed in the README,
section "Grading a class".
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
TIMEOUT_EXIT, STOPPED_EXIT = 124, 125
FILE_SIZE_LIMIT = 1 << 30


def minimal_env(home: Path, data_dir: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a graded submission: nothing of the grader's beyond what a kernel needs."""
    path = os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]))
    env = {"PATH": path, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if data_dir is not None:
        env["COURSE_LIB_DATA"] = str(data_dir)
    return env | (extra or {})


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float, cpu_seconds: int, memory_bytes: int,
        log: Path, poll=None) -> int:
    """Run ``cmd`` under the supervisor; returns its exit status (``124`` timeout, ``125`` stopped).

    ``poll()``, when given, is called about every 0.1 s while it runs; returning ``True`` stops it
    (the supervisor then kills the whole tree, exit ``125``)."""
    supervisor = [sys.executable, "-I", __file__, "--timeout", str(timeout),
                  "--cpu", str(int(cpu_seconds)), "--memory", str(int(memory_bytes)), "--", *cmd]
    with open(log, "ab") as out:
        proc = subprocess.Popen(supervisor, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    try:
        while True:
            try:
                return proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                if poll is not None and poll():
                    proc.send_signal(signal.SIGTERM)
                    poll = None
    finally:
        if proc.poll() is None:  # the grader itself is being interrupted: the supervisor cleans up
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def become_subreaper() -> None:
    """Make this process the child subreaper of everything it starts (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _process_table() -> dict[int, tuple[int, str]]:
    """``pid -> (parent pid, state)`` of every process (Linux ``/proc``)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int) -> dict[int, str]:
    """The live descendants of ``root``: ``pid -> state`` (``Z`` for a zombie)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found[pid] = table[pid][1]
            todo.extend(children.get(pid, []))
    return found


def _signal_all(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(deadline: float = 30.0) -> int:
    """Freeze, kill and reap every descendant of this process; returns how many there were."""
    me, seen, end = os.getpid(), set(), time.monotonic() + deadline
    while time.monotonic() < end:
        live = {pid for pid, state in descendants(me).items() if state != "Z"}
        if not live:
            _reap()
            if not descendants(me):
                return len(seen)
            time.sleep(0.02)
            continue
        while True:  # stop them all first, so that none forks a new one while we kill
            _signal_all(live, signal.SIGSTOP)
            more = {pid for pid, state in descendants(me).items() if state != "Z"}
            if more <= live:
                break
            live |= more
        seen |= live
        _signal_all(live, signal.SIGKILL)
        time.sleep(0.02)
        _reap()
    return len(seen)


def _limits(cpu_seconds: int, memory_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox.py", description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, required=True, help="wall-clock seconds before the tree is killed")
    parser.add_argument("--cpu", type=int, required=True, help="CPU seconds per process (RLIMIT_CPU)")
    parser.add_argument("--memory", type=int, required=True, help="bytes of address space per process (RLIMIT_AS)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("give the command to run after --")
    become_subreaper()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_limits(args.cpu, args.memory))
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            code = child.wait(timeout=0.1)
            code = code if code >= 0 else 128 - code
            break
        except subprocess.TimeoutExpired:
            if stop or time.monotonic() > deadline:
                code = STOPPED_EXIT if stop else TIMEOUT_EXIT
                break
    kill_descendants()
    return code


if __name__ == "__main__":
    sys.exit(main())
