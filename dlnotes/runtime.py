"""Runtime helpers every chapter uses: seeding, device choice, environment report.

Taught in: every chapter's first cell (see ``book/intro.md``, "How to read this book").
Heavy libraries (torch, keras) are imported lazily so ``import dlnotes`` stays cheap.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys

import numpy as np

__all__ = ["seed_everything", "get_device", "env_report"]

_DEVICE_PREFERENCES = ("cuda", "mps", "cpu")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer. Received: seed={seed!r} of type {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"`seed` must be in [0, 2**32). Received: seed={seed!r}")
    return int(seed)


def seed_everything(seed: int = 0) -> int:
    """Seed Python's ``random``, NumPy, PyTorch (CPU and CUDA) and, if imported, Keras.

    Keras 3 draws unseeded initialiser seeds from Python's ``random``, so seeding
    ``random`` covers Keras even when it is imported later; if Keras is already
    imported, its global seed generator is reset as well
    (``keras.utils.set_random_seed``).

    Args:
        seed: a non-negative integer below ``2**32``.

    Returns:
        The seed, so a cell can print what it used.

    Raises:
        TypeError: ``seed`` is not an integer.
        ValueError: ``seed`` is negative or too large.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in sys.modules or _installed("torch"):
        import torch

        torch.manual_seed(seed)  # also seeds every CUDA device
    if "keras" in sys.modules:
        _seed_keras(seed)
    return seed


def _seed_keras(seed: int) -> None:
    """Reset Keras's global seed and seed generator, as ``keras.utils.set_random_seed`` does.

    That function also imports TensorFlow whenever it is installed (to seed ``tf.random``),
    which costs seconds and prints log lines on stderr in a torch-backend notebook; so when
    TensorFlow is neither imported nor the backend, only Keras's own state is reset.
    """
    import keras

    if "tensorflow" in sys.modules or keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
    except ImportError:  # a future Keras moved its internals: fall back to the public call
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)


def get_device(prefer: str | None = None):
    """Return the best available ``torch.device``: CUDA, then Apple MPS, then CPU.

    Args:
        prefer: force one of ``"cuda"``, ``"mps"``, ``"cpu"``; ``None`` picks automatically.

    Raises:
        ValueError: ``prefer`` is not one of the three, or that device is not available.
    """
    import torch

    if prefer is not None and prefer not in _DEVICE_PREFERENCES:
        raise ValueError(f"`prefer` must be one of {_DEVICE_PREFERENCES} or None. Received: prefer={prefer!r}")
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if prefer is not None:
        if not available[prefer]:
            raise ValueError(f"Device {prefer!r} is not available on this machine. Received: prefer={prefer!r}")
        return torch.device(prefer)
    return torch.device(next(name for name in _DEVICE_PREFERENCES if available[name]))


def _installed(package: str) -> bool:
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def env_report(packages: tuple[str, ...] = ("numpy", "torch", "keras")) -> str:
    """Print and return a short report: Python, package versions, Keras backend, device.

    Chapters call it in their first cell; nbval ignores that cell's output because
    versions and devices differ from machine to machine.

    Args:
        packages: distribution names whose installed versions to list.

    Raises:
        TypeError: ``packages`` is not a tuple or list of strings.
    """
    if isinstance(packages, str) or not all(isinstance(p, str) for p in packages):
        raise TypeError(f"`packages` must be a tuple of package names. Received: packages={packages!r}")
    lines = [f"Python   {platform.python_version()} ({platform.system()} {platform.machine()})"]
    lines += [f"{name:<8} {_version(name)}" for name in packages]
    lines.append(f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '(unset: keras defaults to tensorflow)')}")
    if "torch" in packages and _installed("torch"):
        import torch

        lines.append(f"device   {get_device()} ({torch.get_num_threads()} CPU threads)")
    report = "\n".join(lines)
    print(report)
    return report
