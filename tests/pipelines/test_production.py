"""dlnotes.pipelines.production: exports reproduce the model, quantisation is what its formula says, timers time.

Small models keep this quick; the chapter (book/faq/production.ipynb) runs the same functions
on the course's classifier and LSTM. Tolerances: float32 copies of a float32 model agree to
1e-5 on probabilities and 1e-4 on logits of order ten (a different summation order moves the
last bits); int8 weights dequantise to within half a quantisation step of the float weights.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from dlnotes import seed_everything  # noqa: E402
from dlnotes.pipelines import production, text_generation  # noqa: E402

SHAPE = (12, 12, 1)


@pytest.fixture(scope="module")
def keras_model():
    seed_everything(0)
    model = keras.Sequential([
        keras.Input(shape=SHAPE),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model(np.zeros((1, *SHAPE), np.float32))  # export needs a model that has run once
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((40, *SHAPE), dtype=np.float32)


@pytest.fixture(scope="module")
def onnx_file(keras_model, tmp_path_factory):
    return production.export_keras_onnx(keras_model, tmp_path_factory.mktemp("onnx") / "model.onnx")


# --- convert and check -------------------------------------------------------------------------

def test_keras_onnx_export_reproduces_the_model(keras_model, onnx_file, images):
    ours = production.OnnxModel(onnx_file)
    for batch in (1, 7, 40):   # the batch axis stays dynamic
        result = production.parity(keras_model.predict(images[:batch], verbose=0), ours(images[:batch]))
        assert result["argmax_agreement"] == 1.0
        assert result["max_abs_diff"] <= 1e-5


def test_tensorflow_subprocess_writes_savedmodel_and_litert(keras_model, images, tmp_path):
    production.save_keras(keras_model, tmp_path / "model.keras")
    files = production.export_keras_tensorflow(tmp_path / "model.keras", tmp_path / "tf", images=images,
                                               calibration=images[:20])
    assert set(files) == set(production.TENSORFLOW_FILES)
    assert all(path.exists() for path in files.values())
    reference = keras_model.predict(images, verbose=0)
    saved = production.parity(reference, np.load(files["saved_model_outputs"]))
    litert = production.parity(reference, production.LiteRTModel(files["litert"])(images))
    for result in (saved, litert):
        assert result["argmax_agreement"] == 1.0 and result["max_abs_diff"] <= 1e-5
    # The quantised LiteRT files hold int8 weights: well under half the float file's size.
    for key in ("litert_dynamic", "litert_int8"):
        assert production.file_size(files[key]) < 0.5 * production.file_size(files["litert"])
        assert np.abs(production.LiteRTModel(files[key])(images) - reference).max() < 0.1


def test_tensorflow_subprocess_failure_is_reported(tmp_path, images):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(RuntimeError, match="TensorFlow export failed"):
        production.export_keras_tensorflow(broken, tmp_path / "tf", images=images, calibration=images)


@pytest.fixture(scope="module")
def lstm_step():
    seed_everything(0)
    return production.LSTMStep(text_generation.build_torch_model(11, embedding_dim=8, hidden_size=16)).eval()


def _lstm_inputs(n, t=12, hidden=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 11, (n, t), generator=gen), 0.1 * torch.randn(1, n, hidden, generator=gen),
            0.1 * torch.randn(1, n, hidden, generator=gen))


def _dynamic_batch():
    batch = torch.export.Dim("batch")
    return {"x": {0: batch}, "h": {1: batch}, "c": {1: batch}}


def test_lstm_step_carries_the_state(lstm_step):
    x, h, c = _lstm_inputs(3, t=24)
    with torch.no_grad():
        whole, h_whole, c_whole = lstm_step(x, h, c)
        first, h1, c1 = lstm_step(x[:, :12], h, c)
        second, h2, c2 = lstm_step(x[:, 12:], h1, c1)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h2, h_whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c2, c_whole, rtol=1e-5, atol=1e-6)


def test_torch_export_and_onnx_reproduce_the_lstm(lstm_step, tmp_path):
    example = _lstm_inputs(4)
    pt2 = production.export_torch_program(lstm_step, example, tmp_path / "m.pt2", dynamic_shapes=_dynamic_batch())
    path = production.export_torch_onnx(lstm_step, example, tmp_path / "m.onnx", dynamic_shapes=_dynamic_batch(),
                                        input_names=["x", "h", "c"], output_names=["logits", "h_out", "c_out"])
    assert not list(tmp_path.glob("*.data")), "the ONNX weights must be inside the one file"
    program, session = production.load_torch_program(pt2), production.OnnxModel(path)
    x, h, c = _lstm_inputs(9, seed=1)  # another batch size than the example's
    with torch.no_grad():
        eager = [t.numpy() for t in lstm_step(x, h, c)]
        exported = [t.numpy() for t in program(x, h, c)]
    from_onnx = session(x.numpy(), h.numpy(), c.numpy(), outputs="all")
    for outputs in (exported, from_onnx):
        for ours, theirs in zip(outputs, eager):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)


def test_lstm_sequence_length_is_fixed_by_the_trace(lstm_step, tmp_path):
    shapes = _dynamic_batch()
    shapes["x"] = {0: shapes["x"][0], 1: torch.export.Dim("time")}
    with pytest.raises(torch._dynamo.exc.UserError, match="time"):
        production.export_torch_program(lstm_step, _lstm_inputs(4), tmp_path / "m.pt2", dynamic_shapes=shapes)


def test_parity_on_known_arrays():
    reference = np.array([[0.1, 0.9], [0.6, 0.4], [0.2, 0.8]])
    candidate = np.array([[0.2, 0.8], [0.4, 0.6], [0.25, 0.75]])
    result = production.parity(reference, candidate)
    assert result["max_abs_diff"] == pytest.approx(0.2, abs=1e-12)
    assert result["argmax_agreement"] == pytest.approx(2 / 3, abs=1e-12)
    assert production.parity(reference, reference) == {"max_abs_diff": 0.0, "argmax_agreement": 1.0}


# --- optimise ----------------------------------------------------------------------------------

def _initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_static_int8_weights_dequantise_to_the_float_weights(onnx_file, images, tmp_path):
    """x ~ s (q - z) with |s (q - z) - x| <= s / 2: the formula of the chapter, on ONNX Runtime's own output."""
    path = production.quantize_static_int8(onnx_file, tmp_path / "int8.onnx", images, batch_size=10)
    assert not list(tmp_path.glob("*.prepared.onnx")), "the intermediate file must be removed"
    graph, floats = onnx.load(str(path)).graph, _initializers(onnx_file)
    stored = _initializers(path)
    checked = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or stored.get(node.input[0]) is None:
            continue
        if stored[node.input[0]].dtype != np.int8:   # int32 biases are dequantised too; weights are int8
            continue
        q = stored[node.input[0]].astype(np.int64)
        scale, zero = stored[node.input[1]], stored[node.input[2]].astype(np.int64)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and q.ndim > 1:  # per channel
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        original = node.input[0].removesuffix("_quantized")
        if original not in floats:
            continue
        dequantised = scale * (q - zero)
        assert np.all(np.abs(dequantised - floats[original]) <= scale / 2 + 1e-7), original
        checked += 1
    assert checked >= 3, f"expected the conv and both dense kernels to be int8, checked {checked}"


@pytest.mark.parametrize("variant", ["dynamic", "static", "float16"])
def test_quantised_models_are_smaller_and_close(variant, onnx_file, images, tmp_path):
    make = {"dynamic": lambda: production.quantize_dynamic_int8(onnx_file, tmp_path / "m.onnx"),
            "static": lambda: production.quantize_static_int8(onnx_file, tmp_path / "m.onnx", images),
            "float16": lambda: production.convert_float16(onnx_file, tmp_path / "m.onnx")}
    path = make[variant]()
    ratio = production.file_size(onnx_file) / production.file_size(path)
    assert ratio > {"dynamic": 2.0, "static": 2.0, "float16": 1.5}[variant]
    reference = production.OnnxModel(onnx_file)(images)
    outputs = production.OnnxModel(path)(images)
    assert outputs.dtype == np.float32 and outputs.shape == reference.shape
    # float16 keeps about 3 significant digits; int8 about 2 (probabilities of a random model).
    assert np.abs(outputs - reference).max() < {"dynamic": 0.05, "static": 0.05, "float16": 2e-3}[variant]


# --- time --------------------------------------------------------------------------------------

def test_latency_counts_calls_and_orders_percentiles():
    calls = []
    result = production.latency(lambda x: calls.append(x), "x", repeats=30, warmup=5)
    assert len(calls) == 35
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]


def test_latency_measures_a_known_delay():
    import time

    result = production.latency(lambda x: time.sleep(0.01), None, repeats=5, warmup=0)
    assert 10 <= result["p50_ms"] < 60  # sleep never returns early; a loaded machine may add a lot


def test_throughput_is_batch_over_time():
    import time

    rate = production.throughput(lambda x: time.sleep(0.02), np.zeros((64, 1)), repeats=3, warmup=0)
    assert 64 / 0.1 < rate <= 64 / 0.02


def test_file_size_of_a_directory_sums_its_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "sub" / "b").write_bytes(b"123")
    assert production.file_size(tmp_path) == 8
    assert production.file_size(tmp_path / "a") == 5


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda: production.export_keras_onnx("model", "m.onnx"), TypeError, "`model` must be a keras.Model. Received: model of type str"),
    (lambda: production.save_keras(keras.Sequential(), "model.h5"), ValueError, "`path` must end in .keras. Received: path='model.h5'"),
    (lambda: production.OnnxModel("missing.onnx"), ValueError, "`path` must name an existing file. Received: path='missing.onnx'"),
    (lambda: production.parity(np.zeros((2, 3)), np.zeros((3, 2))), ValueError, r"Received: shapes \(2, 3\) and \(3, 2\)"),
    (lambda: production.latency("f", None), TypeError, "`predict` must be callable"),
    (lambda: production.latency(print, None, repeats=0), ValueError, "`repeats` must be a positive integer. Received: repeats=0"),
    (lambda: production.latency(print, None, warmup=-1), ValueError, "`warmup` must be a non-negative integer. Received: warmup=-1"),
    (lambda: production.file_size(3), TypeError, "`path` must be a path"),
    (lambda: production.LSTMStep(torch.nn.Linear(2, 2)), TypeError, "`model` must be a CharLSTM"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_model_never_called_is_refused(tmp_path):
    fresh = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="`model` must have been called on data"):
        production.export_keras_onnx(fresh, tmp_path / "m.onnx")


def test_bad_images_are_named(onnx_file, tmp_path):
    with pytest.raises(ValueError, match=r"`calibration` must be a non-empty float32 NumPy array with 4 dimensions. "
                                         r"Received: calibration with shape \(3, 12, 12, 1\) and dtype float64"):
        production.quantize_static_int8(onnx_file, tmp_path / "m.onnx", np.zeros((3, *SHAPE)))
    model = production.OnnxModel(onnx_file)
    with pytest.raises(ValueError, match=r"`inputs` must be 1 arrays"):
        model(np.zeros((1, *SHAPE), np.float32), np.zeros(1))


def test_torch_exports_check_their_arguments(lstm_step, tmp_path):
    with pytest.raises(TypeError, match="`example_inputs` must be a tuple of tensors"):
        production.export_torch_program(lstm_step, [torch.zeros(1)], tmp_path / "m.pt2")
    with pytest.raises(ValueError, match="`input_names` must name each of the 3 inputs"):
        production.export_torch_onnx(lstm_step, _lstm_inputs(2), tmp_path / "m.onnx", input_names=["x"],
                                     output_names=["y"])
