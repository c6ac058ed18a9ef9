"""Files written safely and checked: one SHA-256 helper and one atomic write, for the
MNIST cache (:mod:`course_lib.data`) and the shipped weights (:mod:`course_lib.pretrained`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb", *,
                 check: Callable[[Path], None] | None = None) -> Path:
    """Write ``path`` through a temporary file in the same folder, then ``os.replace`` it into place,
    so readers only ever see the old file or the complete new one.

    ``write(f)`` fills the open temporary file; ``check(tmp_path)``, if given, runs on the
    finished temporary file and may raise to discard it (e.g. a hash mismatch). Returns ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
