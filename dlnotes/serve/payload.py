"""Predict request bodies: JSON in, a validated NumPy batch out, or a :class:`RequestError` naming the field.

Nothing reaches onnxruntime that does not have exactly the signature's shape and dtype, so
a bad request is always the client's 4xx and never the server's 5xx. The checks, in order:

1. the body is JSON (no ``NaN``/``Infinity`` tokens anywhere: JSON has none, though Python's
   ``json`` and many clients write them), and a JSON object;
2. its keys: exactly one of ``instances`` (row format) or ``inputs`` (columnar format), and
   optionally ``signature_name`` (``"serving_default"``);
3. the batch: a non-empty list of at most ``max_batch`` instances;
4. each instance (for ``inputs``, each row along the first dimension): nested lists of exactly
   the signature's instance shape; every number of the right kind (an integer, or for float
   dtypes any number; never a boolean, string, object or null), finite, and in the dtype's range.

A valid batch is converted in one vectorised pass; only a failing one is walked element by
element, to name the first bad field, e.g. ``instances[3][27][0][0]``.
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any

import numpy as np

from dlnotes.serve.repository import Signature

__all__ = ["RequestError", "preview", "parse_json", "parse_predict_body", "to_jsonable"]

SIGNATURE_NAME = "serving_default"
_BODY_KEYS = ("signature_name", "instances", "inputs")
_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxtuple, _REPR.maxlist, _REPR.maxdict = 3, 6, 6, 4
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60


class RequestError(Exception):
    """A 4xx (or 503) answer: ``{"error": message, "field": field, "received": received}``."""

    def __init__(self, status: int, message: str, *, field: str | None = None, received: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.received = status, message, field, received
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, "received": self.received}


class _Constant:
    """A ``NaN``/``Infinity``/``-Infinity`` token, kept so that the check can say where it was."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token

    def __repr__(self) -> str:
        return self.token


def preview(value, limit: int = 200) -> str:
    """A bounded ``repr`` of ``value`` (depth, items and length limited), safe on any parsed JSON."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_json(body: bytes):
    """The parsed body; ``NaN``/``Infinity`` tokens become markers that the checks refuse with their field."""
    if not body.strip():
        raise RequestError(400, 'The request body is empty; send a JSON object such as {"instances": [...]}.',
                           field="body", received="''")
    try:
        return json.loads(body, parse_constant=_Constant)
    except RecursionError:
        raise RequestError(400, "The request body is nested too deeply to parse.", field="body",
                           received=preview(body[:60])) from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise RequestError(400, f"The request body is not valid JSON: {error}.", field="body",
                           received=preview(body[:60])) from None


def _kind(dtype: str) -> str:
    return "an integer" if dtype.startswith(("int", "uint")) else "a number"


def _check_number(value, dtype: str, field: str) -> None:
    """Raise the :class:`RequestError` for one leaf that is not a valid ``dtype`` number."""
    integer = dtype.startswith(("int", "uint"))
    if isinstance(value, _Constant):
        raise RequestError(400, f"`{field}` must be a finite number ({dtype}); JSON has no NaN or Infinity. "
                           f"Received: {value.token}", field=field, received=value.token)
    if type(value) not in ((int,) if integer else (int, float)):
        raise RequestError(400, f"`{field}` must be {_kind(dtype)} ({dtype}). Received: {preview(value)} of type "
                           f"{_json_type(value)}", field=field, received=preview(value))
    if integer:
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise RequestError(400, f"`{field}` must be in the {dtype} range [{info.min}, {info.max}]. "
                               f"Received: {preview(value)}", field=field, received=preview(value))
        return
    if type(value) is float and not math.isfinite(value):  # 1e400 parses as inf
        raise RequestError(400, f"`{field}` must be a finite number ({dtype}). Received: {value!r}", field=field,
                           received=repr(value))
    with np.errstate(over="ignore"):
        try:
            finite = bool(np.isfinite(np.asarray(float(value)).astype(dtype)))
        except OverflowError:  # an integer beyond float64
            finite = False
    if not finite:
        bound = float(np.finfo(dtype).max)
        raise RequestError(400, f"`{field}` must be in the {dtype} range [-{bound:.7g}, {bound:.7g}]. "
                           f"Received: {preview(value)}", field=field, received=preview(value))


def _json_type(value) -> str:
    if isinstance(value, _Constant):
        return "NaN/Infinity token"
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null", int: "integer",
             float: "number"}
    return names.get(type(value), type(value).__name__)


def _shape(value, depth: int):
    """The shape of nested lists (``()`` for a leaf), ``"ragged"`` if not rectangular, ``"deep"`` past ``depth``."""
    if type(value) is not list:
        return ()
    if depth == 0:
        return "deep"
    if not value:
        return (0,)
    first = _shape(value[0], depth - 1)
    if isinstance(first, str):
        return first
    for item in value[1:]:
        if _shape(item, depth - 1) != first:
            return "ragged"
    return (len(value), *first)


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _first_length_error(value, shape: tuple[int, ...], field: str) -> RequestError | None:
    """Where a ragged nested list first departs from ``shape``."""
    if not shape:
        return None
    if type(value) is not list or len(value) != shape[0]:
        what = f"a list of {_items(len(value))}" if type(value) is list else f"the {_json_type(value)} {preview(value)}"
        return RequestError(400, f"`{field}` must be a list of {_items(shape[0])} (shape {shape}). Received: {what}",
                            field=field, received=preview(value))
    for j, item in enumerate(value):
        error = _first_length_error(item, shape[1:], f"{field}[{j}]")
        if error:
            return error
    return None


def _check_leaves(value, depth: int, dtype: str, field: str) -> None:
    if depth == 0:
        _check_number(value, dtype, field)
        return
    for j, item in enumerate(value):
        _check_leaves(item, depth - 1, dtype, f"{field}[{j}]")


def _instance_error(value, shape: tuple[int, ...], dtype: str, field: str) -> None:
    """Raise the error for one instance: its shape first, then its first bad number."""
    received = _shape(value, len(shape) + 1)
    if received == "ragged":  # a list too short or too long, or else a list where a number should be
        error = _first_length_error(value, shape, field)
        if error:
            raise error
    elif received != shape:
        what = "a nested list deeper than that" if received == "deep" else (
            f"the {_json_type(value)} {preview(value)}" if received == () else f"shape {received}")
        raise RequestError(400, f"`{field}` must have shape {shape}. Received: {what}", field=field,
                           received=preview(value))
    _check_leaves(value, len(shape), dtype, field)


def _fast_batch(rows: list, shape: tuple[int, ...], dtype: str) -> np.ndarray | None:
    """The batch in one vectorised pass, or None when anything is wrong (then the slow walk names it)."""
    integer = dtype.startswith(("int", "uint"))
    try:
        array = np.array(rows, dtype=object)
    except (ValueError, TypeError, RecursionError):
        return None
    if array.shape != (len(rows), *shape) or not set(map(type, array.flat)) <= ({int} if integer else {int, float}):
        return None
    try:
        values = array.astype(np.int64 if integer else np.float64)
    except (OverflowError, ValueError, TypeError):
        return None
    if integer:
        info = np.iinfo(dtype)
        return values.astype(dtype) if values.min() >= info.min and values.max() <= info.max else None
    with np.errstate(over="ignore"):
        cast = values.astype(dtype)
    return cast if np.isfinite(cast).all() else None


def _batch(value, signature: Signature, field: str, max_batch: int) -> np.ndarray:
    """``value`` (a list of instances) as an array of shape ``(n, *instance_shape)`` and the signature's dtype."""
    shape, name = signature.instance_shape, signature.input_name
    if type(value) is not list:
        raise RequestError(400, f"`{field}` must be a list of instances, each of shape {shape}. Received: "
                           f"{preview(value)} of type {_json_type(value)}", field=field, received=preview(value))
    if not value:
        raise RequestError(400, f"`{field}` must be a non-empty list of instances. Received: []", field=field,
                           received="[]")
    if len(value) > max_batch:
        raise RequestError(400, f"`{field}` must hold at most {max_batch} instances (the server's --max-batch). "
                           f"Received: {len(value)} instances", field=field, received=f"{len(value)} instances")
    if field == "instances" and any(type(row) is dict for row in value):  # row format with named inputs
        rows = []
        for i, row in enumerate(value):
            if type(row) is dict:
                if list(row) != [name]:
                    raise RequestError(400, f"`instances[{i}]` must be a tensor or an object with the one key "
                                       f"{name!r} (this model's input). Received: keys {preview(list(row))}",
                                       field=f"instances[{i}]", received=preview(row))
                row = row[name]
            rows.append(row)
        value = rows
    batch = _fast_batch(value, shape, signature.dtype)
    if batch is not None:
        return batch
    for i, row in enumerate(value):
        _instance_error(row, shape, signature.dtype, f"{field}[{i}]")
    raise RequestError(400, f"`{field}` could not be converted to {signature.dtype} of shape (n, *{shape}).",
                       field=field, received=preview(value))  # not reached: the walk names the field


def parse_predict_body(body: bytes, signature: Signature, *, max_batch: int) -> tuple[str, np.ndarray]:
    """``("predictions" | "outputs", batch)`` for a ``:predict`` body: the answer's key and the model's input."""
    data = parse_json(body)
    if type(data) is not dict:
        raise RequestError(400, 'The request body must be a JSON object: {"instances": [...]} or {"inputs": ...}. '
                           f"Received: {preview(data)} of type {_json_type(data)}", field="body",
                           received=preview(data))
    unknown = [key for key in data if key not in _BODY_KEYS]
    if unknown:
        raise RequestError(400, f"`{unknown[0]}` is not a field of a predict request; the fields are "
                           f"{list(_BODY_KEYS)}. Received: keys {preview(list(data))}", field=unknown[0],
                           received=preview(data[unknown[0]]))
    if "signature_name" in data and data["signature_name"] != SIGNATURE_NAME:
        value = data["signature_name"]
        raise RequestError(400, f"`signature_name` must be {SIGNATURE_NAME!r} (the only signature) or absent. "
                           f"Received: signature_name={preview(value)}", field="signature_name",
                           received=preview(value))
    if ("instances" in data) == ("inputs" in data):
        found = "both" if "instances" in data else "neither"
        raise RequestError(400, f"The request body must have exactly one of `instances` (row format) or `inputs` "
                           f"(columnar format). Received: {found}", field="body", received=preview(list(data)))
    if "instances" in data:
        return "predictions", _batch(data["instances"], signature, "instances", max_batch)
    inputs, field = data["inputs"], "inputs"
    if type(inputs) is dict:  # {"<input name>": tensor}
        if list(inputs) != [signature.input_name]:
            raise RequestError(400, f"`inputs` must be a tensor or an object with the one key "
                               f"{signature.input_name!r} (this model's input). Received: keys "
                               f"{preview(list(inputs))}", field="inputs", received=preview(inputs))
        inputs, field = inputs[signature.input_name], f"inputs.{signature.input_name}"
    return "outputs", _batch(inputs, signature, field, max_batch)


def to_jsonable(output: np.ndarray) -> list:
    """``output.tolist()``, with ``None`` (JSON ``null``) for NaN and infinities, which JSON cannot hold."""
    if np.issubdtype(output.dtype, np.floating) and not np.isfinite(output).all():
        cells = output.astype(object)
        cells[~np.isfinite(output)] = None
        return cells.tolist()
    return output.tolist()
