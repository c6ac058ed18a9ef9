"""docs/conventions.md cannot drift from the code: every name of its public API block exists with
the arguments it shows, in that order; no function takes both ``seed`` and ``generator``; and a
guidance weight is never called ``scale``."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from public_api import public_functions

PAGE = (Path(__file__).resolve().parents[1] / "docs" / "conventions.md").read_text()
API = PAGE.split("## The public API", 1)[1].split("```", 2)[1]


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "([{" and 1 or char in ")]}" and -1 or 0
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p.strip() for p in parts + [text[start:]] if p.strip()]


def _entries() -> list[tuple[str, str, list[str] | None]]:
    """``(module, dotted name, shown arguments or None)`` for each name of the API block."""
    lines, joined = API.splitlines(), []
    for line in lines:  # a signature continued on the next line
        if joined and joined[-1].count("(") > joined[-1].count(")"):
            joined[-1] += " " + line.strip()
        else:
            joined.append(line)
    out, module, owner = [], None, None
    for line in joined:
        code = line.split("#", 1)[0].rstrip()
        if not code.strip() or code.startswith("python "):
            continue
        if re.fullmatch(r"course_lib(\.\w+)*", code):
            module, owner = code, None
            continue
        if code.startswith("course_lib."):  # course_lib.setup(...)
            module, code = "course_lib", code[len("course_lib."):]
        stripped = code.strip()
        if stripped.startswith("."):
            stripped = f"{owner}{stripped}"
        elif "(" in stripped and stripped[0].isupper():
            owner = stripped.split("(", 1)[0]
        for item in _split_top(re.sub(r"->.*", "", stripped)):
            match = re.fullmatch(r"([\w.]+)(?:\((.*)\))?", item)
            assert match, f"cannot read {item!r} in the API block"
            args = None if match.group(2) is None else _split_top(match.group(2))
            out.append((module, match.group(1), args))
    return out


ENTRIES = _entries()


def test_the_api_block_was_read():
    names = {name for _, name, _ in ENTRIES}
    assert {"sample", "cfg", "compose", "GaussianMixture2D.eps_fn", "load", "setup"} <= names
    assert len(ENTRIES) > 40


@pytest.mark.parametrize("module, name, shown", ENTRIES, ids=[f"{m}.{n}" for m, n, _ in ENTRIES])
def test_every_public_name_exists_with_the_arguments_shown(module, name, shown):
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    if shown is None:
        return
    params = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword_only = False
    for i, arg in enumerate(shown):
        if arg == "*":
            keyword_only = True
            continue
        if arg == "...":
            continue
        arg_name = re.split(r"[\s=\[]", arg, 1)[0]
        if not arg_name.isidentifier():  # a literal standing for the argument, e.g. [(eps_fn, gamma), ...]
            continue
        if keyword_only:
            assert arg_name in {p.name for p in params}, f"{name} has no argument {arg_name}"
        else:
            assert i < len(positional) and positional[i] == arg_name, \
                f"{name}'s argument {i} is {positional[i] if i < len(positional) else None}, the docs show {arg_name}"


def test_no_function_takes_both_a_seed_and_a_generator():
    both = [name for name, fn, _ in public_functions() if {"seed", "generator"} <= set(inspect.signature(fn).parameters)]
    assert not both


def test_a_guidance_weight_is_never_called_scale():
    # plots.vector_field's scale is matplotlib's arrow length scale, not a weight
    allowed = {"course_lib.plots.vector_field", "course_lib.guidance.guidance_scale_to_w"}
    named = [name for name, fn, _ in public_functions()
             if {"scale", "guidance_scale"} & set(inspect.signature(fn).parameters) and name not in allowed]
    assert not named, "1 + w is gamma; a figure size is inches_per_pixel"
