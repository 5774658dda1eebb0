r"""Robustness of the MNIST CNN, and the safety of the files a model travels in.

Taught in: *Robustness and security* (``book/outlook/robustness.ipynb``). The attacks and shifts
are in :mod:`dlnotes.scratch.robustness`; the model is the one of *Interpretability*
(:func:`dlnotes.pipelines.interpretability.build_cnn`).

In the order the chapter uses them:

- :func:`adversarial_train`: Madry et al.'s min-max training, :math:`\min_\theta \mathbb E\,
  \max_{\lVert \delta\rVert_\infty \le \varepsilon} \ell(f_\theta(x + \delta), y)`, with the inner
  maximum approximated by PGD (a few steps) or by a single FGSM step (Goodfellow et al., 2015);
- :func:`accuracy_under_attack` and :func:`accuracy_under_shift`: accuracy curves over
  :math:`\varepsilon`, a rotation angle, a noise or blur level, on one fixed held-out set;
- unsafe and safe model files: :func:`write_pickle_payload` (a checkpoint whose unpickling *calls*
  a function, here a harmless ``print``), :func:`torch_load_in_subprocess` (load a file in a fresh
  interpreter and report what it printed), :func:`safetensors_header` (the JSON header of a
  ``.safetensors`` file, read by hand), :func:`sha256_file` and :func:`verify_sha256`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from dlnotes._checks import check_choice, check_positive_int, check_real
from dlnotes.pipelines.interpretability import build_cnn
from dlnotes.runtime import seed_everything
from dlnotes.scratch import robustness as attacks

__all__ = ["ATTACKS", "SHIFTS", "adversarial_train", "accuracy_under_attack", "accuracy_under_shift",
           "PickledPayload", "write_pickle_payload", "torch_load_in_subprocess", "safetensors_header",
           "sha256_file", "verify_sha256"]

ATTACKS = ("fgsm", "pgd")
SHIFTS = ("rotation", "noise", "blur")


def _tensors(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"`x` must be images of shape (N, 28, 28). Received: x.shape={x.shape}")
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if y.shape != (x.shape[0],):
        raise ValueError(f"`y` must hold one label per image. Received: y.shape={tuple(y.shape)}")
    return torch.from_numpy(x)[:, None], y


def _attack(model, x, y, attack: str, eps: float, steps: int, generator) -> torch.Tensor:
    if attack == "fgsm":
        return attacks.fgsm(model, x, y, eps)
    return attacks.pgd(model, x, y, eps, steps=steps, generator=generator)


def adversarial_train(x, y, *, eps: float = 0.3, attack: str = "pgd", steps: int = 3, epochs: int = 4,
                      batch_size: int = 64, learning_rate: float = 2e-3, seed: int = 0,
                      model: nn.Module | None = None) -> nn.Module:
    r"""Train on adversarial examples made on the fly: each batch is replaced by its attack.

    Args:
        x, y: images ``(N, 28, 28)`` in :math:`[0, 1]` and labels ``(N,)``.
        eps: the training budget :math:`\varepsilon` (:math:`L^\infty`).
        attack: ``"pgd"`` (``steps`` steps of size :math:`2.5\varepsilon/K`, random start) or
            ``"fgsm"`` (one step of :math:`\varepsilon` from :math:`x`).
        epochs, batch_size, learning_rate, seed: as in
            :func:`~dlnotes.pipelines.interpretability.train_cnn` (Adam on the mean cross-entropy).
        model: start from this model (it is trained in place); a fresh :func:`build_cnn` when None.

    Returns:
        The model in eval mode. The attack runs with the model in eval mode (no dropout or batch
        norm here, so the mode changes nothing but is stated).
    """
    eps = check_real("eps", eps, 0.0)
    check_choice("attack", attack, ATTACKS)
    steps, epochs = check_positive_int("steps", steps), check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    images, labels = _tensors(x, y)
    seed_everything(seed)
    model = build_cnn() if model is None else model
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            model.eval()
            x_adv = _attack(model, images[batch], labels[batch], attack, eps, steps, generator)
            model.train()
            loss = nn.functional.cross_entropy(model(x_adv), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def _accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((model(images).argmax(1) == labels).numpy().mean())


def accuracy_under_attack(model, x, y, epsilons, *, attack: str = "fgsm", steps: int = 10, seed: int = 0) -> np.ndarray:
    r"""Accuracy on ``attack(x, eps)`` for each ``eps`` in ``epsilons``; shape ``(len(epsilons),)``.

    White-box: the attack sees the model's gradients. ``eps = 0`` gives the clean accuracy. PGD
    uses ``steps`` steps of :math:`2.5\varepsilon/K` from a random start drawn with ``seed``.
    """
    check_choice("attack", attack, ATTACKS)
    steps = check_positive_int("steps", steps)
    epsilons = np.asarray(epsilons, dtype=float)
    if epsilons.ndim != 1 or np.any(~np.isfinite(epsilons)) or np.any(epsilons < 0):
        raise ValueError(f"`epsilons` must be a 1-D list of numbers >= 0. Received: epsilons={epsilons!r}")
    images, labels = _tensors(x, y)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for eps in epsilons:
        x_adv = images if eps == 0 else _attack(model, images, labels, attack, float(eps), steps, generator)
        out.append(_accuracy(model, x_adv, labels))
    return np.array(out)


def accuracy_under_shift(model, x, y, shift: str, levels, *, seed: int = 0) -> np.ndarray:
    """Accuracy after ``shift`` (``"rotation"`` in degrees, ``"noise"`` sigma, ``"blur"`` sigma) at each level.

    The shifts are :func:`~dlnotes.scratch.robustness.rotate`, :func:`~dlnotes.scratch.robustness.gaussian_noise`
    (with ``seed``) and :func:`~dlnotes.scratch.robustness.gaussian_blur`; shape ``(len(levels),)``.
    """
    check_choice("shift", shift, SHIFTS)
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or np.any(~np.isfinite(levels)) or (shift != "rotation" and np.any(levels < 0)):
        raise ValueError(f"`levels` must be a 1-D list of finite numbers (>= 0 for noise and blur). Received: levels={levels!r}")
    x = np.asarray(x, dtype=np.float32)
    labels = torch.as_tensor(np.asarray(y), dtype=torch.long)
    out = []
    for level in levels:
        if shift == "rotation":
            shifted = attacks.rotate(x, float(level))
        elif shift == "noise":
            shifted = attacks.gaussian_noise(x, float(level), seed=seed)
        else:
            shifted = attacks.gaussian_blur(x, float(level))
        out.append(_accuracy(model, _tensors(shifted, labels)[0], labels))
    return np.array(out)


# --- model files ------------------------------------------------------------------------------


class PickledPayload:
    """An object whose unpickling calls ``print(message)``: what a malicious checkpoint does with worse calls.

    ``pickle`` rebuilds an object by calling whatever ``__reduce__`` returned; here the builtin
    ``print``, so loading the file prints ``message`` and nothing else happens. The class itself is
    not needed to load the file: the pickle names ``builtins.print`` directly.
    """

    def __init__(self, message: str = "payload ran"):
        if not isinstance(message, str):
            raise TypeError(f"`message` must be a string. Received: message={message!r}")
        self.message = message

    def __reduce__(self):
        return (print, (self.message,))


def write_pickle_payload(path, message: str = "payload ran") -> Path:
    """``torch.save`` a checkpoint with real weights plus a :class:`PickledPayload`; returns the path."""
    path = Path(path)
    torch.save({"weight": torch.zeros(2, 2), "config": PickledPayload(message)}, path)
    return path


def torch_load_in_subprocess(path, *, weights_only: bool, timeout: float = 60.0) -> dict:
    """Run ``torch.load(path, weights_only=...)`` in a fresh Python and report what happened.

    Returns ``{"returncode", "stdout", "error"}``: ``stdout`` is what loading printed (the payload's
    output, then ``loaded`` if it succeeded), ``error`` the exception's type name or ``None``.
    A separate process keeps whatever the file does out of the caller's interpreter.
    """
    if not isinstance(weights_only, bool):
        raise TypeError(f"`weights_only` must be True or False. Received: weights_only={weights_only!r}")
    code = ("import sys, torch\n"
            "try:\n"
            "    torch.load(sys.argv[1], weights_only=sys.argv[2] == 'True')\n"
            "except Exception as error:\n"
            "    print('ERROR', type(error).__name__)\n"
            "    sys.exit(1)\n"
            "print('loaded')\n")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(weights_only)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    lines = proc.stdout.splitlines()
    error = next((line.split(" ", 1)[1] for line in lines if line.startswith("ERROR ")), None)
    return {"returncode": proc.returncode, "stdout": [line for line in lines if not line.startswith("ERROR ")],
            "error": error}


def safetensors_header(path) -> dict:
    """The JSON header of a ``.safetensors`` file, parsed by hand.

    The format is: 8 bytes little-endian ``u64`` header length :math:`n`, then :math:`n` bytes of
    JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``,
    then the raw tensor bytes. Nothing in it is executable: a loader only reads numbers.
    """
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def sha256_file(path, *, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of a file as 64 hex digits, read in chunks (what ``pooch.file_hash`` computes)."""
    chunk_size = check_positive_int("chunk_size", chunk_size)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path, expected: str) -> str:
    """Check a file against ``expected`` (``"<hex>"`` or ``"sha256:<hex>"``, the form of
    :data:`dlnotes.data.REGISTRY`); returns the digest, raises ``ValueError`` on a mismatch.
    """
    if not isinstance(expected, str):
        raise TypeError(f"`expected` must be a hex string. Received: expected={expected!r}")
    want = expected.lower().removeprefix("sha256:")
    if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
        raise ValueError(f"`expected` must be 64 hex digits, optionally prefixed 'sha256:'. Received: expected={expected!r}")
    got = sha256_file(path)
    if got != want:
        raise ValueError(f"SHA-256 mismatch for {Path(path).name}: expected {want}, got {got}. Do not load this file.")
    return got
