r"""Data-parallel training on several processes: PyTorch DDP, started by ``torchrun``.

Taught in: *Training on more than one process* (``book/faq/distributed.ipynb``).

Each of :math:`W` processes (ranks) holds a full copy of the model and reads its own share
of every global batch (``DistributedSampler``). Rank :math:`r` computes the gradient of its
local mean loss over :math:`B` examples, and ``DistributedDataParallel`` all-reduces the
gradients, so every rank ends the backward pass with

.. math::

    g = \frac{1}{W} \sum_{r=1}^{W} \nabla_\theta \frac{1}{B} \sum_{i \in \mathcal{B}_r} \ell_i(\theta)
      = \nabla_\theta \frac{1}{WB} \sum_{i \in \mathcal{B}_1 \cup \dots \cup \mathcal{B}_W} \ell_i(\theta),

the gradient of the mean loss over the global batch of :math:`WB` examples. All ranks apply
the same step :math:`\theta \leftarrow \theta - \alpha g` to the same weights, so they stay
identical, and the run is one process trained with batch :math:`WB`, up to the order of the
floating-point additions. Layers that look at the whole batch (batch normalisation) or draw
random numbers (dropout) break that equality; the chapter measures by how much.

The pipeline API of :mod:`dlnotes.pipelines.common` holds: :func:`build_torch_model` and
:func:`train_torch` with the shared argument names; there is no ``evaluate_*``, since the
chapter compares weights, not accuracies (:func:`max_weight_difference`).

Run ``python -m dlnotes.pipelines.distributed --help`` for the worker's options;
:func:`launch` starts it with ``torchrun`` (``python -m torch.distributed.run``) on this
machine, on the CPU with the ``gloo`` backend.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dlnotes._checks import check_choice, check_positive_int, check_real
from dlnotes.pipelines.common import check_training_args
from dlnotes.runtime import _check_seed

__all__ = ["make_blobs", "build_torch_model", "train_torch", "max_weight_difference", "run_here", "launch", "main"]

NORMS = ("none", "batch", "sync")


def make_blobs(n: int, *, n_features: int = 16, n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""A deterministic classification set: :math:`K` Gaussian blobs in :math:`\mathbb{R}^D`.

    Class :math:`k` has a centre :math:`\mu_k \sim \mathcal{N}(0, 4 I)`; example :math:`i`
    of class :math:`y_i = i \bmod K` is :math:`x_i = \mu_{y_i} + \varepsilon_i`,
    :math:`\varepsilon_i \sim \mathcal{N}(0, I)`.

    Returns:
        ``x`` float64 ``(n, n_features)`` and ``y`` int64 ``(n,)``.
    """
    n, d = check_positive_int("n", n), check_positive_int("n_features", n_features)
    k = check_positive_int("n_classes", n_classes)
    rng = np.random.default_rng(_check_seed(seed))
    centres = rng.normal(0.0, 2.0, size=(k, d))
    y = np.arange(n) % k
    x = centres[y] + rng.normal(size=(n, d))
    return x, y.astype(np.int64)


def build_torch_model(n_features: int = 16, n_classes: int = 4, *, hidden: int = 64, norm: str = "none",
                      dropout: float = 0.0, seed: int = 0):
    """A two-layer perceptron in float64: Linear, [BatchNorm1d], ReLU, [Dropout], Linear.

    Args:
        n_features, n_classes, hidden: layer sizes.
        norm: ``"none"``, ``"batch"`` (a ``BatchNorm1d`` after the first layer) or ``"sync"``
            (the same layer, which :func:`main` turns into a ``SyncBatchNorm`` on several
            processes: statistics over all ranks; PyTorch allows it on GPU modules only).
        dropout: the drop probability, in ``[0, 1)``; 0 leaves dropout out.
        seed: seeds the initial weights (``torch.manual_seed``), the same on every rank.
    """
    import torch
    from torch import nn

    n_features, n_classes = check_positive_int("n_features", n_features), check_positive_int("n_classes", n_classes)
    hidden, norm = check_positive_int("hidden", hidden), check_choice("norm", norm, NORMS)
    dropout = check_real("dropout", dropout, 0.0, 1.0, high_open=True)
    torch.manual_seed(_check_seed(seed))
    layers = [nn.Linear(n_features, hidden)]
    if norm in ("batch", "sync"):
        layers.append(nn.BatchNorm1d(hidden))
    layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, n_classes))
    return nn.Sequential(*layers).double()


def train_torch(model, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
                rank: int = 0, world_size: int = 1) -> dict[str, list[float]]:
    r"""Train with SGD on this rank's share of every global batch of ``world_size * batch_size``.

    ``DistributedSampler`` shuffles all :math:`n` indices with ``seed + epoch`` (the same
    permutation on every rank) and gives rank :math:`r` the positions :math:`r, r + W, r + 2W,
    \dots`; its :math:`k`-th batch of :math:`B` is therefore one :math:`W`-th of the
    :math:`k`-th block of :math:`WB` positions, and together the ranks cover exactly the batch
    that one process with batch :math:`WB` reads. With ``world_size > 1`` ``model`` must be a
    ``DistributedDataParallel`` and the process group initialised.

    Returns:
        ``{"loss": [...], "seconds": [...]}``: this rank's mean batch loss and wall seconds per epoch.
    """
    import torch
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    epochs, batch_size, learning_rate, seed = check_training_args(epochs=epochs, batch_size=batch_size,
                                                                  learning_rate=learning_rate, seed=seed)
    world_size = check_positive_int("world_size", world_size)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world_size:
        raise ValueError(f"`rank` must be an integer in [0, world_size={world_size}). Received: rank={rank!r}")
    if len(x) != len(y) or len(x) % (world_size * batch_size):
        raise ValueError("`x` and `y` must have the same length, a multiple of world_size * batch_size = "
                         f"{world_size * batch_size}. Received: len(x)={len(x)}, len(y)={len(y)}")
    dataset = TensorDataset(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.int64))
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=int(rank), shuffle=True, seed=seed,
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    history = {"loss": [], "seconds": []}
    model.train()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new permutation each epoch, the same on every rank
        start, total = time.perf_counter(), 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            optimizer.step()
            total += loss.item()
        history["loss"].append(total / len(loader))
        history["seconds"].append(time.perf_counter() - start)
    return history


def max_weight_difference(a: dict, b: dict) -> float:
    r""":math:`\max_k \lVert a_k - b_k \rVert_\infty` over the floating-point tensors of two ``state_dict``\ s.

    Raises:
        ValueError: the two hold different keys or shapes.
    """
    if a.keys() != b.keys():
        raise ValueError(f"the state dicts hold different keys. Received: {sorted(a)} and {sorted(b)}")
    worst = 0.0
    for key in a:
        if a[key].shape != b[key].shape:
            raise ValueError(f"`{key}` has shape {tuple(a[key].shape)} in one and {tuple(b[key].shape)} in the other")
        if a[key].is_floating_point():
            worst = max(worst, (a[key].double() - b[key].double()).abs().max().item())
    return worst


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dlnotes.pipelines.distributed", exit_on_error=False,
                                     description="One rank of a DDP run (start it with torchrun).")
    parser.add_argument("--out", type=Path, required=True, help="folder for rank 0's weights and summary")
    parser.add_argument("--examples", type=int, default=2048, help="training examples")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="per process (the global batch is W times it)")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--norm", default="none", choices=NORMS)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _run(args: argparse.Namespace, rank: int, world_size: int, distributed: bool):
    """Data, model (the same initial weights and dropout stream on every rank) and training."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    x, y = make_blobs(args.examples, seed=args.seed)
    model = build_torch_model(hidden=args.hidden, norm=args.norm, dropout=args.dropout, seed=args.seed)
    if args.norm == "sync" and distributed:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    torch.manual_seed(args.seed)  # the same dropout stream on every rank
    wrapped = DistributedDataParallel(model) if distributed else model
    history = train_torch(wrapped, x, y, epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, seed=args.seed, rank=rank, world_size=world_size)
    return model, {"world_size": world_size, "threads": torch.get_num_threads(), **history}


def main(argv=None) -> int:
    """One rank: initialise the process group, train, let rank 0 save, and shut down cleanly."""
    import torch
    import torch.distributed as dist

    args = _parser().parse_args(argv)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    distributed = "MASTER_ADDR" in os.environ  # set by torchrun
    if distributed:
        dist.init_process_group("gloo")
    try:
        model, summary = _run(args, rank, world_size, distributed)
        if distributed:
            dist.barrier()
        if rank == 0:  # one rank writes the checkpoint: the weights are the same on all of them
            args.out.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), args.out / "model.pt")
            (args.out / "summary.json").write_text(json.dumps(summary))
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


def _command_line(options: dict) -> list[str]:
    argv = []
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def run_here(**options) -> dict:
    """What :func:`main` computes on one process, in this process (no ``torchrun``, no process group).

    The same options as :func:`launch`; returns the same summary, with the weights under
    ``"state_dict"`` and ``"wall_seconds"`` for the whole call.
    """
    start = time.perf_counter()
    parser = _parser()
    known = set(vars(parser.parse_args(["--out", "-"]))) - {"out"}  # the options, by their Python names
    for name in options:
        if name not in known:
            raise TypeError(f"run_here() got an unknown option `{name}`. Options: {sorted(known)}")
    try:
        args = parser.parse_args(["--out", "-", *_command_line(options)])
    except argparse.ArgumentError as error:
        raise ValueError(f"{error}. Received: {options}") from None
    model, summary = _run(args, rank=0, world_size=1, distributed=False)
    summary["state_dict"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    summary["wall_seconds"] = time.perf_counter() - start
    return summary


def launch(nproc: int, out: Path, *, timeout: float = 300.0, **options) -> dict:
    """Run :func:`main` on ``nproc`` processes with ``torchrun --standalone`` and read rank 0's results.

    ``options`` are the worker's command-line options by their Python names
    (``batch_size=16`` becomes ``--batch-size 16``). Returns the summary with the weights
    under ``"state_dict"`` (loaded with ``weights_only=True``) and the launcher's
    ``"wall_seconds"``.
    """
    import torch

    nproc = check_positive_int("nproc", nproc)
    out = Path(out)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "dlnotes.pipelines.distributed", "--out", str(out), *_command_line(options)]
    env = dict(os.environ)
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback: nothing leaves the machine
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:  # the workers' exceptions first, then the end of torchrun's report
        raised = [line for line in proc.stderr.splitlines() if re.match(r"\[rank\d+\]: \w+(Error|Exception)\b", line)]
        raise RuntimeError(f"torchrun exited with {proc.returncode}; the workers raised:\n" + "\n".join(raised)
                           + f"\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    summary["state_dict"] = torch.load(out / "model.pt", weights_only=True)
    summary["wall_seconds"] = wall
    return summary


if __name__ == "__main__":
    sys.exit(main())
