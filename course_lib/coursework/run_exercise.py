"""Call one graded function of a submission on the hidden cases, its solution cell by itself.

``python -I run_exercise.py`` (run by path, one process per exercise, under the supervisor and in the
sandbox of :mod:`sandbox`) reads its job from standard input (a ``torch.save`` of ``{"name",
"source", "call", "cases", "twins", "nonce"}``) and writes on standard output the nonce when the
student's code starts, then ``MAGIC nonce length payload nonce``, ``payload`` a ``torch.save`` of
``{"outputs": [...]}`` or ``{"error": message}``. What the student prints goes to standard error.

Before the solution cell runs (no library shortcut, issue 14): every ``course_lib`` submodule but
``course_lib.coursework`` is imported and each *twin* of the exercise gets a tripwire for code
(exit status ``TRIPWIRE_EXIT + i``; the real ``os._exit`` sits in its constants); ``execve`` is
refused by seccomp; an audit hook (its state in a closure) refuses reading the call stack, ``gc``'s
object walks, tracing, audit hooks, ``ctypes``, subinterpreters, processes, threads, signals,
links, opening ``/proc``, ``/dev/fd`` or ``course_lib``'s code, and executing that code again.

The solution runs in its own thread; the job, the nonce and the call adapter (with the arguments
it withholds) live in the grader's thread. Only exact tensors, numbers and tuples (and proxies of
returned functions) cross, and after each call the grader's thread checks that no function, class
or module of any module or class was rebound (else that thread could be made to run the
student's code), before it runs anything.
"""

from __future__ import annotations

import _thread
import builtins
import copy
import gc
import importlib
import importlib.util
import io
import linecache
import math
import os
import struct
import sys
import types
import warnings
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import numpy as np  # noqa: E402 -- the course_lib next to this script, whatever an editable install points at
import torch  # noqa: E402

import course_lib  # noqa: E402

MESSAGE_CHARS = 400
MAGIC = b"COURSE-LIB-ANSWER\n"


def _load_guard() -> types.ModuleType:
    """guard.py, next to this script, loaded by path (``course_lib.coursework`` imports nbformat: seconds)."""
    spec = importlib.util.spec_from_file_location("course_lib_harness_guard", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "guard.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class SolutionError(Exception):
    """What the student's code raised, as text (the exception object itself stays in its thread)."""


def _why(err: BaseException) -> str:
    return err.args[0] if type(err) is SolutionError else _message(err)  # args[0]: an exact str, read directly


def _message(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."


def plain(value: Any, name: str) -> Any:
    """``value`` as plain tensors (on the CPU, no autograd, no subclass), floats, ints and tuples
    (exactly those types); ``TypeError`` naming what is not allowed."""
    kind = type(value)
    if issubclass(kind, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            value = torch.Tensor.detach(value).cpu().clone()
        value = value if type(value) is torch.Tensor else torch.Tensor.as_subclass(value, torch.Tensor)
    elif issubclass(kind, (bool, np.bool_)):
        value = bool(value)
    elif issubclass(kind, (int, np.integer)):
        value = int(value)
    elif issubclass(kind, (float, np.floating)):
        value = float(value)
    elif issubclass(kind, (tuple, list)):
        value = tuple(plain(v, name) for v in value)
    if not exact(value):
        raise TypeError(f"{name} returned a {kind.__module__}.{kind.__name__}; "
                        "return torch tensors, numbers, or a tuple of them")
    return value


def exact(value: Any) -> bool:
    """Whether ``value`` is exactly a tensor, int, float, bool, ``None`` or a tuple of them
    (only ``type`` is asked: no method of the value runs)."""
    kind = type(value)
    if kind is tuple:
        return all(exact(v) for v in value)
    return kind is torch.Tensor or kind is int or kind is float or kind is bool or value is None


# --- the student's thread ---------------------------------------------------------------------------


class _Channel:
    """One request at a time from the grader's thread to the student's thread, one reply back."""

    __slots__ = ("todo", "done", "request", "reply")

    def __init__(self) -> None:
        self.todo, self.done, self.request, self.reply = _thread.allocate_lock(), _thread.allocate_lock(), None, None
        self.todo.acquire(), self.done.acquire()


def _serve(channel: _Channel, name: str) -> None:
    """The student's thread: run each request (the solution cell, then calls of its functions);
    reply with plain values, proxies' keys for returned functions, or the error's text."""
    functions: list[Callable] = []
    wait, reply = channel.todo.acquire, channel.done.release  # bound before any student code runs
    while True:
        wait()
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
                text = "".join(["", str(err.args[0])]) if type(err) is SolutionError and err.args else _message(err)
                channel.reply = ("error", "".join(["", text]))  # an exact str, whatever str() returned
            except BaseException:  # noqa: BLE001 -- an exception whose str() raises
                channel.reply = ("error", "an exception that cannot be shown")
        reply()


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


def _student(name: str, kept: list, start: Callable, changed: Callable[[], str | None]) -> Callable:
    """Start the student's thread with ``start``; returns ``ask(kind, payload)`` for the grader's thread."""
    channel = _Channel()
    start(_serve, (channel, name))
    stop_collector, error, check = gc.disable, SolutionError, exact

    def ask(kind: str, payload: Any) -> Any:
        kept.append(payload)  # nothing handed to the student is ever freed here (no finalizer of theirs runs here)
        channel.request = (kind, payload, torch.is_grad_enabled())
        channel.todo.release()
        channel.done.acquire()
        stop_collector()  # nor in a collection this thread would start
        patched = changed()
        if patched is not None:  # this thread would run the student's code in place of the library's
            raise error(f"the grader refuses a solution that rebinds {patched} (Python's or the library's own "
                        "functions): a graded solution only defines its function")
        status, value = channel.reply
        if status == "error":
            raise error(value)
        if value is None or kind == "cell":
            return value
        if value[0] == "value" and not check(value[1]):
            raise error("the solution returned something other than plain tensors and numbers")
        return _Proxy(ask, value[1]) if value[0] == "function" else value[1]

    return ask


# --- one exercise -----------------------------------------------------------------------------------


def run_exercise(ask: Callable, name: str, source: str, call: Callable[..., Any],
                 copies: list[tuple]) -> dict[str, Any]:
    """``{"outputs": [...]}`` on every case, or ``{"error": message}``."""
    namespace = {"__name__": "__solution__", "__builtins__": builtins, "math": math, "np": np, "torch": torch,
                 "course_lib": course_lib}
    try:
        ask("cell", (compile(source, f"<solution cell {name}>", "exec"), namespace))
    except BaseException as err:  # noqa: BLE001 -- what the cell raised, or a syntax error
        return {"error": f"running the solution cell by itself failed: {_why(err)}"}
    student = _Proxy(ask, 0)
    outputs = []
    for k, args in enumerate(copies):
        try:
            outputs.append(plain(call(student, *args), name))
        except BaseException as err:  # noqa: BLE001
            return {"error": f"hidden case {k + 1} of {len(copies)}: {_why(err)}"}
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
        guard = _load_guard()
        guard.preload()
        guard.arm(list(job["twins"]))
        if not guard.refuse_exec():  # before the student's thread starts: it and every thread it starts inherit it
            print("harness: execve could not be refused here (no seccomp)", file=sys.stderr)
        gc.disable()
        start = _thread.start_new_thread
        is_guard = guard.lockdown()  # from now on no thread starts, but the student's one below
        ask = _student(name, kept, start, guard.watch_shared_state())
        linecache.clearcache()
        guard.guard(os.path.dirname(course_lib.__file__), is_guard)
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
