"""dlnotes.pipelines.robustness: adversarial training helps against the attack, the curves mean what they say,
and the model-file helpers refuse what they should.

Training is two epochs on 1,000 of the offline MNIST digits (about a second each). The pickle
payload is harmless (it calls ``print``) and is only ever loaded with ``weights_only=False`` in a
subprocess. The hand-written SHA-256 is checked against ``pooch.file_hash`` (what
``dlnotes.data`` verifies downloads with) and the safetensors header against ``safe_open``.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from dlnotes.data import load_mnist
from dlnotes.pipelines import interpretability as interp
from dlnotes.pipelines import robustness as rob


@pytest.fixture(scope="module")
def data():
    (x, y), (x_test, y_test) = load_mnist(n_train=1000)
    return x, y, x_test[:300], y_test[:300]


@pytest.fixture(scope="module")
def models(data):
    x, y, _, _ = data
    clean = interp.train_cnn(x, y, epochs=2, seed=0)
    # Fine-tuning the clean model adversarially: two epochs suffice for a clear effect.
    adv = rob.adversarial_train(x, y, eps=0.2, attack="pgd", steps=2, epochs=2, seed=0, model=copy.deepcopy(clean))
    return clean, adv


def test_curves_start_at_the_clean_accuracy_and_fall(models, data):
    clean, _ = models
    _, _, x, y = data
    curve = rob.accuracy_under_attack(clean, x, y, [0.0, 0.1, 0.2, 0.3])
    assert curve.shape == (4,) and curve[0] == interp.accuracy(clean, x, y)
    assert np.all(np.diff(curve) < 0) and curve[-1] < 0.5 * curve[0]
    pgd = rob.accuracy_under_attack(clean, x, y, [0.1, 0.2], attack="pgd", steps=5)
    assert np.all(pgd <= curve[1:3])  # the stronger attack finds at least as many errors


def test_adversarial_training_buys_robustness(models, data):
    clean, adv = models
    _, _, x, y = data
    robust = rob.accuracy_under_attack(adv, x, y, [0.2], attack="pgd", steps=5)[0]
    naive = rob.accuracy_under_attack(clean, x, y, [0.2], attack="pgd", steps=5)[0]
    assert robust > naive + 0.1  # measured: 0.49 against 0.30


def test_adversarial_training_is_reproducible(data):
    x, y, _, _ = data
    a = rob.adversarial_train(x[:256], y[:256], eps=0.1, attack="fgsm", epochs=1, seed=3)
    b = rob.adversarial_train(x[:256], y[:256], eps=0.1, attack="fgsm", epochs=1, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_shift_curves(models, data):
    clean, _ = models
    _, _, x, y = data
    base = interp.accuracy(clean, x, y)
    for shift, levels in (("rotation", [0, 45]), ("noise", [0, 0.6]), ("blur", [0, 2.0])):
        curve = rob.accuracy_under_shift(clean, x, y, shift, levels)
        assert curve[0] == base and curve[1] < base, shift


def test_pipeline_arguments_are_checked(models, data):
    clean, _ = models
    _, _, x, y = data
    with pytest.raises(ValueError, match=r"`attack` must be one of \('fgsm', 'pgd'\). Received: attack='cw'"):
        rob.accuracy_under_attack(clean, x, y, [0.1], attack="cw")
    with pytest.raises(ValueError, match=r"`epsilons` must be a 1-D list of numbers >= 0"):
        rob.accuracy_under_attack(clean, x, y, [-0.1])
    with pytest.raises(ValueError, match=r"`shift` must be one of .*Received: shift='fog'"):
        rob.accuracy_under_shift(clean, x, y, "fog", [1])
    with pytest.raises(ValueError, match=r"`x` must be images of shape \(N, 28, 28\)"):
        rob.adversarial_train(x[:, :10], y)
    with pytest.raises(ValueError, match="`epochs` must be a positive integer. Received: epochs=0"):
        rob.adversarial_train(x, y, epochs=0)


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    return rob.write_pickle_payload(tmp_path_factory.mktemp("files") / "checkpoint.pt", "payload ran 42")


def test_weights_only_false_runs_the_payload_in_a_subprocess(payload):
    result = rob.torch_load_in_subprocess(payload, weights_only=False)
    assert result == {"returncode": 0, "stdout": ["payload ran 42", "loaded"], "error": None}


def test_weights_only_true_refuses_before_running_anything(payload, capsys):
    result = rob.torch_load_in_subprocess(payload, weights_only=True)
    assert result == {"returncode": 1, "stdout": [], "error": "UnpicklingError"}
    with pytest.raises(Exception, match="Unsupported global") as error:  # in-process is safe: it refuses first
        torch.load(payload, weights_only=True)
    assert type(error.value).__name__ == "UnpicklingError"
    assert "payload ran" not in capsys.readouterr().out


def test_a_plain_state_dict_loads_with_weights_only(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(interp.build_cnn().state_dict(), path)
    assert rob.torch_load_in_subprocess(path, weights_only=True) == {"returncode": 0, "stdout": ["loaded"], "error": None}


def test_safetensors_round_trip_and_header(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    state = {k: v.contiguous() for k, v in interp.build_cnn().state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, path, metadata={"course": "dlnotes"})
    loaded = load_file(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    header = rob.safetensors_header(path)
    assert header.pop("__metadata__") == {"course": "dlnotes"}
    with safe_open(path, framework="pt") as f:
        assert sorted(header) == sorted(f.keys())
        assert all(header[k]["shape"] == list(f.get_slice(k).get_shape()) for k in header)
    assert all(set(entry) == {"dtype", "shape", "data_offsets"} and entry["dtype"] == "F32" for entry in header.values())
    ends = sorted(e["data_offsets"][1] for e in header.values())
    assert ends[-1] == sum(v.numel() * 4 for v in state.values())  # the bytes after the header are the tensors
    with pytest.raises(Exception):
        save_file({"config": rob.PickledPayload()}, tmp_path / "bad.safetensors")  # only tensors can be stored


@settings(max_examples=20, deadline=None)
@given(content=st.binary(max_size=5000), chunk=st.integers(1, 700))
def test_sha256_equals_pooch_file_hash(tmp_path_factory, content, chunk):
    import pooch

    path = tmp_path_factory.mktemp("h") / "blob.bin"
    path.write_bytes(content)
    assert rob.sha256_file(path, chunk_size=chunk) == pooch.file_hash(str(path), alg="sha256")


def test_verify_sha256_accepts_the_right_digest_and_rejects_a_flipped_byte(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 4)
    digest = rob.sha256_file(path)
    assert rob.verify_sha256(path, "sha256:" + digest.upper()) == digest
    raw = bytearray(path.read_bytes())
    raw[100] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"SHA-256 mismatch for weights.bin: expected [0-9a-f]{64}, got [0-9a-f]{64}"):
        rob.verify_sha256(path, digest)
    with pytest.raises(ValueError, match="`expected` must be 64 hex digits"):
        rob.verify_sha256(path, "md5:abc")
    with pytest.raises(TypeError, match="`weights_only` must be True or False. Received: weights_only=1"):
        rob.torch_load_in_subprocess(path, weights_only=1)


def test_keras_safe_mode_refuses_a_lambda(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda v: v * 2.0)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ValueError, match="deserialization of a `Lambda` layer"):
        keras.saving.load_model(path)  # safe_mode=True is the default
    again = keras.saving.load_model(path, safe_mode=False)
    x = np.ones((1, 3), dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), 2 * x)


def test_chapter_thresholds_are_the_measured_ones():
    """The notebook's checked constants are scripts/thresholds/robustness.py's, beyond the worst seed of
    every table in benchmarks/robustness_thresholds.md (1 and 2 threads)."""
    from tests.helpers import chapter_thresholds_hold

    chapter_thresholds_hold("robustness", "book/outlook/robustness.ipynb", {
        "CLEAN_ACCURACY_MIN": "clean_accuracy", "CLEAN_FGSM_02_MAX": "clean_fgsm_02", "CLEAN_PGD_02_MAX": "clean_pgd_02",
        "ADV_ACCURACY_MIN": "adv_accuracy", "ADV_PGD_02_MIN": "adv_pgd_02",
        "PGD_OVER_FGSM_TRAINING_MIN": "pgd_over_fgsm_training"})
