"""The public cases' expected outputs, stored with the package and checked by hash.

The instant check needs the right answer on each public case, but the package a student
installs holds no reference implementation. So ``build-edition`` (instructor material, see
``python -m course_lib.coursework build-edition``) runs each reference on its exercise's
public cases once and stores the outputs in ``expected.pt`` (tensors, numbers and tuples,
read with ``torch.load(weights_only=True)``), together with a :func:`fingerprint` of the
cases they were computed on; ``expected.sha256`` holds the file's SHA-256. A corrupt file,
or public cases that no longer match the stored outputs, is named as the course's error,
never blamed on the student.
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .. import files

EXPECTED = Path(__file__).with_name("expected.pt")
DIGEST = Path(__file__).with_name("expected.sha256")
REBUILD = "python -m course_lib.coursework build-edition"


class StaleExpected(RuntimeError):
    """The stored expected outputs do not belong to these public cases (a course bug)."""


def fingerprint(value: Any) -> str:
    """SHA-256 of a canonical encoding of a case: tensors by dtype, shape and values; numbers,
    strings and ``None`` by type and value; sequences and dicts element by element; modules by
    class and ``state_dict``; other objects by class and ``vars``. Equal cases, equal prints."""
    digest = hashlib.sha256()
    _feed(digest, value, depth=0)
    return digest.hexdigest()


def _feed(digest, value: Any, depth: int) -> None:
    if depth > 20:
        raise ValueError("fingerprint: the case nests deeper than 20 levels")
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, float):
        digest.update(b"f" + struct.pack("<d", value))
    elif isinstance(value, (tuple, list)):
        digest.update(f"{type(value).__name__}[{len(value)}".encode())
        for item in value:
            _feed(digest, item, depth + 1)
    elif isinstance(value, dict):
        digest.update(f"dict[{len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key, depth + 1)
            _feed(digest, value[key], depth + 1)
    elif isinstance(value, torch.nn.Module):
        digest.update(f"M{type(value).__qualname__}".encode())
        _feed(digest, dict(value.state_dict()), depth + 1)
    elif hasattr(value, "__dict__"):
        digest.update(f"O{type(value).__module__}.{type(value).__qualname__}".encode())
        _feed(digest, {k: v for k, v in vars(value).items() if not callable(v)}, depth + 1)
    else:
        raise TypeError(f"fingerprint: cannot encode a {type(value).__name__}")


@lru_cache(maxsize=1)
def _stored() -> dict[str, dict[str, Any]]:
    if not EXPECTED.is_file() or not DIGEST.is_file():
        raise StaleExpected(f"the instant checks' stored answers are missing ({EXPECTED.name}); "
                            f"an instructor rebuilds them with `{REBUILD}`")
    want = DIGEST.read_text().split()[0]
    if files.sha256(EXPECTED) != want:
        raise StaleExpected(f"{EXPECTED} does not match its SHA-256 in {DIGEST.name} (a damaged install: "
                            "reinstall the course, or rebuild it with "
                            f"`{REBUILD}` from a checkout)")
    return torch.load(EXPECTED, weights_only=True)


def outputs(name: str, cases: list[tuple]) -> list[Any]:
    """The stored expected outputs of exercise ``name`` on its public ``cases``;
    :class:`StaleExpected` if none are stored or they were made from other cases."""
    stored = _stored()
    if name not in stored:
        raise StaleExpected(f"no stored answers for exercise {name!r}; an instructor rebuilds them with `{REBUILD}`")
    if stored[name]["cases"] != fingerprint(cases):
        raise StaleExpected(f"the stored answers of {name!r} were made from other public cases (the course "
                            f"changed since they were built); an instructor rebuilds them with `{REBUILD}`")
    return stored[name]["outputs"]


def write(table: dict[str, tuple[list[tuple], list[Any]]]) -> None:
    """Store ``{name: (public cases, expected outputs)}`` in ``expected.pt`` and its SHA-256."""
    data = {name: {"cases": fingerprint(cases), "outputs": list(outs)} for name, (cases, outs) in sorted(table.items())}
    files.atomic_write(EXPECTED, lambda f: torch.save(data, f))
    files.atomic_write(DIGEST, lambda f: f.write(f"{files.sha256(EXPECTED)}  {EXPECTED.name}\n"), mode="w")
    _stored.cache_clear()
