"""Run a command so that nothing it starts outlives it, inside an OS sandbox: the grader's supervisor.

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

The sandbox (:class:`Jail`, on by default in :func:`run`): ``CMD`` runs under bubblewrap
(``bwrap``) as uid/gid 65534 in new user, pid, network, ipc, uts and cgroup namespaces (no
network, no view of any process outside, no further user namespace), in a new session, killed
with its parent. It sees a read-only view of the system libraries, a few files of ``/etc``, the
Python installation (prefixes and site-packages), the ``course_lib`` package folder alone (never
the checkout around it: no ``instructor/``, lessons or submissions) and the data cache; a private
``/tmp``; and, writable, only the folder it was given. The supervisor stays outside the sandbox
(the student's processes cannot see, signal or trace it); bwrap's pid namespace ends every
process inside when its first process dies, and the supervisor kills that tree.
:func:`unavailable` says whether bubblewrap works here and how to install it.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import selectors
import shutil
import signal
import site
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
TIMEOUT_EXIT, STOPPED_EXIT = 124, 125
FILE_SIZE_LIMIT = 1 << 30
NOBODY = 65534
PACKAGE = Path(__file__).resolve().parents[1]  # the course_lib folder: the only part of a checkout a sandbox sees
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "hosts", "localtime",
       "fonts", "alternatives", "mime.types")
INSTALL = ("bubblewrap (bwrap) is needed to grade in a sandbox and {why}. Install it (Debian/Ubuntu: "
           "`apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`; it needs user namespaces, which some "
           "containers disable), or pass --no-sandbox to grade without it: every row's note then says "
           "'not sandboxed', and a submission runs with the grader's own rights (README, 'Grading a class').")


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here; the message says how to install it or to pass ``--no-sandbox``."""


def minimal_env(home: Path, data_dir: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a graded submission: nothing of the grader's beyond what a kernel needs.
    Every configuration and runtime folder (Jupyter, IPython, matplotlib, caches) lies in ``home``."""
    path = os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]))
    env = {"PATH": path, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"),
           "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / ".jupyter-data"),
           "IPYTHONDIR": str(home / ".ipython"), "MPLCONFIGDIR": str(home / ".matplotlib"),
           "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_RUNTIME_DIR": str(home / ".jupyter-runtime"),
           "PYTHONPATH": str(PACKAGE.parent)}  # this course_lib, whatever an editable install points at
    if data_dir is not None:
        env["COURSE_LIB_DATA"] = str(data_dir)
    return env | (extra or {})


@dataclass(frozen=True)
class Jail:
    """A bubblewrap sandbox whose only writable folder is ``writable``; ``readable`` are extra
    folders it may read (the data cache)."""

    writable: Path
    readable: tuple[Path, ...] = ()

    def command(self, cmd: list[str], cwd: Path | None = None) -> list[str]:
        """``cmd`` wrapped in bwrap (module docstring), started in ``cwd`` (default: the writable folder)."""
        args = [_bwrap(), "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                "--uid", str(NOBODY), "--gid", str(NOBODY), "--hostname", "sandbox", "--tmpfs", "/tmp",
                "--ro-bind", "/usr", "/usr"]  # /tmp first: a folder bound below it stays visible
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = Path("/") / top
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for folder in python_folders() + [PACKAGE] + [Path(p).resolve() for p in self.readable if Path(p).is_dir()]:
            args += ["--ro-bind", str(folder), str(folder)]
        work = str(Path(self.writable).resolve())
        args += ["--proc", "/proc", "--dev", "/dev", "--bind", work, work,
                 "--remount-ro", "/", "--chdir", str(Path(cwd).resolve()) if cwd is not None else work, "--"]
        return args + list(cmd)


def python_folders() -> list[Path]:
    """The Python installation a sandbox reads: its prefixes and site-packages folders (never a
    folder that holds the course_lib package's checkout: that is bound by itself)."""
    found = [sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()]
    found += [p for p in sys.path if p and "site-packages" in p or "dist-packages" in p]
    folders = []
    for path in dict.fromkeys(Path(p).resolve() for p in found if p and Path(p).is_dir()):
        if path == Path("/") or PACKAGE.is_relative_to(path) and not PACKAGE.parent.name.endswith("-packages"):
            continue  # a checkout on sys.path (an editable install, pytest's rootdir): only course_lib/ is bound
        if not any(path.is_relative_to(f) for f in folders):
            folders.append(path)
    return sorted(folders)


def _bwrap() -> str:
    return shutil.which("bwrap") or "bwrap"


_CHECKED: dict[str, str | None] = {}


def unavailable() -> str | None:
    """``None`` when bubblewrap runs a sandbox here (checked once per process: a Python that
    starts inside it as uid 65534 without network), else the message to show the instructor."""
    if "result" not in _CHECKED:
        _CHECKED["result"] = _probe()
    return _CHECKED["result"]


def _probe() -> str | None:
    if not sys.platform.startswith("linux"):
        return INSTALL.format(why=f"runs on Linux only (this is {sys.platform})")
    if shutil.which("bwrap") is None:
        return INSTALL.format(why="it is not installed (no `bwrap` on PATH)")
    probe = "import os, socket\nassert os.getuid() == 65534\nprint('sandboxed')"
    folder = Path(os.environ.get("TMPDIR", "/tmp")).resolve()
    try:
        done = subprocess.run(Jail(folder).command([sys.executable, "-I", "-c", probe]), capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        return INSTALL.format(why=f"it did not start ({type(err).__name__}: {err})")
    if done.returncode != 0 or done.stdout.strip() != "sandboxed":
        why = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return INSTALL.format(why=f"it failed to start a sandbox here (exit status {done.returncode}: {why})")
    return None


def check() -> None:
    """``SandboxUnavailable`` (how to install bubblewrap, or ``--no-sandbox``) unless it works here."""
    message = unavailable()
    if message is not None:
        raise SandboxUnavailable(message)


@dataclass
class Captured:
    """What the command wrote on its standard output, at most ``limit`` bytes (``overflow`` when it
    wrote more: the run is then stopped)."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    overflow: bool = False


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float, cpu_seconds: int, memory_bytes: int,
        log: Path, poll=None, jail: Jail | None = None, stdin: bytes | None = None,
        capture: Captured | None = None) -> int:
    """Run ``cmd`` under the supervisor (in ``jail`` when given); returns its exit status
    (``124`` timeout, ``125`` stopped).

    ``stdin`` is written to the command's standard input (then closed); with ``capture`` its standard
    output comes back there, read here with a bounded size. ``poll()``, when given, is called about
    every 0.1 s while it runs; returning ``True`` stops it (the supervisor then kills the whole tree,
    exit ``125``)."""
    inner = jail.command(cmd, cwd) if jail is not None else cmd
    supervisor = [sys.executable, "-I", __file__, "--timeout", str(timeout),
                  "--cpu", str(int(cpu_seconds)), "--memory", str(int(memory_bytes)), "--", *inner]
    with open(log, "ab") as out:
        proc = subprocess.Popen(supervisor, cwd=cwd, env=env, stdout=subprocess.PIPE if capture else out, stderr=out,
                                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE, start_new_session=True)
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    reader = selectors.DefaultSelector()
    if capture is not None:
        os.set_blocking(proc.stdout.fileno(), False)
        reader.register(proc.stdout, selectors.EVENT_READ)
    ended = None
    try:
        while True:
            reading = capture is not None and bool(reader.get_map())
            if reading:
                _read_some(reader, proc.stdout, capture)
                if capture.overflow and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            code = proc.poll()
            if code is not None:
                ended = ended or time.monotonic()
                if reading and time.monotonic() - ended < 5:
                    continue  # drain what it wrote before it ended (every writer is dead: EOF comes)
                return code
            if not reading:
                time.sleep(0.1)
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
        reader.close()
        if proc.stdout is not None:
            proc.stdout.close()


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _read_some(reader: selectors.BaseSelector, pipe, capture: Captured) -> None:
    """Read what is ready (waiting at most 0.1 s); stop reading at EOF or past the limit."""
    for _ in reader.select(timeout=0.1):
        try:
            chunk = os.read(pipe.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            reader.unregister(pipe)
            return
        if len(capture.data) + len(chunk) > capture.limit:
            capture.overflow = True
            reader.unregister(pipe)
            return
        capture.data += chunk


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
    child = subprocess.Popen(cmd, preexec_fn=_limits(args.cpu, args.memory))  # stdin, stdout: the supervisor's own
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
