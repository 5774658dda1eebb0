"""The model base directory: publishing a model (:func:`write_model`) and loading them all (:func:`load_models`).

The layout is TensorFlow Serving's, with ONNX in place of a SavedModel::

    PATH/
      mnist/                 # a model name: letters, digits, "_", "-", "." (not first)
        1/                   # a version: a positive integer, no leading zeros
          model.onnx
          signature.json
        2/ ...               # the highest version is the default

``signature.json`` is the one piece of metadata the server needs, a small JSON object::

    {"input_name": "pixels", "shape": [null, 28, 28, 1], "dtype": "float32",
     "output_name": "probabilities", "labels": ["0", "1", ...]}

``shape`` is the input's shape, ``null`` for the batch dimension (the first, and only that one);
``labels`` is optional. Nothing is unpickled: ONNX files are protobuf, signatures are JSON.
Every check names the file and the field and echoes the value it found, and raises
``ValueError`` (``TypeError`` for an argument of the wrong kind).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dlnotes._checks import check_positive_int

__all__ = ["DTYPES", "Signature", "ServedModel", "check_model_name", "write_model", "load_models", "make_session"]

MODEL_FILE, SIGNATURE_FILE = "model.onnx", "signature.json"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
MAX_RANK = 8
# dtype -> (onnxruntime's type string, TensorFlow's DataType name for the metadata endpoint)
DTYPES = {
    "float16": ("tensor(float16)", "DT_HALF"), "float32": ("tensor(float)", "DT_FLOAT"),
    "float64": ("tensor(double)", "DT_DOUBLE"), "int8": ("tensor(int8)", "DT_INT8"),
    "int16": ("tensor(int16)", "DT_INT16"), "int32": ("tensor(int32)", "DT_INT32"),
    "int64": ("tensor(int64)", "DT_INT64"), "uint8": ("tensor(uint8)", "DT_UINT8"),
}
_ORT_TO_DTYPE = {ort_type: dtype for dtype, (ort_type, _) in DTYPES.items()}
_SIGNATURE_KEYS = ("input_name", "shape", "dtype", "output_name", "labels")


def check_model_name(name: str, value) -> str:
    """``value`` itself, a model name that is safe as one path segment and in a URL (no ``:`` or ``/``)."""
    if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"`{name}` must be 1-128 letters, digits, '_', '-' or '.', not starting with '_', '-' "
                         f"or '.'. Received: {name}={value!r}")
    return value


@dataclass(frozen=True)
class Signature:
    """What ``signature.json`` holds: the one input (name, shape with ``None`` first, dtype) and the one output."""

    input_name: str
    shape: tuple[int | None, ...]
    dtype: str
    output_name: str
    labels: tuple[str, ...] | None = None

    @property
    def instance_shape(self) -> tuple[int, ...]:
        """The shape of one instance: ``shape`` without the batch dimension, e.g. ``(28, 28, 1)``."""
        return self.shape[1:]

    def to_json(self) -> dict[str, Any]:
        data = {"input_name": self.input_name, "shape": list(self.shape), "dtype": self.dtype,
                "output_name": self.output_name}
        if self.labels is not None:
            data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_json(cls, data, where: str) -> Signature:
        """Validate a parsed ``signature.json``; ``where`` (its path) ends every message."""
        if not isinstance(data, dict):
            raise ValueError(f"the signature must be a JSON object. Received: {_short(data)} ({where})")
        unknown = sorted(set(data) - set(_SIGNATURE_KEYS))
        if unknown:
            raise ValueError(f"the signature has unknown field(s) {unknown}; the fields are {list(_SIGNATURE_KEYS)}. "
                             f"Received: {_short(data)} ({where})")
        missing = [key for key in _SIGNATURE_KEYS[:4] if key not in data]
        if missing:
            raise ValueError(f"the signature is missing the field(s) {missing}. Received: {_short(data)} ({where})")
        return make_signature(data["input_name"], data["shape"], data["dtype"], data["output_name"],
                              data.get("labels"), where=where)


def make_signature(input_name, shape, dtype, output_name, labels=None, *, where: str) -> Signature:
    """A :class:`Signature` from its fields, each checked (``where`` ends every message)."""
    for key, value in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{key}` must be a non-empty string. Received: {key}={value!r} ({where})")
    if (not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= MAX_RANK or shape[0] is not None
            or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape[1:])):
        raise ValueError(f"`shape` must be a list of at most {MAX_RANK} dimensions: null (None) for the batch "
                         f"dimension, then positive integers, e.g. [null, 28, 28, 1]. Received: shape={_short(shape)} "
                         f"({where})")
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {tuple(DTYPES)}. Received: dtype={dtype!r} ({where})")
    if labels is not None:
        if (not isinstance(labels, (list, tuple)) or not labels
                or not all(isinstance(label, str) for label in labels)):
            raise ValueError(f"`labels` must be a non-empty list of strings (or absent). "
                             f"Received: labels={_short(labels)} ({where})")
        labels = tuple(labels)
    return Signature(input_name, (None, *(int(d) for d in shape[1:])), dtype, output_name, labels)


@dataclass(frozen=True)
class ServedModel:
    """One loaded version: its signature, its ``onnxruntime.InferenceSession`` and its output's shape."""

    name: str
    version: int
    path: Path
    signature: Signature
    session: Any
    output_shape: tuple[int | None, ...]
    output_dtype: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The output for a validated ``batch`` of shape ``(n, *signature.instance_shape)``; thread-safe."""
        return self.session.run([self.signature.output_name], {self.signature.input_name: batch})[0]


def make_session(model: str | bytes, *, intra_op_threads: int = 1):
    """An ``onnxruntime.InferenceSession`` on the CPU with ``intra_op_threads`` threads per call.

    Several calls may run at once (``session.run`` is thread-safe); one inter-op thread, so
    ``intra_op_threads`` times the number of concurrent calls bounds the threads in use.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = check_positive_int("intra_op_threads", intra_op_threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _dims(shape) -> tuple[int | None, ...]:
    """onnxruntime's shape (ints, symbolic names, None) with every non-integer as ``None``."""
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


def _check_session(session, signature: Signature, where: str) -> tuple[tuple[int | None, ...], str]:
    """That the model's one input and the named output agree with ``signature``; the output's shape and dtype."""
    inputs = {i.name: i for i in session.get_inputs()}
    if len(inputs) != 1:
        raise ValueError(f"the model must have exactly one input; it has {sorted(inputs)} ({where})")
    if signature.input_name not in inputs:
        raise ValueError(f"`input_name` must be the model's input {next(iter(inputs))!r}. "
                         f"Received: input_name={signature.input_name!r} ({where})")
    info = inputs[signature.input_name]
    if info.type != DTYPES[signature.dtype][0]:
        raise ValueError(f"`dtype` must be the model's input type {_ORT_TO_DTYPE.get(info.type, info.type)!r}. "
                         f"Received: dtype={signature.dtype!r} ({where})")
    model_shape = _dims(info.shape)
    if len(model_shape) != len(signature.shape) or any(
            m is not None and m != s for m, s in zip(model_shape[1:], signature.shape[1:])):
        raise ValueError(f"`shape` must match the model's input shape {list(model_shape)} (null: any size). "
                         f"Received: shape={list(signature.shape)} ({where})")
    if model_shape[0] is not None:
        raise ValueError(f"the model's batch dimension is fixed to {model_shape[0]}; export it with a dynamic "
                         f"first dimension (its input shape is {list(model_shape)}) ({where})")
    outputs = {o.name: o for o in session.get_outputs()}
    if signature.output_name not in outputs:
        raise ValueError(f"`output_name` must be one of the model's outputs {sorted(outputs)}. "
                         f"Received: output_name={signature.output_name!r} ({where})")
    output = outputs[signature.output_name]
    if output.type not in _ORT_TO_DTYPE:
        raise ValueError(f"the output {output.name!r} must be a numeric tensor; its type is {output.type} ({where})")
    output_shape = _dims(output.shape)
    if not output_shape or output_shape[0] is not None:
        raise ValueError(f"the output {output.name!r} must have a dynamic first (batch) dimension; its shape is "
                         f"{list(output_shape)} ({where})")
    if signature.labels is not None and len(output_shape) >= 2 and output_shape[-1] not in (None, len(signature.labels)):
        raise ValueError(f"`labels` must have one label per output column ({output_shape[-1]}). "
                         f"Received: {len(signature.labels)} labels ({where})")
    return output_shape, _ORT_TO_DTYPE[output.type]


def _model_bytes(model) -> bytes:
    """The serialized ONNX model from a ``ModelProto``, a path or bytes, checked by ``onnx.checker``.

    A path's external data files (``torch.onnx.export`` writes ``model.onnx.data`` beside
    ``model.onnx``) are read into the one file that is published.
    """
    import onnx

    if isinstance(model, onnx.ModelProto):
        data = model.SerializeToString()
    elif isinstance(model, (bytes, bytearray)):
        data = bytes(model)
    elif isinstance(model, (str, os.PathLike)):
        if not Path(model).is_file():
            raise ValueError(f"`model` must be an onnx.ModelProto, the bytes of one or the path of a .onnx file. "
                             f"Received: model={str(model)!r}, which is not a file")
        try:
            data = onnx.load(str(model)).SerializeToString()  # with its external data, if any
        except Exception as error:  # DecodeError, a missing data file
            raise ValueError(f"`model` is not a valid ONNX model: {error}. Received: model={str(model)!r}") from None
    else:
        raise TypeError(f"`model` must be an onnx.ModelProto, the bytes of one or the path of a .onnx file. "
                        f"Received: model of type {type(model).__name__}")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as error:  # DecodeError: not an ONNX model
        raise ValueError(f"`model` is not a valid ONNX model: {error}. Received: {len(data)} bytes") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise ValueError("`model` keeps its weights in external data files, which write_model reads only when "
                         "given the model's path; pass the path, or load it with onnx.load(path) first")
    try:
        onnx.checker.check_model(proto)
    except Exception as error:  # ValidationError
        raise ValueError(f"`model` is not a valid ONNX model: {error}. Received: {len(data)} bytes") from None
    return data


def write_model(base_dir, name: str, version: int, model, *, input_shape: Sequence[int | None],
                dtype: str = "float32", labels: Sequence[str] | None = None, input_name: str | None = None,
                output_name: str | None = None, overwrite: bool = False) -> Path:
    """Publish ``model`` as ``base_dir/name/version/{model.onnx, signature.json}`` and return that folder.

    Args:
        base_dir: the model base directory (created if missing).
        name, version: the model's name (see :func:`check_model_name`) and a positive integer version.
        model: an ``onnx.ModelProto``, its serialized bytes, or the path of a ``.onnx`` file.
        input_shape: the input's shape with ``None`` for the batch dimension, e.g. ``(None, 28, 28, 1)``.
        dtype: the input's dtype, one of :data:`DTYPES`.
        labels: optional class names, one per output column (the metadata endpoint returns them).
        input_name, output_name: default to the model's one input and its first output.
        overwrite: replace an existing version (versions are otherwise immutable, as in TF Serving).

    The model is loaded once with onnxruntime to check that it runs here and that the signature
    agrees with it (input name, dtype, shape; a dynamic batch dimension).
    """
    if not isinstance(base_dir, (str, os.PathLike)):
        raise TypeError(f"`base_dir` must be a path. Received: base_dir of type {type(base_dir).__name__}")
    name, version = check_model_name("name", name), check_positive_int("version", version)
    data = _model_bytes(model)
    try:
        session = make_session(data)
    except Exception as error:  # onnxruntime's own exception types
        raise ValueError(f"onnxruntime cannot load `model`: {error}") from None
    input_name = session.get_inputs()[0].name if input_name is None else input_name
    output_name = session.get_outputs()[0].name if output_name is None else output_name
    where = f"write_model({name!r}, {version})"
    signature = make_signature(input_name, input_shape, dtype, output_name, labels, where=where)
    _check_session(session, signature, where)
    folder = Path(base_dir) / name / str(version)
    if folder.exists() and not overwrite:
        raise ValueError(f"`version` {version} of model {name!r} already exists at {folder}; publish a new version "
                         f"or pass overwrite=True. Received: version={version}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(data)
    fields = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in signature.to_json().items())
    (folder / SIGNATURE_FILE).write_text("{\n" + fields + "\n}\n", encoding="utf-8")  # one field a line
    return folder


def _read_signature(path: Path) -> Signature:
    def refuse(token: str):
        raise ValueError(f"{path} is not valid JSON: it contains {token}")

    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    return Signature.from_json(data, where=str(path))


def _load_version(name: str, folder: Path, intra_op_threads: int) -> ServedModel:
    for file in (MODEL_FILE, SIGNATURE_FILE):
        if not (folder / file).is_file():
            raise ValueError(f"the version folder {folder} must contain {MODEL_FILE} and {SIGNATURE_FILE}; "
                             f"{file} is missing. Received: {sorted(p.name for p in folder.iterdir())}")
    signature = _read_signature(folder / SIGNATURE_FILE)
    try:
        session = make_session(str(folder / MODEL_FILE), intra_op_threads=intra_op_threads)
    except Exception as error:  # onnxruntime's own exception types
        raise ValueError(f"onnxruntime cannot load {folder / MODEL_FILE}: {error}") from None
    output_shape, output_dtype = _check_session(session, signature, str(folder / SIGNATURE_FILE))
    return ServedModel(name, int(folder.name), folder, signature, session, output_shape, output_dtype)


def _entries(folder: Path) -> list[Path]:
    """The entries of ``folder`` that are not hidden (``.``-names), sorted; each must be a folder."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for entry in entries:
        if not entry.is_dir():
            raise ValueError(f"{folder} must hold only folders (models, or versions of a model). "
                             f"Received: the file {entry}")
    return entries


def load_models(base_dir, *, intra_op_threads: int = 1) -> dict[str, dict[int, ServedModel]]:
    """Every version of every model under ``base_dir``: ``{name: {version: ServedModel}}``, versions ascending.

    Loads each ``model.onnx`` once into an ``onnxruntime.InferenceSession`` (CPU, ``intra_op_threads``)
    and checks it against its ``signature.json``. Anything unexpected stops the load with a
    ``ValueError`` naming the path: the server starts with every model or not at all.
    """
    if not isinstance(base_dir, (str, os.PathLike)):
        raise TypeError(f"`base_dir` must be a path. Received: base_dir of type {type(base_dir).__name__}")
    intra_op_threads = check_positive_int("intra_op_threads", intra_op_threads)
    base = Path(base_dir)
    if not base.is_dir():
        raise ValueError(f"`base_dir` must be an existing folder of models (base_dir/<name>/<version>/model.onnx). "
                         f"Received: base_dir={str(base_dir)!r}")
    models: dict[str, dict[int, ServedModel]] = {}
    for model_dir in _entries(base):
        if not re.fullmatch(NAME_PATTERN, model_dir.name):
            raise ValueError(f"the folders of {base} must be model names: 1-128 letters, digits, '_', '-' or '.', "
                             f"not starting with '_', '-' or '.'. Received: {model_dir.name!r}")
        versions = {}
        for version_dir in _entries(model_dir):
            if not re.fullmatch(r"[1-9][0-9]{0,17}", version_dir.name):
                raise ValueError(f"the folders of {model_dir} must be versions: positive integers without leading "
                                 f"zeros. Received: {version_dir.name!r}")
            versions[int(version_dir.name)] = _load_version(model_dir.name, version_dir, intra_op_threads)
        if not versions:
            raise ValueError(f"the model folder {model_dir} has no versions; publish one with write_model()")
        models[model_dir.name] = dict(sorted(versions.items()))
    if not models:
        raise ValueError(f"`base_dir` holds no models; publish one with write_model(). Received: base_dir={str(base)!r}")
    return models
