"""Every public function states the shape of each tensor it takes (docs/conventions.md, "Shapes"):
its docstring names each tensor argument with a ``[...]`` shape on the same line."""

from __future__ import annotations

import inspect
import re

from public_api import public_functions


def _tensor_arguments():
    """``(qualified name, docstring, [tensor argument names])`` of every public function and method."""
    for name, fn, doc in public_functions():
        tensors = [p.name for p in inspect.signature(fn).parameters.values() if "Tensor" in str(p.annotation)]
        if tensors:
            yield name, doc, tensors


def test_the_scan_finds_the_public_functions():
    names = {name for name, _, _ in _tensor_arguments()}
    assert {"course_lib.diffusion.q_sample", "course_lib.guidance.implicit_classifier_grad",
            "course_lib.toy.GaussianMixture2D.score"} <= names


def test_every_tensor_argument_has_its_shape_in_the_docstring():
    def states_shape(arg: str, doc: str) -> bool:  # an Args entry ``arg: ... [...]`` or inline ``arg [...]``
        entry = rf"^\s*(\w+,\s*)*{arg}(,\s*\w+)*\s*:[^\n]*\["
        return bool(re.search(entry, doc, re.MULTILINE) or re.search(rf"``{arg}( |`` ``)\[", doc))

    missing = [f"{name}: {arg}" for name, doc, tensors in _tensor_arguments() for arg in tensors
               if not states_shape(arg, doc)]
    assert not missing, "state the shape, e.g. ``x [B, 2]``:\n" + "\n".join(missing)
