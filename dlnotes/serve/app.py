"""The FastAPI application: TensorFlow Serving's REST routes over the loaded models, the limits, the errors.

:func:`create_app` takes what :func:`dlnotes.serve.repository.load_models` returned. Predictions
run in a thread pool of ``max_concurrency`` threads (onnxruntime releases the GIL), so the event
loop keeps answering ``/healthz`` and rejecting what it must while they run. Every answer is
JSON, errors included (the table is in :mod:`dlnotes.serve`); ``/openapi.json`` is written here
by hand from the served models, so that its schemas say exactly what the server accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.staticfiles import StaticFiles

from dlnotes._checks import check_positive_int
from dlnotes.serve.payload import SIGNATURE_NAME, RequestError, parse_predict_body, preview, to_jsonable
from dlnotes.serve.repository import DTYPES, NAME_PATTERN, ServedModel

__all__ = ["Limiter", "create_app"]

logger = logging.getLogger("uvicorn.error")


class _ModelName(Convertor):
    """``{name:model}``: a model name, so that ``mnist:predict`` is not taken for a name."""

    regex = NAME_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model", _ModelName())


def _check_non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return int(value)


class Limiter:
    """At most ``max_concurrency`` calls running in the thread pool and ``max_queue`` waiting; more get a 503.

    Single event loop, so the counters need no lock. A slot is freed when the thread finishes,
    not when the awaiting request goes away, so the bound holds even for abandoned requests.
    """

    def __init__(self, max_concurrency: int, max_queue: int, retry_after: int):
        self.max_concurrency = check_positive_int("max_concurrency", max_concurrency)
        self.max_queue = _check_non_negative_int("max_queue", max_queue)
        self.retry_after = check_positive_int("retry_after", retry_after)
        self.running = self.queued = 0
        self.executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None

    def start(self) -> None:
        self.executor = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="dlnotes-serve")
        self._slots = asyncio.Semaphore(self.max_concurrency)

    def stop(self) -> None:
        """Wait for the predictions running in the pool, then close it."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    async def run(self, fn: Callable, *args) -> Any:
        """``fn(*args)`` in the pool, or a 503 :class:`RequestError` at once when running and queue are full."""
        if self.executor is None:  # the application's lifespan starts it; this covers a client that skips it
            self.start()
        if self.running + self.queued >= self.max_concurrency + self.max_queue:
            raise RequestError(503, f"The server is busy: {self.running} predictions running and {self.queued} "
                               f"waiting (--max-concurrency {self.max_concurrency}, --max-queue {self.max_queue}). "
                               f"Retry after {self.retry_after} s.", headers={"Retry-After": str(self.retry_after)})
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.running += 1
        future = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

        def release(_):
            self.running -= 1
            self._slots.release()

        future.add_done_callback(release)
        return await asyncio.shield(future)


def _json(payload, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, allow_nan=False, separators=(",", ":")), status_code=status,
                    media_type="application/json", headers=dict(headers or {}))


def _error(error: RequestError) -> Response:
    return _json(error.to_json(), error.status, error.headers)


def _tensor_info(name: str, dtype: str, shape) -> dict:
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in shape]
    return {"dtype": DTYPES[dtype][1], "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}


def _status(versions) -> dict:
    return {"model_version_status": [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in sorted(versions, reverse=True)]}


def _metadata(model: ServedModel) -> dict:
    sig = model.signature
    signature_def = {"inputs": {sig.input_name: _tensor_info(sig.input_name, sig.dtype, sig.shape)},
                     "outputs": {sig.output_name: _tensor_info(sig.output_name, model.output_dtype, model.output_shape)},
                     "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": {SIGNATURE_NAME: signature_def}},
                         "dlnotes": {"signature": sig.to_json()}}}


def create_app(models: Mapping[str, Mapping[int, ServedModel]], *, max_concurrency: int = 4, max_queue: int = 8,
               max_batch: int = 64, max_body_bytes: int = 4 * 2**20, retry_after: int = 1) -> FastAPI:
    """The service over ``models`` (``{name: {version: ServedModel}}``, as :func:`load_models` returns).

    Args:
        max_concurrency: predictions running at once (the thread pool's size).
        max_queue: predictions allowed to wait for a thread; beyond running + queued, a 503.
        max_batch: instances per request; more is a 400.
        max_body_bytes: request body size; more is a 413, by ``Content-Length`` or by the bytes read.
        retry_after: seconds in the 503's ``Retry-After`` header.
    """
    if not models:
        raise ValueError(f"`models` must hold at least one model. Received: models={models!r}")
    models = {name: dict(sorted(versions.items())) for name, versions in models.items()}
    limiter = Limiter(max_concurrency, max_queue, retry_after)
    max_batch = check_positive_int("max_batch", max_batch)
    max_body_bytes = check_positive_int("max_body_bytes", max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        limiter.start()
        for name, versions in models.items():
            logger.info("dlnotes-serve: model %r, versions %s (default %d)", name, list(versions), max(versions))
        try:
            yield
        finally:
            limiter.stop()

    app = FastAPI(title="dlnotes-serve", version="1", lifespan=lifespan, redoc_url=None, docs_url=None,
                  description="TensorFlow Serving's REST API over ONNX models (see the dlnotes.serve docstring).")
    app.state.limiter = limiter
    _offline_docs(app)

    def find(name: str, version: int | None) -> ServedModel:
        if name not in models:
            raise RequestError(404, f"`name` must be one of the served models {sorted(models)}. Received: "
                               f"name={preview(name)}", field="name", received=preview(name))
        versions = models[name]
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise RequestError(404, f"`version` must be one of the served versions of {name!r}, {list(versions)}. "
                               f"Received: version={version}", field="version", received=preview(version))
        return versions[version]

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            raise RequestError(413, f"The request body must be at most {max_body_bytes} bytes (--max-body-bytes). "
                               f"Received: Content-Length {length}", field="body", received=f"{length} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():  # counts chunked bodies too, which have no Content-Length
                size += len(chunk)
                if size > max_body_bytes:
                    raise RequestError(413, f"The request body must be at most {max_body_bytes} bytes "
                                       f"(--max-body-bytes). Received: more than that", field="body",
                                       received=f"more than {max_body_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise RequestError(400, "The client disconnected before sending the whole body.", field="body") from None
        return b"".join(chunks)

    async def predict(request: Request, name: str, version: int | None) -> Response:
        model = find(name, version)
        key, batch = parse_predict_body(await read_body(request), model.signature, max_batch=max_batch)
        output = await limiter.run(model.predict, batch)
        return _json({key: to_jsonable(output)})

    @app.get("/healthz", operation_id="healthz")
    async def healthz() -> Response:
        """Liveness: the served models and the predictions running and waiting now."""
        return _json({"status": "ok", "models": {name: list(v) for name, v in models.items()},
                      "in_flight": limiter.running, "queued": limiter.queued,
                      "max_concurrency": limiter.max_concurrency, "max_queue": limiter.max_queue,
                      "max_batch": max_batch, "max_body_bytes": max_body_bytes})

    @app.get("/v1/models/{name:model}", operation_id="model_status")
    async def model_status(name: str) -> Response:
        """The status of every served version of the model (TF Serving's model status API)."""
        return _json(_status(models[find(name, None).name]))

    @app.get("/v1/models/{name:model}/versions/{version:int}", operation_id="version_status")
    async def version_status(name: str, version: int) -> Response:
        """The status of one version."""
        return _json(_status([find(name, version).version]))

    @app.get("/v1/models/{name:model}/metadata", operation_id="model_metadata")
    async def model_metadata(name: str) -> Response:
        """The default (highest) version's signature, as TF Serving's ``signature_def``, and its labels."""
        return _json(_metadata(find(name, None)))

    @app.get("/v1/models/{name:model}/versions/{version:int}/metadata", operation_id="version_metadata")
    async def version_metadata(name: str, version: int) -> Response:
        """One version's signature."""
        return _json(_metadata(find(name, version)))

    @app.post("/v1/models/{name:model}:predict", operation_id="predict")
    async def predict_default(request: Request, name: str) -> Response:
        """Predict with the default (highest) version: ``{"instances": [...]}`` or ``{"inputs": ...}``."""
        return await predict(request, name, None)

    @app.post("/v1/models/{name:model}/versions/{version:int}:predict", operation_id="predict_version")
    async def predict_version(request: Request, name: str, version: int) -> Response:
        """Predict with one version."""
        return await predict(request, name, version)

    @app.exception_handler(RequestError)
    async def request_error(_request: Request, error: RequestError) -> Response:
        return _error(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        method, path = request.method, request.url.path
        if error.status_code == 404:
            return _error(RequestError(404, f"There is no route {method} {preview(path)}; the routes are listed at "
                                       "/openapi.json and /docs.", field="path", received=preview(path)))
        if error.status_code == 405:
            allow = (error.headers or {}).get("Allow", "")
            return _error(RequestError(405, f"{method} is not allowed on {preview(path)}. Allowed: {allow}.",
                                       field="method", received=method, headers=error.headers))
        return _error(RequestError(error.status_code, str(error.detail), headers=error.headers))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> Response:
        first = (error.errors() or [{}])[0]  # not expected: the routes validate nothing through FastAPI
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return _error(RequestError(400, f"`{field}` {first.get('msg', 'is invalid')}.", field=field,
                                   received=preview(first.get("input"))))

    @app.exception_handler(Exception)
    async def server_error(_request: Request, error: Exception) -> Response:
        # Not expected (the checks above leave nothing for onnxruntime to refuse), but if it comes
        # it is still a JSON 500, and uvicorn logs the traceback.
        return _error(RequestError(500, f"Internal server error ({type(error).__name__}); see the server's log."))

    app.openapi = lambda: _openapi(app, models, max_batch, limiter.retry_after)
    return app


# --- /openapi.json ------------------------------------------------------------------------------------

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _schemas(max_batch: int) -> dict:
    string, count = {"type": "string"}, {"type": "integer", "minimum": 0}
    instance = {"description": "One instance: nested lists of numbers of the signature's shape without the batch "
                               "dimension (see the metadata), or {\"<input name>\": that}.",
                "anyOf": [{"type": "number"}, {"type": "array"},
                          {"type": "object", "minProperties": 1, "maxProperties": 1}]}
    batch = {"type": "array", "minItems": 1, "maxItems": max_batch, "items": _ref("Instance")}
    tensor_info = {"type": "object", "required": ["dtype", "tensor_shape", "name"], "properties": {
        "dtype": string, "name": string, "tensor_shape": {"type": "object", "required": ["dim", "unknown_rank"],
            "properties": {"unknown_rank": {"type": "boolean"}, "dim": {"type": "array", "items": {
                "type": "object", "required": ["size", "name"],
                "properties": {"size": {"type": "string", "pattern": "^-?[0-9]+$"}, "name": string}}}}}}}
    signature_def = {"type": "object", "required": ["inputs", "outputs", "method_name"], "properties": {
        "inputs": {"type": "object", "additionalProperties": _ref("TensorInfo")},
        "outputs": {"type": "object", "additionalProperties": _ref("TensorInfo")}, "method_name": string}}
    signature = {"type": "object", "required": ["input_name", "shape", "dtype", "output_name"],
                 "additionalProperties": False, "properties": {
                     "input_name": string, "output_name": string, "dtype": {"type": "string", "enum": list(DTYPES)},
                     "shape": {"type": "array", "minItems": 1,
                               "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}},
                     "labels": {"type": "array", "items": string}}}
    return {
        "Error": {"type": "object", "required": ["error", "field", "received"], "additionalProperties": False,
                  "properties": {"error": string, "field": {"type": ["string", "null"]},
                                 "received": {"type": ["string", "null"]}}},
        "Health": {"type": "object", "required": ["status", "models", "in_flight", "queued"], "properties": {
            "status": {"type": "string", "enum": ["ok"]}, "in_flight": count, "queued": count,
            "max_concurrency": count, "max_queue": count, "max_batch": count, "max_body_bytes": count,
            "models": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}}}},
        "ModelStatus": {"type": "object", "required": ["model_version_status"], "properties": {
            "model_version_status": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["version", "state", "status"], "properties": {
                    "version": {"type": "string", "pattern": "^[0-9]+$"},
                    "state": {"type": "string", "enum": ["AVAILABLE"]},
                    "status": {"type": "object", "required": ["error_code", "error_message"], "properties": {
                        "error_code": {"type": "string", "enum": ["OK"]}, "error_message": string}}}}}}},
        "TensorInfo": tensor_info,
        "Metadata": {"type": "object", "required": ["model_spec", "metadata"], "properties": {
            "model_spec": {"type": "object", "required": ["name", "signature_name", "version"],
                           "properties": {"name": string, "signature_name": string, "version": string}},
            "metadata": {"type": "object", "required": ["signature_def", "dlnotes"], "properties": {
                "signature_def": {"type": "object", "required": ["signature_def"], "properties": {
                    "signature_def": {"type": "object", "required": [SIGNATURE_NAME],
                                      "additionalProperties": signature_def}}},
                "dlnotes": {"type": "object", "required": ["signature"], "properties": {"signature": signature}}}}}},
        "Instance": instance,
        "PredictRequest": {
            "type": "object", "additionalProperties": False,
            "description": "TF Serving's row format (`instances`) or columnar format (`inputs`), exactly one.",
            "properties": {"signature_name": {"type": "string", "enum": [SIGNATURE_NAME]}, "instances": batch,
                           "inputs": {"anyOf": [batch, {"type": "object", "minProperties": 1, "maxProperties": 1,
                                                        "additionalProperties": batch}]}},
            "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}]},
        "PredictResponse": {
            "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
            "description": "`predictions` (one row per instance) for `instances`, `outputs` for `inputs`; "
                           "null stands for a NaN or infinite output.",
            "properties": {"predictions": {"type": "array", "minItems": 1},
                           "outputs": {"type": "array", "minItems": 1}}},
    }


def _responses(ok: str, *errors: int, retry_after: int = 1) -> dict:
    reasons = {400: "Invalid request (the error names the field)", 404: "Unknown model or version",
               413: "Request body too large", 503: "Too many predictions in flight; retry after Retry-After seconds"}
    out = {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(ok)}}}}
    for status in errors:
        out[str(status)] = {"description": reasons[status], "content": {"application/json": {"schema": _ref("Error")}}}
    if 503 in errors:
        out["503"]["headers"] = {"Retry-After": {"required": True, "description": "seconds",
                                                 "schema": {"type": "integer", "enum": [retry_after]}}}
    return out


def _openapi(app: FastAPI, models: Mapping[str, Mapping[int, ServedModel]], max_batch: int, retry_after: int) -> dict:
    """FastAPI's paths and operations, with this server's parameters, bodies and responses written in."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    versions = sorted({v for vs in models.values() for v in vs})
    params = {"name": {"type": "string", "enum": sorted(models)}, "version": {"type": "integer", "enum": versions}}
    responses = {"healthz": _responses("Health"), "model_status": _responses("ModelStatus", 404),
                 "version_status": _responses("ModelStatus", 404), "model_metadata": _responses("Metadata", 404),
                 "version_metadata": _responses("Metadata", 404)}
    for op in ("predict", "predict_version"):
        responses[op] = _responses("PredictResponse", 400, 404, 413, 503, retry_after=retry_after)
    examples = {}  # one all-zero instance per model, its default version's shape: try it out in /docs
    for name, served in models.items():
        signature = served[max(served)].signature
        zeros = np.zeros(signature.instance_shape, dtype=signature.dtype).tolist()
        examples[name] = {"summary": f"{name}: one instance of shape {signature.instance_shape}, all zeros",
                          "value": {"signature_name": SIGNATURE_NAME, "instances": [zeros]}}
    for path in schema["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = params[parameter["name"]]
            operation["responses"] = responses[operation["operationId"]]
            if operation["operationId"].startswith("predict"):
                operation["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": _ref("PredictRequest"), "examples": examples}}}
    schema["components"] = {"schemas": _schemas(max_batch)}
    app.openapi_schema = schema
    return schema


DOCS_ASSETS = "/docs-assets"


def _offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle`` wheel, so it works offline (FastAPI's default loads it from a CDN)."""
    import swagger_ui_bundle

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="dlnotes-serve: API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")
