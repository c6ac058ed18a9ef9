"""Call one graded function of a submission on the hidden cases, its solution cell by itself.

``python -I harness.py`` (run by path, under the supervisor and in the sandbox of :mod:`sandbox`,
one process per exercise) reads its job from standard input, a ``torch.save`` of ``{"name",
"source", "call", "cases", "twins", "nonce"}`` written by the grader, and writes on standard output
the nonce when the student's code starts, then one framed answer: ``MAGIC nonce length payload
nonce`` where ``payload`` is a ``torch.save`` of ``{"outputs": [...]}`` or ``{"error": message}``. Whatever the student prints goes to standard
error; a frame without the run's random nonce, or with anything around it, is refused by the grader.
Answers must be tensors, numbers, or tuples/lists of them (read back with ``weights_only=True``
and compared with references the grader computed itself).

Before the solution cell runs (no library shortcut, issue 14):

1. every ``course_lib`` submodule (but the grader's own ``course_lib.coursework``) is imported, and
   each of the exercise's *twins* (the library functions it asks the student to write) has its code
   replaced by a tripwire that ends the process at once with exit status ``TRIPWIRE_EXIT + i``
   (the real ``os._exit`` sits in the tripwire's constants: patching ``os`` does not disarm it);
2. ``execve`` is refused by a seccomp filter (no fresh interpreter without the tripwires);
3. an audit hook (its state in a closure) refuses: reading the call stack (``sys._getframe``,
   ``sys._current_frames``, ``tb_frame``/``gi_frame``/``cr_frame``/``ag_frame``), ``gc``'s object
   walks, tracing, new audit hooks, ``ctypes``, subinterpreters, new processes and signals, links,
   opening ``/proc``, ``/dev/fd`` or the code of the ``course_lib`` folder, and executing code that
   lies there (a reload would give an untripped copy); ``linecache`` is cleared.

The solution cell and every call of the student's function run in their own thread: the grader's
job, the nonce and the exercise's call adapter (with the arguments it withholds) live in another
thread, and only plain values (tensors, numbers, tuples, and proxies of returned functions) cross.
"""

from __future__ import annotations

import _thread
import builtins
import copy
import ctypes
import gc
import importlib
import io
import linecache
import math
import os
import pkgutil
import struct
import sys
import types
import warnings
from typing import Any, Callable

import numpy as np
import torch

import course_lib

MESSAGE_CHARS = 400
MAGIC = b"COURSE-LIB-ANSWER\n"
TRIPWIRE_EXIT, MAX_TWINS = 100, 20
REFUSED = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
    "sys.addaudithook", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "os.fork", "os.forkpty",
    "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen", "pty.spawn", "os.link",
    "os.symlink", "os.kill", "os.killpg", "signal.pthread_kill", "sys.remote_exec", "os.chroot"})
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_locals", "f_globals"})
DATA_SUFFIXES = frozenset({".pt", ".json", ".npz", ".npy", ".csv", ".txt"})


class SolutionError(Exception):
    """What the student's code raised, as text (the exception object itself stays in its thread)."""


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


# --- the student's thread ---------------------------------------------------------------------------


class _Channel:
    """One request at a time from the grader's thread to the student's thread, one reply back."""

    __slots__ = ("todo", "done", "request", "reply")

    def __init__(self) -> None:
        self.todo, self.done = _thread.allocate_lock(), _thread.allocate_lock()
        self.todo.acquire()
        self.done.acquire()
        self.request = self.reply = None


def _serve(channel: _Channel, name: str) -> None:
    """The student's thread: run each request (the solution cell, then calls of its functions);
    reply with plain values, proxies' keys for returned functions, or the error's text."""
    functions: list[Callable] = []
    while True:
        channel.todo.acquire()
        kind, payload, grad = channel.request
        channel.request = None
        try:
            with torch.set_grad_enabled(grad):
                if kind == "cell":
                    code, namespace = payload
                    exec(code, namespace)
                    fn = namespace.get(name)
                    if not callable(fn):
                        raise SolutionError(f"the solution cell defines no function named {name}")
                    functions.append(fn)
                    value = 0
                else:
                    index, args, kwargs = payload
                    value = _crossing(functions[index](*args, **kwargs), name, functions)
            channel.reply = ("ok", value)
        except BaseException as err:  # noqa: BLE001 -- whatever the student's code raises is its error
            try:
                channel.reply = ("error", err.args[0] if type(err) is SolutionError else _message(err))
            except BaseException:  # noqa: BLE001 -- an exception whose str() raises
                channel.reply = ("error", "an exception that cannot be shown")
        channel.done.release()


def _crossing(value: Any, name: str, functions: list[Callable]) -> Any:
    """What may go back to the grader's thread: plain values, or ``("function", key)`` for a function."""
    if callable(value) and not isinstance(value, torch.Tensor):
        functions.append(value)
        return ("function", len(functions) - 1)
    if value is None:
        return None
    return ("value", plain(value, name))


class _Proxy:
    """Stands for a student function in the grader's thread: each call runs in the student's thread."""

    def __init__(self, ask: Callable, index: int) -> None:
        self._ask, self._index = ask, index

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ask("call", (self._index, args, kwargs))


def _student(name: str, kept: list) -> Callable:
    """Start the student's thread; returns ``ask(kind, payload)`` for the grader's thread."""
    channel = _Channel()
    _thread.start_new_thread(_serve, (channel, name))
    stop_collector = gc.disable

    def ask(kind: str, payload: Any) -> Any:
        kept.append(payload)  # nothing handed to the student is ever freed here (no finalizer of theirs runs here)
        channel.request = (kind, payload, torch.is_grad_enabled())
        channel.todo.release()
        channel.done.acquire()
        stop_collector()  # nor in a collection this thread would start
        status, value = channel.reply
        if status == "error":
            raise SolutionError(value)
        if value is None or kind == "cell":
            return value
        return _Proxy(ask, value[1]) if value[0] == "function" else value[1]

    return ask


# --- the guard --------------------------------------------------------------------------------------


def preload() -> None:
    """Import every ``course_lib`` submodule but the grader's own ``course_lib.coursework``
    (nothing of the library needs loading once the guard refuses its code)."""
    todo = [course_lib]
    while todo:
        package = todo.pop()
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.name.startswith("course_lib.coursework") or info.name.endswith(".__main__"):
                continue
            try:
                module = importlib.import_module(info.name)
            except Exception:  # noqa: BLE001 -- an optional dependency missing: that module stays unusable
                continue
            if info.ispkg:
                todo.append(module)


def tripwire_code(status: int, free: int) -> types.CodeType:
    """A code object that calls the real ``os._exit(status)`` (held in its constants) and has
    ``free`` free variables (so it can replace a closure's code)."""
    names = [f"_v{i}" for i in range(free)]
    source = ("def outer():\n" + "".join(f"    {n} = None\n" for n in names) + "    def tripwire(*args, **kwargs):\n"
              f"        '__tripwire_exit__'({status})\n" + (f"        {', '.join(names)}\n" if names else "")
              + "    return tripwire\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable": that constant is replaced below
        compiled = compile(source, "<tripwire>", "exec")
    outer = next(c for c in compiled.co_consts if isinstance(c, types.CodeType))
    code = next(c for c in outer.co_consts if isinstance(c, types.CodeType))
    exit_now = os._exit
    return code.replace(co_consts=tuple(exit_now if isinstance(c, str) and c == "__tripwire_exit__" else c
                                        for c in code.co_consts))


def _functions(obj: Any) -> list[types.FunctionType]:
    """The Python functions behind a twin (a function, method, staticmethod, classmethod, property,
    wrapper; for a class, every one of those it defines itself)."""
    found, todo = [], [obj]
    while todo:
        item = todo.pop()
        if isinstance(item, type):
            todo += list(vars(item).values())
        elif isinstance(item, types.FunctionType):
            found.append(item)
            todo.append(getattr(item, "__wrapped__", None))
        elif isinstance(item, (staticmethod, classmethod, types.MethodType)):
            todo.append(item.__func__)
        elif isinstance(item, property):
            todo += [item.fget, item.fset, item.fdel]
    return found


def resolve(dotted: str) -> Any:
    """The object a twin's dotted name names, the raw attribute of a class (not bound)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = vars(obj)[part] if isinstance(obj, type) and part in vars(obj) else getattr(obj, part)
        return obj
    raise ImportError(f"no module for {dotted}")


def arm(twins: list[str]) -> None:
    """Replace the code of every twin by a tripwire (exit status ``TRIPWIRE_EXIT + index``)."""
    if len(twins) > MAX_TWINS:
        raise ValueError(f"at most {MAX_TWINS} twins per exercise, got {len(twins)}")
    for index, dotted in enumerate(twins):
        functions = _functions(resolve(dotted))
        if not functions:
            raise TypeError(f"twin {dotted} is not a Python function")
        for function in functions:
            function.__code__ = tripwire_code(TRIPWIRE_EXIT + index, len(function.__code__.co_freevars))


def refuse_exec() -> bool:
    """Install a seccomp filter that makes ``execve``/``execveat`` fail with EPERM for this process
    and the threads and children it starts from now on; ``False`` where that is not possible."""
    arches = {0xC000003E: (59, 322), 0xC00000B7: (221, 281)}  # x86_64, aarch64
    machine = os.uname().machine
    arch = next((a for a, m in ((0xC000003E, "x86_64"), (0xC00000B7, "aarch64")) if m == machine), None)
    if arch is None:
        return False
    execve, execveat = arches[arch]
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    allow, eperm, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000
    program = [(ld_w_abs, 0, 0, 4), (jeq_k, 1, 0, arch), (ret_k, 0, 0, kill), (ld_w_abs, 0, 0, 0),
               (jeq_k, 0, 1, execve), (ret_k, 0, 0, eperm), (jeq_k, 0, 1, execveat), (ret_k, 0, 0, eperm),
               (ret_k, 0, 0, allow)]
    raw = b"".join(struct.pack("HBBI", *op) for op in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
    keep = (buffer, fprog_buffer)  # alive until the kernel has copied the program
    done = libc.prctl(22, 2, ctypes.c_void_p(ctypes.addressof(keep[1])), 0, 0) == 0  # PR_SET_SECCOMP, MODE_FILTER
    return done


def guard(package: str) -> None:
    """Install the audit hook (module docstring); its state lives only in this closure."""
    package = os.path.realpath(package)
    inside = package + os.sep
    realpath, normpath, join, getcwd, isfile, splitext = (os.path.realpath, os.path.normpath, os.path.join,
                                                         os.getcwd, os.path.isfile, os.path.splitext)
    refused, frames, data, code_type = REFUSED, FRAME_ATTRIBUTES, DATA_SUFFIXES, types.CodeType

    def forbidden(path: str) -> bool:
        path = path if path.startswith("/") else join(getcwd(), path)
        for candidate in (normpath(path), realpath(path)):
            if candidate in ("/proc", "/dev/fd") or candidate.startswith(("/proc/", "/dev/fd/")):
                return True
            if candidate == package or candidate.startswith(inside):
                if not (isfile(candidate) and splitext(candidate)[1] in data):
                    return True
        return False

    def hook(event: str, args: tuple) -> None:
        if event in refused or event.startswith(("ctypes.", "cpython.", "_xxsubinterpreters")):
            raise PermissionError(f"the grader refuses {event} in a graded solution")
        if event == "object.__getattr__" and args[1] in frames:
            raise PermissionError(f"the grader refuses reading {args[1]} in a graded solution (the call stack)")
        if event == "open" and isinstance(args[0], (str, bytes)) and forbidden(os.fsdecode(args[0])):
            raise PermissionError(f"the grader refuses opening {os.fsdecode(args[0])!r} in a graded solution")
        if event == "exec" and isinstance(args[0], code_type):
            filename = args[0].co_filename
            if filename.startswith("/") and (realpath(filename) + os.sep).startswith(inside):
                raise PermissionError("the grader refuses executing course_lib's own code again (a reload)")

    sys.addaudithook(hook)


# --- one exercise -----------------------------------------------------------------------------------


def run_exercise(ask: Callable, name: str, source: str, call: Callable[..., Any],
                 copies: list[tuple]) -> dict[str, Any]:
    """``{"outputs": [...]}`` on every case, or ``{"error": message}``."""
    namespace = {"__name__": "__solution__", "__builtins__": builtins, "math": math, "np": np, "torch": torch,
                 "course_lib": course_lib}
    try:
        ask("cell", (compile(source, f"<solution cell {name}>", "exec"), namespace))
    except SolutionError as err:
        return {"error": f"running the solution cell by itself failed: {err}"}
    except BaseException as err:  # noqa: BLE001 -- a syntax error
        return {"error": f"running the solution cell by itself failed: {_message(err)}"}
    student = _Proxy(ask, 0)
    outputs = []
    for k, args in enumerate(copies):
        try:
            outputs.append(plain(call(student, *args), name))
        except BaseException as err:  # noqa: BLE001
            return {"error": f"hidden case {k + 1} of {len(copies)}: {err if type(err) is SolutionError else _message(err)}"}
    return {"outputs": outputs}


def _work(raw: bytes, out: int, done) -> None:
    """The grader's thread: read the job, guard, run the exercise, write the framed answer on ``out``."""
    write, exit_now, save = os.write, os._exit, torch.save
    nonce = b""
    try:
        job = torch.load(io.BytesIO(raw), weights_only=False)  # written by the grader, read before any student code
        del raw
        nonce, name = job["nonce"], job["name"]
        kept = [job, [copy.deepcopy(args) for args in job["cases"]]]
        preload()
        arm(list(job["twins"]))
        if not refuse_exec():  # before the student's thread starts: it and every thread it starts inherit it
            print("harness: execve could not be refused here (no seccomp)", file=sys.stderr)
        gc.disable()
        ask = _student(name, kept)
        linecache.clearcache()
        guard(os.path.dirname(course_lib.__file__))
    except BaseException as err:  # noqa: BLE001 -- the grader's own failure: it says so
        result = {"grader_error": _message(err)}
    else:
        write(out, nonce)  # "the student's code starts now": the grader's timeout for this exercise runs from here
        result = run_exercise(ask, name, job["source"], job["call"], kept[1])
    try:
        buffer = io.BytesIO()
        save(result, buffer)
        payload = buffer.getvalue()
        frame = MAGIC + nonce + struct.pack("<Q", len(payload)) + payload + nonce
        while frame:
            frame = frame[write(out, frame):]
    finally:
        exit_now(0)


def main() -> int:
    """Read the job, then hand it to the grader's thread (this thread keeps nothing of it)."""
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    warnings.showwarning = lambda *args, **kwargs: None  # no source line is read back for a warning
    raw = sys.stdin.buffer.read()
    out = os.dup(1)
    os.dup2(2, 1)  # what the student prints goes to the log, never to the answer pipe
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(_work, (raw, out, done))
    del raw
    while True:
        try:
            done.acquire()
        except BaseException:  # noqa: BLE001 -- an interrupt sent by the student: keep waiting
            continue


if __name__ == "__main__":
    sys.exit(main())
