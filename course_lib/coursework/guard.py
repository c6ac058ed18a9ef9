"""The guard of a graded solution's process (no library shortcut, issue 14; see :mod:`run_exercise`).

Loaded by path by the harness script (so that it imports neither ``course_lib.coursework`` nor
nbformat). :func:`preload` imports every ``course_lib`` submodule but ``course_lib.coursework``;
:func:`arm` replaces each twin's code by a tripwire that ends the process at once with exit status
``TRIPWIRE_EXIT + i`` (the real ``os._exit`` in its constants); :func:`refuse_exec` installs a
seccomp filter refusing ``execve``; :func:`lockdown` replaces the functions that start threads or
make the collector keep its garbage, everywhere they are bound; :func:`guard` installs the audit
hook; :func:`watch_shared_state` remembers every function, class and module bound in a module's or
class's namespace, to tell when a solution rebinds one.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pkgutil
import struct
import sys
import types
import warnings
from typing import Any, Callable

import course_lib

TRIPWIRE_EXIT, MAX_TWINS = 100, 20
REFUSED = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
    "sys.addaudithook", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "os.fork", "os.forkpty",
    "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen", "pty.spawn", "os.link",
    "os.symlink", "os.kill", "os.killpg", "signal.pthread_kill", "sys.remote_exec", "os.chroot",
    })
SHARED = (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType, types.MethodType, staticmethod,
          classmethod, property, types.WrapperDescriptorType, types.MethodDescriptorType,
          types.MemberDescriptorType, types.GetSetDescriptorType)
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_locals", "f_globals"})
DATA_SUFFIXES = frozenset({".pt", ".json", ".npz", ".npy", ".csv", ".txt"})


def watch_shared_state() -> Callable[[], str | None]:
    """Remember every function, class, module and descriptor bound in a module's or a module-level
    class's namespace (builtins, torch, course_lib, this harness...); the returned check names the
    first one rebound or deleted since, else ``None``. It uses only what it captured here: a
    solution that patches a builtin cannot make the check run its code."""
    shared, get_vars, kind_of, is_shared = SHARED, vars, type, isinstance
    saved, seen = [], set()
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if type(namespace) is not dict:
            continue
        saved.append((module_name, namespace, {k: v for k, v in namespace.items() if isinstance(v, shared)}))
        for value in list(namespace.values()):
            if isinstance(value, type) and id(value) not in seen:
                seen.add(id(value))
                saved.append((f"{module_name}.{value.__name__}", value,
                              {k: v for k, v in vars(value).items() if isinstance(v, shared)}))
    missing = object()

    def changed() -> str | None:
        for where, holder, values in saved:
            is_module = kind_of(holder) is dict
            now = holder if is_module else get_vars(holder)
            for key, value in values.items():
                if now.get(key, missing) is not value:
                    return f"{where}.{key}"
            if not is_module and any(key not in values and is_shared(v, shared) for key, v in now.items()):
                return f"{where} (a new method)"
        return None

    return changed



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


BLOCKED = {"_thread": ("start_new_thread", "start_new"), "gc": ("set_debug",)}


def lockdown() -> Callable[[Any], bool]:
    """Replace, in every loaded module, the functions that start a thread or make the collector keep
    its garbage (a frame walk without an audited event) by refusals, and make ``_imp`` refuse fresh
    copies of those builtin modules; returns ``is_guard(obj)`` for the audit hook (reading a guard's
    ``__code__`` is refused: the real ``create_builtin`` sits in its constants)."""
    refusals = {}
    for module_name, names in BLOCKED.items():
        module = importlib.import_module(module_name)
        for name in names:
            source = (f"def refused(*args, **kwargs):\n    raise PermissionError('the grader refuses "
                      f"{module_name}.{name} in a graded solution')")
            namespace: dict[str, Any] = {}
            exec(compile(source, "<guard>", "exec"), namespace)
            refusals[id(getattr(module, name))] = namespace["refused"]
    import _imp
    blocked = frozenset(BLOCKED)
    namespace = {}
    exec(compile("def create_builtin(spec):\n    if spec.name in '__blocked__':\n        raise PermissionError("
                 "'the grader refuses a fresh ' + spec.name)\n    return '__real__'(spec)", "<guard>", "exec"), namespace)
    fresh = namespace["create_builtin"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.__code__ = fresh.__code__.replace(co_consts=tuple(
            blocked if c == "__blocked__" else _imp.create_builtin if c == "__real__" else c
            for c in fresh.__code__.co_consts))
    refusals[id(_imp.create_builtin)] = fresh
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if type(namespace) is dict:
            for key, value in list(namespace.items()):
                if id(value) in refusals and not isinstance(value, type):
                    namespace[key] = refusals[id(value)]
    guards = frozenset(map(id, refusals.values()))
    return lambda obj: id(obj) in guards


def guard(package: str, is_guard: Callable[[Any], bool] = lambda obj: False) -> None:
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
        if event == "object.__getattr__" and (args[1] in frames or args[1] == "__code__" and is_guard(args[0])):
            raise PermissionError(f"the grader refuses reading {args[1]} in a graded solution")
        if event == "open" and isinstance(args[0], (str, bytes)) and forbidden(os.fsdecode(args[0])):
            raise PermissionError(f"the grader refuses opening {os.fsdecode(args[0])!r} in a graded solution")
        if event == "exec" and isinstance(args[0], code_type):
            filename = args[0].co_filename
            if filename.startswith("/") and (realpath(filename) + os.sep).startswith(inside):
                raise PermissionError("the grader refuses executing course_lib's own code again (a reload)")

    sys.addaudithook(hook)
