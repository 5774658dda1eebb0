r"""From notebook to production: convert a trained model, check the copy, make it smaller, time it.

Taught in: *From notebook to production* (``book/faq/production.ipynb``); the service that
serves the result is :mod:`dlnotes.serve`.

Four steps, one function each (or a few):

**Convert.** A deployable file holds the computation graph and the weights, without the Python
that built them:

* Keras 3 -> ONNX with :func:`export_keras_onnx` (``model.export(format="onnx")``, works on the
  torch backend), and -> TensorFlow SavedModel (what TF Serving loads) and LiteRT/TensorFlow Lite
  (phones, micro-controllers) with :func:`export_keras_tensorflow`, which loads the saved
  ``.keras`` file in a *TensorFlow-backend subprocess*: on the torch backend Keras exports ONNX
  only.
* PyTorch -> :func:`export_torch_program` (``torch.export``: an ``ExportedProgram``, saved as
  ``.pt2``) and -> :func:`export_torch_onnx` (``torch.onnx.export(..., dynamo=True)``, which
  goes through ``torch.export`` too).

**Check.** :func:`parity` compares the converted model's outputs with the original's on the
same inputs: the largest absolute difference and the fraction of inputs whose arg-max (the
predicted class or character) agrees.

**Optimise.** Post-training quantisation stores weights (and, for the static kind, activations)
as 8-bit integers :math:`q` with a scale :math:`s` and a zero point :math:`z`,

.. math::

    x \approx s\,(q - z), \qquad q = \mathrm{clip}\big(\mathrm{round}(x / s) + z,\ -128,\ 127\big),

about four times smaller than float32. :func:`quantize_dynamic_int8` quantises the weights and
computes activation scales on the fly; :func:`quantize_static_int8` fixes activation scales
from a calibration set; :func:`convert_float16` halves the weights to float16. LiteRT's own
post-training quantisation runs inside :func:`export_keras_tensorflow`.

**Time.** :class:`OnnxModel` and :class:`LiteRTModel` wrap the two runtimes as functions
``images -> probabilities``; :func:`latency` (batch-1 percentiles) and :func:`throughput`
(images per second) time any such function the same way.

Every function checks its arguments and raises ``TypeError``/``ValueError`` naming the
argument and echoing the value.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from dlnotes._checks import check_positive_int

__all__ = [
    "save_keras", "export_keras_onnx", "export_keras_tensorflow", "TENSORFLOW_FILES",
    "LSTMStep", "export_torch_program", "load_torch_program", "export_torch_onnx",
    "OnnxModel", "LiteRTModel", "parity",
    "quantize_dynamic_int8", "quantize_static_int8", "convert_float16",
    "latency", "throughput", "file_size",
]

#: What :func:`export_keras_tensorflow` writes into its output directory.
TENSORFLOW_FILES = {
    "saved_model": "saved_model",                  # TensorFlow SavedModel (a directory)
    "saved_model_outputs": "saved_model_outputs.npy",  # its outputs on the given images
    "litert": "model.tflite",                      # LiteRT, float32
    "litert_dynamic": "model_dynamic_range.tflite",  # LiteRT, int8 weights (dynamic range)
    "litert_int8": "model_int8.tflite",            # LiteRT, int8 weights and activations
    "summary": "summary.json",                     # versions and seconds per step
}


def _check_path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a path (str or os.PathLike). Received: {name}={value!r}")
    return Path(value)


def _check_existing(name: str, value) -> Path:
    path = _check_path(name, value)
    if not path.exists():
        raise ValueError(f"`{name}` must name an existing file. Received: {name}={str(path)!r}")
    return path


def _check_images(name: str, value, ndim: int = 4) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.ndim != ndim or len(value) == 0:
        shape = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", type(value).__name__)
        raise ValueError(f"`{name}` must be a non-empty float32 NumPy array with {ndim} dimensions. "
                         f"Received: {name} with shape {shape} and dtype {dtype}")
    return value


@contextlib.contextmanager
def _quiet():
    """Silence the converters' Python warnings and log records (progress chatter, not errors)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


@contextlib.contextmanager
def _quiet_native_stderr():
    """Send file descriptor 2 to /dev/null for a moment: C++ runtimes print INFO lines there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# --- Convert: Keras ---------------------------------------------------------------------------

def export_keras_onnx(model, path) -> Path:
    """Write a Keras 3 model to ONNX with ``model.export(path, format="onnx")``.

    The batch dimension stays dynamic (the ONNX input has shape ``("batch", *input_shape)``).

    Args:
        model: a built ``keras.Model``.
        path: the ``.onnx`` file to write.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError: ``model`` is not a Keras model, or ``path`` is not a path.
        ValueError: ``model`` has never been called, so its input signature is unknown.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model of type {type(model).__name__}")
    if not getattr(model, "_called", True):  # Keras's own message says only "has never called"
        raise ValueError("`model` must have been called on data (trained or run once) before it is exported, "
                         f"so that its input signature is known. Received: model={model.name!r}, never called")
    path = _check_path("path", path)
    with _quiet(), _quiet_native_stderr():
        model.export(str(path), format="onnx", verbose=False)
    return path


def save_keras(model, path) -> Path:
    """``model.save(path)``: the native ``.keras`` file (architecture as JSON, weights, optimizer state).

    With TensorFlow installed, Keras imports it to write the file, and TensorFlow's C++ core
    prints start-up lines to the process's standard error; they are silenced here.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model of type {type(model).__name__}")
    path = _check_path("path", path)
    if path.suffix != ".keras":
        raise ValueError(f"`path` must end in .keras. Received: path={str(path)!r}")
    with _quiet_native_stderr():
        model.save(path)
    return path


def export_keras_tensorflow(keras_file, out_dir, *, images: np.ndarray, calibration: np.ndarray,
                            timeout: float = 600) -> dict[str, Path]:
    """SavedModel and LiteRT files of a saved ``.keras`` model, made in a TensorFlow-backend subprocess.

    Keras picks its backend once per process, so this starts
    ``python -m dlnotes.pipelines.production tensorflow ...`` with ``KERAS_BACKEND=tensorflow``,
    which loads ``keras_file`` and writes, into ``out_dir``, the files named in
    :data:`TENSORFLOW_FILES`:

    * ``saved_model/``: ``model.export(format="tf_saved_model")``, then reloaded with
      ``tf.saved_model.load`` and run through its ``serving_default`` signature (the one TF
      Serving calls) on ``images``; the outputs go to ``saved_model_outputs.npy``;
    * ``model.tflite``: ``model.export(format="litert")``, float32;
    * ``model_dynamic_range.tflite``: ``tf.lite.TFLiteConverter`` with ``Optimize.DEFAULT``
      (int8 weights, float activations);
    * ``model_int8.tflite``: the same plus a ``representative_dataset`` drawn from
      ``calibration`` (int8 weights and activations; float32 input and output);
    * ``summary.json``: versions and the seconds each step took.

    Args:
        keras_file: a model saved with ``model.save("....keras")``.
        out_dir: directory for the outputs (created).
        images: float32 ``(n, *input_shape)`` inputs to run the SavedModel on.
        calibration: float32 ``(m, *input_shape)`` examples for the full-integer quantisation.
        timeout: seconds before the subprocess is stopped.

    Returns:
        ``{key: path}`` for every key of :data:`TENSORFLOW_FILES`.

    Raises:
        TypeError, ValueError: a bad argument, named.
        RuntimeError: the subprocess failed; the message holds the end of its output.
    """
    keras_file = _check_existing("keras_file", keras_file)
    out_dir = _check_path("out_dir", out_dir)
    images = _check_images("images", images)
    calibration = _check_images("calibration", calibration)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "images.npy", images)
    np.save(out_dir / "calibration.npy", calibration)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-m", "dlnotes.pipelines.production", "tensorflow",
               "--model", str(keras_file), "--out", str(out_dir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"The TensorFlow export failed (exit code {result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")
    return {key: out_dir / name for key, name in TENSORFLOW_FILES.items()}


def _tensorflow_main(model_file: Path, out_dir: Path) -> None:
    """The subprocess of :func:`export_keras_tensorflow` (run with ``KERAS_BACKEND=tensorflow``)."""
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"KERAS_BACKEND must be 'tensorflow'. Received: {keras.backend.backend()!r}")
    images = np.load(out_dir / "images.npy")
    calibration = np.load(out_dir / "calibration.npy")
    files = {key: out_dir / name for key, name in TENSORFLOW_FILES.items()}
    seconds = {}

    def step(name, fn):
        start = time.perf_counter()
        fn()
        seconds[name] = round(time.perf_counter() - start, 3)

    model = keras.saving.load_model(model_file)
    step("saved_model", lambda: model.export(str(files["saved_model"]), format="tf_saved_model", verbose=False))

    def run_saved_model():
        serve = tf.saved_model.load(str(files["saved_model"])).signatures["serving_default"]
        outputs = [next(iter(serve(tf.constant(images[i:i + 256])).values())).numpy()
                   for i in range(0, len(images), 256)]
        np.save(files["saved_model_outputs"], np.concatenate(outputs))

    step("saved_model_run", run_saved_model)
    step("litert", lambda: model.export(str(files["litert"]), format="litert", verbose=False))

    def convert(path, representative=None):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(files["saved_model"]))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            converter.representative_dataset = representative
        path.write_bytes(converter.convert())

    step("litert_dynamic", lambda: convert(files["litert_dynamic"]))
    step("litert_int8", lambda: convert(files["litert_int8"],
                                        lambda: ([calibration[i:i + 1]] for i in range(len(calibration)))))
    summary = {"keras": keras.__version__, "tensorflow": tf.__version__, "seconds": seconds}
    files["summary"].write_text(json.dumps(summary, indent=1))


# --- Convert: PyTorch -------------------------------------------------------------------------

class LSTMStep(nn.Module):
    r"""A language model with its recurrent state as explicit inputs and outputs.

    ``forward(x, h, c) -> (logits, h_out, c_out)`` with ``x`` int64 ``(N, T)``, ``h`` and ``c``
    float32 ``(L, N, H)``, ``logits`` ``(N, T, V)``. An exported graph keeps no state between
    calls, so the caller carries ``(h, c)`` from one call to the next, as a generation loop
    does. Wraps a :class:`~dlnotes.pipelines.text_generation.CharLSTM`.

    Raises:
        TypeError: ``model`` is not a ``CharLSTM``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, nn.Module) or not isinstance(getattr(model, "lstm", None), nn.LSTM):
            raise TypeError("`model` must be a CharLSTM (a torch.nn.Module with an nn.LSTM `lstm`). "
                            f"Received: model of type {type(model).__name__}")
        self.model = model

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        logits, (h_out, c_out) = self.model(x, (h, c))
        return logits, h_out, c_out


def _check_torch_args(module, example_inputs, dynamic_shapes):
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module. Received: module of type {type(module).__name__}")
    if not isinstance(example_inputs, tuple) or not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise TypeError("`example_inputs` must be a tuple of tensors, one per argument of forward. "
                        f"Received: example_inputs={example_inputs!r:.200}")
    if dynamic_shapes is not None and not isinstance(dynamic_shapes, (dict, tuple, list)):
        raise TypeError("`dynamic_shapes` must be a dict (argument name -> {axis: Dim}), a tuple or None. "
                        f"Received: dynamic_shapes={dynamic_shapes!r}")


def export_torch_program(module, example_inputs: tuple, path, *, dynamic_shapes=None) -> Path:
    """Trace ``module`` with ``torch.export.export`` and save the ``ExportedProgram`` to ``path`` (``.pt2``).

    ``torch.export`` records the operations ``module`` runs on ``example_inputs`` (no Python
    left, no pickle: the ``.pt2`` file is a zip of the graph and the weights). Axes named in
    ``dynamic_shapes`` (``{arg_name: {axis: torch.export.Dim(...)}}``) may change size later;
    every other size is fixed to the example's.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError: bad arguments, named.
        torch._dynamo.exc.UserError: the model fixes a size marked dynamic (``nn.LSTM`` fixes
            the sequence length, for one).
    """
    _check_torch_args(module, example_inputs, dynamic_shapes)
    path = _check_path("path", path)
    with _quiet():
        program = torch.export.export(module.eval(), example_inputs, dynamic_shapes=dynamic_shapes)
        torch.export.save(program, str(path))
    return path


def load_torch_program(path):
    """The ``ExportedProgram`` saved at ``path``, as a callable module (``torch.export.load(path).module()``)."""
    path = _check_existing("path", path)
    with _quiet():
        return torch.export.load(str(path)).module()


def export_torch_onnx(module, example_inputs: tuple, path, *, input_names: Sequence[str],
                      output_names: Sequence[str], dynamic_shapes=None) -> Path:
    """Write ``module`` to ONNX with the ``torch.export``-based exporter (``torch.onnx.export(..., dynamo=True)``).

    The weights are stored inside the one ``.onnx`` file (``external_data=False``), so the file
    is the whole model.

    Args:
        module, example_inputs, dynamic_shapes: as in :func:`export_torch_program`.
        path: the ``.onnx`` file to write.
        input_names, output_names: names of the graph's inputs and outputs, in order.

    Returns:
        ``path`` as a ``Path``.
    """
    _check_torch_args(module, example_inputs, dynamic_shapes)
    path = _check_path("path", path)
    for name, names in (("input_names", input_names), ("output_names", output_names)):
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"`{name}` must be a list of strings. Received: {name}={names!r}")
    if len(input_names) != len(example_inputs):
        raise ValueError(f"`input_names` must name each of the {len(example_inputs)} inputs. "
                         f"Received: input_names={list(input_names)!r}")
    with _quiet():
        torch.onnx.export(module.eval(), example_inputs, str(path), dynamo=True, external_data=False,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_shapes=dynamic_shapes, verbose=False)
    return path


# --- Run ---------------------------------------------------------------------------------------

class OnnxModel:
    """An ONNX file run by ONNX Runtime on the CPU, called as ``model(x) -> first output``.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: ONNX Runtime's default, one per core).

    Attributes:
        session: the ``onnxruntime.InferenceSession``.
        input_names: its input names, in order.

    Call with one array per input, in order (``model(x)`` or ``model(x, h, c)``), or with
    ``outputs="all"`` to get every output.
    """

    def __init__(self, path, *, threads: int | None = None):
        import onnxruntime as ort

        path = _check_existing("path", path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = check_positive_int("threads", threads)
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: np.ndarray, outputs: str = "first"):
        if len(inputs) != len(self.input_names):
            raise ValueError(f"`inputs` must be {len(self.input_names)} arrays ({self.input_names}). "
                             f"Received: {len(inputs)} arrays")
        if outputs not in ("first", "all"):
            raise ValueError(f"`outputs` must be 'first' or 'all'. Received: outputs={outputs!r}")
        results = self.session.run(None, dict(zip(self.input_names, inputs)))
        return results[0] if outputs == "first" else results


class LiteRTModel:
    """A ``.tflite`` file run by LiteRT's interpreter (``ai_edge_litert``), called as ``model(x) -> output``.

    The interpreter has fixed tensor sizes; a call with a new batch size resizes the input and
    re-allocates, so time calls of one batch size at a time.

    Args:
        path: the ``.tflite`` file.
        threads: interpreter threads (``None``: one per core).
    """

    def __init__(self, path, *, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        path = _check_existing("path", path)
        threads = (os.cpu_count() or 1) if threads is None else check_positive_int("threads", threads)
        self.path = path
        with _quiet_native_stderr():
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_images("x", x, ndim=len(self._input["shape_signature"]))
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], list(x.shape))
            with _quiet_native_stderr():
                self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"]).copy()


def parity(reference, candidate) -> dict[str, float]:
    r"""How closely ``candidate`` reproduces ``reference``: outputs of two models on the same inputs.

    .. math::

        \Delta_{\max} = \max_{i,j} |y_{ij} - \hat y_{ij}|, \qquad
        \text{agreement} = \frac{1}{n} \sum_i [\arg\max_j y_{ij} = \arg\max_j \hat y_{ij}],

    with the arg-max over the last axis (classes, or characters at every position).

    Args:
        reference, candidate: float arrays of the same shape ``(n, ..., classes)``.

    Returns:
        ``{"max_abs_diff": float, "argmax_agreement": float}``.

    Raises:
        ValueError: the shapes differ or an array is empty.
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape or reference.size == 0:
        raise ValueError("`reference` and `candidate` must be non-empty arrays of the same shape. "
                         f"Received: shapes {reference.shape} and {candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    agree = reference.argmax(axis=-1) == candidate.argmax(axis=-1)
    return {"max_abs_diff": float(diff.max()), "argmax_agreement": float(agree.mean())}


# --- Optimise ----------------------------------------------------------------------------------

def _prepare_for_quantization(src: Path, dst: Path) -> Path:
    """ONNX Runtime's pre-processing (shape inference and graph optimisation), recommended before quantising."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = dst.with_name(dst.stem + ".prepared.onnx")
    with _quiet():
        quant_pre_process(str(src), str(prepared))
    return prepared


def quantize_dynamic_int8(src, dst) -> Path:
    """int8 weights, activations quantised on the fly at every call (``onnxruntime.quantization.quantize_dynamic``).

    No calibration data needed; the activation scale of each call is computed from that call's
    values, which costs time at batch 1.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = _check_existing("src", src), _check_path("dst", dst)
    prepared = _prepare_for_quantization(src, dst)
    with _quiet():
        quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8)
    prepared.unlink()
    return dst


def quantize_static_int8(src, dst, calibration: np.ndarray, *, batch_size: int = 50) -> Path:
    """int8 weights and activations, activation ranges fixed from ``calibration`` (``quantize_static``, QDQ format).

    ONNX Runtime runs the float model on the calibration images, records every activation's
    range (min-max), and stores the scales in the graph.

    Args:
        src, dst: the float ONNX file and the file to write.
        calibration: float32 ``(m, *input_shape)`` training images (never the test set).
        batch_size: calibration images per run.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    src, dst = _check_existing("src", src), _check_path("dst", dst)
    calibration = _check_images("calibration", calibration)
    batch_size = check_positive_int("batch_size", batch_size)
    prepared = _prepare_for_quantization(src, dst)
    input_name = OnnxModel(prepared).input_names[0]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration[i:i + batch_size] for i in range(0, len(calibration), batch_size))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with _quiet():
        quantize_static(str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    prepared.unlink()
    return dst


def convert_float16(src, dst) -> Path:
    """float16 weights and arithmetic, float32 inputs and outputs (``onnxruntime.transformers.float16``)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src, dst = _check_existing("src", src), _check_path("dst", dst)
    with _quiet():
        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))
    return dst


# --- Time --------------------------------------------------------------------------------------

def call_times(predict: Callable[[np.ndarray], object], x, *, repeats: int, warmup: int) -> np.ndarray:
    """Seconds of each of ``repeats`` calls ``predict(x)``, after ``warmup`` calls that are not timed."""
    for _ in range(warmup):
        predict(x)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        predict(x)
        times[i] = time.perf_counter() - start
    return times


def latency(predict: Callable[[np.ndarray], object], x: np.ndarray, *, repeats: int = 200,
            warmup: int = 10) -> dict[str, float]:
    """Percentiles of the wall time of ``predict(x)`` over ``repeats`` calls, in milliseconds.

    ``warmup`` calls first (allocations, caches, lazy initialisation) are not counted.

    Returns:
        ``{"p50_ms", "p90_ms", "p99_ms", "mean_ms"}``.
    """
    if not callable(predict):
        raise TypeError(f"`predict` must be callable. Received: predict={predict!r}")
    repeats = check_positive_int("repeats", repeats)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"`warmup` must be a non-negative integer. Received: warmup={warmup!r}")
    times = call_times(predict, x, repeats=repeats, warmup=warmup)
    p50, p90, p99 = np.percentile(times * 1e3, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(times.mean() * 1e3)}


def throughput(predict: Callable[[np.ndarray], object], x: np.ndarray, *, repeats: int = 20,
               warmup: int = 2) -> float:
    """Inputs per second of ``predict`` on the batch ``x``: ``len(x) / median seconds per call``."""
    timing = latency(predict, x, repeats=repeats, warmup=warmup)
    return len(x) / (timing["p50_ms"] / 1e3)


def file_size(path) -> int:
    """Bytes in the file at ``path``, or in all files below it for a directory (a SavedModel)."""
    path = _check_existing("path", path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dlnotes.pipelines.production",
                                     description="The TensorFlow-backend half of export_keras_tensorflow.")
    parser.add_argument("command", choices=["tensorflow"])
    parser.add_argument("--model", required=True, type=Path, help="a .keras file")
    parser.add_argument("--out", required=True, type=Path, help="directory with images.npy and calibration.npy")
    args = parser.parse_args(argv)
    _tensorflow_main(args.model, args.out)


if __name__ == "__main__":
    _main()
