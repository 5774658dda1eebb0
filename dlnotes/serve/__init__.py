r"""A model service: ONNX models behind TensorFlow Serving's REST API (FastAPI, uvicorn, ONNX Runtime).

Taught in: *From notebook to production* (``book/faq/production.ipynb``).

Publish a model, then serve the base directory::

    from dlnotes.serve import write_model
    write_model("models", "mnist", 1, "mnist.onnx", input_shape=(None, 28, 28, 1), labels=list("0123456789"))

    python -m dlnotes.serve --model models --port 8501      # or: dlnotes-serve --model models

Every model is loaded once, at startup, from ``PATH/<name>/<version>/model.onnx`` and its
``signature.json`` (:mod:`dlnotes.serve.repository`); the highest version is the default. A
TF Serving client works unchanged::

    requests.post("http://127.0.0.1:8501/v1/models/mnist:predict",
                  data=json.dumps({"signature_name": "serving_default", "instances": x.tolist()}))

API
---
:func:`write_model` (publish), :func:`load_models` (load and check a base directory),
:func:`create_app` (the FastAPI application), :class:`Service` (the server in a subprocess on a
free loopback port: the chapter, the tests and the load benchmark start it this way),
:func:`main` (the command line). Options, with
their defaults: ``--model PATH`` (required), ``--host 127.0.0.1``, ``--port 8501``,
``--max-concurrency 4``, ``--max-queue 8``, ``--max-batch 64``, ``--max-body-bytes 4194304``,
``--retry-after 1``, ``--intra-op-threads 1``, ``--graceful-timeout 30``, ``--log-level info``,
``--no-access-log``.

Routes (``[...]`` is optional; without a version, the highest is used):

- ``GET /v1/models/{name}[/versions/{version}]``: ``{"model_version_status": [{"version": "1",
  "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}``;
- ``GET /v1/models/{name}[/versions/{version}]/metadata``: ``{"model_spec": {...}, "metadata":
  {"signature_def": {"signature_def": {"serving_default": ...}}, "dlnotes": {"signature": ...}}}``,
  TF Serving's ``signature_def``, plus ``signature.json`` (with the labels);
- ``POST /v1/models/{name}[/versions/{version}]:predict``: ``{"instances": [...]}`` (row format)
  answers ``{"predictions": [...]}``, ``{"inputs": ...}`` (columnar) answers ``{"outputs": [...]}``;
- ``GET /healthz``: the models, the predictions in flight and queued, the limits;
- ``GET /openapi.json``: this server's OpenAPI schema, written from its models and limits;
  ``GET /docs``: Swagger UI, whose scripts FastAPI loads from a CDN (so offline it is blank).

``signature_name`` may be sent, and must then be ``"serving_default"``. An ``instances`` row
may be a tensor or ``{"<input name>": tensor}``; ``inputs`` may be the batch tensor or
``{"<input name>": batch}``. NaN or infinite outputs are returned as ``null``.

Error contract
--------------
Bad input never reaches onnxruntime (:mod:`dlnotes.serve.payload` checks everything first)
and never gets a 5xx. Every answer is JSON, errors included, Keras-style, naming the field
and echoing a truncated repr of what was received::

    {"error": "`instances[3]` must have shape (28, 28, 1). Received: shape (28, 27, 1)",
     "field": "instances[3]", "received": "[[[0.0], [0.0], ...], ...]"}

======  ===============================================================  =====================
Status  When                                                             ``field``
======  ===============================================================  =====================
400     The body is empty, not JSON, or not an object; it holds a NaN    ``body``, the key, or
        or Infinity token; an unknown key; both or neither of            the element's path,
        ``instances`` and ``inputs``; another ``signature_name``; an     e.g.
        empty batch or more than ``--max-batch`` instances; a wrong      ``instances[3][0]``
        shape or ragged lists; a boolean, string, object or null where
        a number should be; a number out of the dtype's range (or a
        float for an integer input).
404     Unknown model or version, or unknown route.                      ``name``,
                                                                         ``version``, ``path``
405     Wrong method; the ``Allow`` header lists the right one.          ``method``
413     The body is over ``--max-body-bytes``, by ``Content-Length`` or  ``body``
        by the bytes actually read (a chunked body cannot get past it).
503     ``--max-concurrency`` predictions running and ``--max-queue``    ``null``
        waiting; answered at once, with ``Retry-After`` (seconds).
======  ===============================================================  =====================

Too many instances is a 400, not a 413: the limit is on the request's content and the schema
states it (``maxItems``), and 413 is kept for the body's size. A body is parsed as JSON whatever
its ``Content-Type``, as TF Serving does. Malformed HTTP (a bad ``Content-Length``, say) is
refused by uvicorn itself with a plain-text 400 before the application sees it. A 500 would be
a bug; it too would be JSON.
"""

from __future__ import annotations

from dlnotes.serve.app import Limiter, create_app
from dlnotes.serve.cli import main
from dlnotes.serve.payload import RequestError, parse_predict_body
from dlnotes.serve.process import Service, free_port
from dlnotes.serve.repository import DTYPES, ServedModel, Signature, load_models, make_session, write_model

__all__ = ["write_model", "load_models", "make_session", "create_app", "main", "Signature", "ServedModel",
           "RequestError", "parse_predict_body", "Limiter", "DTYPES", "Service", "free_port"]
