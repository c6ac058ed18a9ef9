"""SHA-256 and the atomic write: readers see the old file or the whole new one, never a part."""

import hashlib
import os

import pytest

from course_lib import files


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert files.sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    assert files.atomic_write(path, lambda f: f.write("new"), mode="w") == path
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["f.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # the usual permissions, not mkstemp's 0600


def test_a_failed_write_or_check_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(path, broken)

    def reject(tmp):
        assert tmp.read_bytes() == b"new"
        raise ValueError("hash mismatch")

    with pytest.raises(ValueError, match="hash mismatch"):
        files.atomic_write(path, lambda f: f.write(b"new"), check=reject)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
    with pytest.raises(ValueError, match="mode"):
        files.atomic_write(path, lambda f: None, mode="a")
