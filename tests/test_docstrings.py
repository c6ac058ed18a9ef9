"""Every public function states the shape of each tensor it takes (docs/conventions.md, "Shapes"):
its docstring names each tensor argument with a ``[...]`` shape on the same line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import course_lib


def _tensor_arguments():
    """``(qualified name, docstring, [tensor argument names])`` of every public function and method."""
    for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            functions = [(name, obj, inspect.getdoc(obj))] if inspect.isfunction(obj) else []
            if inspect.isclass(obj):
                functions += [(f"{name}.{attr}", fn, (inspect.getdoc(obj) or "") + "\n" + (inspect.getdoc(fn) or ""))
                              for attr, fn in vars(obj).items()
                              if inspect.isfunction(fn) and (attr == "__init__" or not attr.startswith("_"))]
            for qualname, fn, doc in functions:
                tensors = [p.name for p in inspect.signature(fn).parameters.values() if "Tensor" in str(p.annotation)]
                if tensors:
                    yield f"{module.__name__}.{qualname}", doc or "", tensors


def test_the_scan_finds_the_public_functions():
    names = {name for name, _, _ in _tensor_arguments()}
    assert {"course_lib.diffusion.q_sample", "course_lib.guidance.implicit_classifier_grad",
            "course_lib.toy.GaussianMixture2D.score"} <= names


def test_every_tensor_argument_has_its_shape_in_the_docstring():
    missing = [f"{name}: {arg}" for name, doc, tensors in _tensor_arguments() for arg in tensors
               if not re.search(rf"\b{arg}\b[^\n]*\[", doc)]
    assert not missing, "state the shape, e.g. ``x [B, 2]``:\n" + "\n".join(missing)
