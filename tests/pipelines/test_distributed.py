"""Tests for dlnotes.pipelines.distributed: DDP on 2 CPU processes is one process with twice the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DistributedSampler

from dlnotes.pipelines import distributed

# float64 weights; the two runs add the same numbers in a different order (all-reduce of two
# half-batch means against one full-batch mean), which costs a few ulps per step: 1e-12 after
# the 64 steps below is a thousand times that, and a real change (one example moved between
# batches, a different learning rate) moves the weights by 1e-3 or more.
SAME_WEIGHTS_ATOL = 1e-12
OPTIONS = dict(examples=1024, epochs=2, hidden=32, learning_rate=0.1, seed=0)


max_weight_difference = distributed.max_weight_difference


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return {
        "one": distributed.run_here(batch_size=32, **OPTIONS),
        "launched_one": distributed.launch(1, out / "one", batch_size=32, **OPTIONS),
        "two": distributed.launch(2, out / "two", batch_size=16, **OPTIONS),
        "one_lr": distributed.run_here(batch_size=32, **(OPTIONS | {"learning_rate": 0.11})),
    }


def test_two_processes_train_the_same_weights_as_one_with_twice_the_batch(runs):
    assert runs["two"]["world_size"] == 2 and runs["one"]["world_size"] == 1
    assert max_weight_difference(runs["one"]["state_dict"], runs["two"]["state_dict"]) <= SAME_WEIGHTS_ATOL


def test_torchrun_with_one_process_is_run_here(runs):
    assert runs["launched_one"]["world_size"] == 1
    assert max_weight_difference(runs["one"]["state_dict"], runs["launched_one"]["state_dict"]) <= SAME_WEIGHTS_ATOL


def test_the_weight_comparison_sees_a_real_change(runs):
    assert max_weight_difference(runs["one"]["state_dict"], runs["one_lr"]["state_dict"]) > 1e-3


def test_the_run_learns(runs):
    loss = runs["two"]["loss"]
    assert len(loss) == OPTIONS["epochs"] and loss[-1] < 0.5 * np.log(4)  # well below chance (log K)


def test_batch_norm_breaks_the_equality(tmp_path):
    options = OPTIONS | {"epochs": 1, "norm": "batch"}
    one = distributed.run_here(batch_size=32, **options)
    two = distributed.launch(2, tmp_path / "two", batch_size=16, **options)
    assert max_weight_difference(one["state_dict"], two["state_dict"]) > 1e-3


@settings(max_examples=50, deadline=None)
@given(world=st.integers(1, 4), batch=st.integers(1, 8), blocks=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_ranks_together_read_the_single_process_batches(world, batch, blocks, seed):
    n = world * batch * blocks
    dataset = list(range(n))
    single = list(DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed, drop_last=True))
    shares = [list(DistributedSampler(dataset, num_replicas=world, rank=r, shuffle=True, seed=seed, drop_last=True))
              for r in range(world)]
    for k in range(blocks):
        together = sorted(i for share in shares for i in share[k * batch:(k + 1) * batch])
        assert together == sorted(single[k * world * batch:(k + 1) * world * batch])


def test_make_blobs_is_deterministic_and_balanced():
    x, y = distributed.make_blobs(40, n_features=3, n_classes=4, seed=1)
    x2, _ = distributed.make_blobs(40, n_features=3, n_classes=4, seed=1)
    assert x.shape == (40, 3) and x.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(x, x2)
    assert np.bincount(y).tolist() == [10, 10, 10, 10]


def test_build_model_layers():
    model = distributed.build_torch_model(5, 3, hidden=7, norm="batch", dropout=0.5)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert all(p.dtype == torch.float64 for p in model.parameters())


@pytest.mark.parametrize("call, message", [
    (lambda: distributed.make_blobs(0), "`n` must be a positive integer. Received: n=0"),
    (lambda: distributed.build_torch_model(norm="layer"), "Received: norm='layer'"),
    (lambda: distributed.build_torch_model(dropout=1.0), "dropout=1.0"),
    (lambda: distributed.launch(0, "out"), "`nproc` must be a positive integer. Received: nproc=0"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_train_checks_rank_and_batch_sizes():
    x, y = distributed.make_blobs(64)
    model = distributed.build_torch_model()
    with pytest.raises(ValueError, match=r"`rank` must be an integer in \[0, world_size=2\). Received: rank=2"):
        distributed.train_torch(model, x, y, epochs=1, batch_size=8, learning_rate=0.1, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"multiple of world_size \* batch_size = 48. Received: len\(x\)=64"):
        distributed.train_torch(model, x, y, epochs=1, batch_size=24, learning_rate=0.1, seed=0, rank=0, world_size=2)


def test_sync_batch_norm_is_refused_on_the_cpu(tmp_path):
    # The chapter says so: DDP accepts SyncBatchNorm for GPU modules only.
    with pytest.raises(RuntimeError, match="SyncBatchNorm layers only work with GPU modules"):
        distributed.launch(2, tmp_path, batch_size=16, **(OPTIONS | {"epochs": 1, "norm": "sync"}))


def test_max_weight_difference():
    a = {"w": torch.zeros(2, 3, dtype=torch.float64), "n": torch.tensor(3)}
    b = {"w": torch.tensor([[0, 0, -0.25], [0, 1e-9, 0]], dtype=torch.float64), "n": torch.tensor(4)}
    assert max_weight_difference(a, b) == 0.25  # integer buffers (batch counters) are not weights
    with pytest.raises(ValueError, match="different keys"):
        max_weight_difference(a, {"w": a["w"]})
    with pytest.raises(ValueError, match=r"`w` has shape \(2, 3\) in one and \(3, 2\) in the other"):
        max_weight_difference(a, {"w": torch.zeros(3, 2), "n": a["n"]})


def test_run_here_names_a_bad_option():
    with pytest.raises(TypeError, match="unknown option `exampels`"):
        distributed.run_here(exampels=64)
    with pytest.raises(ValueError, match="invalid choice: 'layer'"):
        distributed.run_here(norm="layer")


def test_a_failed_launch_shows_the_workers_error(tmp_path):
    with pytest.raises(RuntimeError, match="torchrun exited"):
        distributed.launch(1, tmp_path, norm="layer")
