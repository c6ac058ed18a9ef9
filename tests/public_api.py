"""One walker of course_lib's public API for the tests that check every public function
(tests/test_conventions.py, tests/test_docstrings.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable, Iterator

import course_lib


def public_functions() -> Iterator[tuple[str, Callable, str]]:
    """``(qualified name, function, docstring)`` of every public function and method of course_lib.

    A module's own functions and classes whose names do not start with ``_``; a class's methods
    likewise, ``__init__`` included; a method's docstring is its class's followed by its own.
    ``__main__`` modules are skipped (importing one runs it)."""
    for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj, inspect.getdoc(obj) or ""
            elif inspect.isclass(obj):
                for attr, fn in vars(obj).items():
                    if inspect.isfunction(fn) and (attr == "__init__" or not attr.startswith("_")):
                        yield (f"{module.__name__}.{name}.{attr}", fn,
                               (inspect.getdoc(obj) or "") + "\n" + (inspect.getdoc(fn) or ""))
