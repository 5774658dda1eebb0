"""dlnotes.runtime: seeding, device choice and the environment report."""

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import dlnotes


def draws():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_seed_everything_makes_every_generator_repeat():
    dlnotes.seed_everything(123)
    first = draws()
    dlnotes.seed_everything(123)
    assert draws() == first
    dlnotes.seed_everything(124)
    assert draws() != first


def test_seed_everything_resets_keras_seed_generator():
    import keras  # a core dependency: never skip
    dlnotes.seed_everything(7)
    a = keras.ops.convert_to_numpy(keras.random.normal((3,)))
    dlnotes.seed_everything(7)
    b = keras.ops.convert_to_numpy(keras.random.normal((3,)))
    np.testing.assert_array_equal(a, b)


def test_seed_everything_does_not_import_tensorflow_for_torch_keras():
    code = (
        "import os, sys; os.environ['KERAS_BACKEND'] = 'torch'; import keras, dlnotes; "
        "dlnotes.seed_everything(3); a = keras.ops.convert_to_numpy(keras.random.normal((2,))); "
        "dlnotes.seed_everything(3); b = keras.ops.convert_to_numpy(keras.random.normal((2,))); "
        "print('tensorflow' in sys.modules, (a == b).all())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


@pytest.mark.parametrize("seed, error, match", [
    (-1, ValueError, "seed=-1"), (2**32, ValueError, "seed=4294967296"),
    (1.5, TypeError, "seed=1.5"), ("0", TypeError, "seed='0'"), (True, TypeError, "seed=True"),
])
def test_seed_everything_rejects_bad_seed(seed, error, match):
    with pytest.raises(error, match=match):
        dlnotes.seed_everything(seed)


def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert dlnotes.get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert dlnotes.get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dlnotes.get_device() == torch.device("cuda")
    assert dlnotes.get_device("cpu") == torch.device("cpu")


def test_get_device_rejects_unknown_or_unavailable(monkeypatch):
    with pytest.raises(ValueError, match="prefer='tpu'"):
        dlnotes.get_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="prefer='cuda'"):
        dlnotes.get_device("cuda")


def test_env_report_lists_versions_and_device(capsys):
    report = dlnotes.env_report()
    assert f"torch    {torch.__version__}" in report
    assert f"numpy    {np.__version__}" in report
    assert "device   " in report
    assert capsys.readouterr().out.strip() == report


def test_env_report_rejects_a_bare_string():
    with pytest.raises(TypeError, match="packages='torch'"):
        dlnotes.env_report("torch")
