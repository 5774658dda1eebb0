"""Tests for dlnotes.serve: a real uvicorn server in a subprocess, spoken to as TF Serving clients do.

Models are built with ``onnx.helper`` and published with ``write_model``: a softmax classifier
on (n, 28, 28, 1) with known weights (two versions), a linear model on (n, 3), an int64 model,
and a deliberately slow one (a chain of 1024 x 1024 MatMuls, about 0.6 s a call on one thread)
for the concurrency and shutdown tests. Expected predictions are computed with NumPy in
float64; the server computes in float32, so they agree to ``ATOL`` (softmax outputs lie in
[0, 1], float32's resolution there is about 6e-8).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

import dlnotes.serve
from dlnotes.serve import RequestError, Service, Signature, load_models, parse_predict_body, write_model
from dlnotes.serve.app import Limiter
from dlnotes.serve.cli import main
from tests.helpers import assert_close

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-6
STARTUP_TIMEOUT_S = 60.0
MAX_BATCH, MAX_BODY = 8, 200_000
SLOW_STEPS = 48  # MatMuls of 1024 x 1024: about 0.6 s a prediction on one thread of a 2-core CI machine


# --- models ---------------------------------------------------------------------------------------


def _run(coroutine):
    """``asyncio.run`` in a thread of its own: other tests (Playwright's sync API) may leave an event loop running here."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

def _model(nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, "test", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def classifier(w: np.ndarray, b: np.ndarray, batch="batch"):
    """softmax(flatten(x) @ w + b) on x of shape (n, 28, 28, 1) float32."""
    nodes = [helper.make_node("Flatten", ["pixels"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["z"]),
             helper.make_node("Add", ["z", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    return _model(nodes, [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [batch, 28, 28, 1])],
                  [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, 10])],
                  [("w", w), ("b", b)])


def linear(a: np.ndarray):
    """x @ a on x of shape (n, 3) float32; no softmax, so large inputs overflow to inf."""
    return _model([helper.make_node("MatMul", ["x", "a"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [("a", a)])


def int_sum():
    """The row sums of an int64 (n, 2) input, shape (n, 1)."""
    return _model([helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1)],
                  [helper.make_tensor_value_info("x", TensorProto.INT64, ["n", 2])],
                  [helper.make_tensor_value_info("total", TensorProto.INT64, ["n", 1])],
                  [("axes", np.array([1], np.int64))])


def slow(steps: int = SLOW_STEPS, size: int = 1024):
    """y = 2 x on (n, 4) float32, after ``steps`` MatMuls of sum(x) * I by I (exact, and not foldable)."""
    nodes = [helper.make_node("ReduceSum", ["x"], ["t"], keepdims=1),
             helper.make_node("Unsqueeze", ["t", "axis"], ["t3"]), helper.make_node("Mul", ["t3", "eye"], ["m0"])]
    nodes += [helper.make_node("MatMul", [f"m{i}", "eye"], [f"m{i + 1}"]) for i in range(steps)]
    nodes += [helper.make_node("ReduceMax", [f"m{steps}"], ["r"], keepdims=0),
              helper.make_node("Sub", ["r", "r"], ["zero"]), helper.make_node("Mul", ["x", "two"], ["x2"]),
              helper.make_node("Add", ["x2", "zero"], ["y"])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
                  [("eye", np.eye(size, dtype=np.float32)), ("axis", np.array([2], np.int64)),
                   ("two", np.array(2, np.float32))])


RNG = np.random.default_rng(0)
WEIGHTS = {v: (RNG.normal(0, 0.05, (784, 10)).astype(np.float32), RNG.normal(0, 0.5, 10).astype(np.float32))
           for v in (1, 2)}
LINEAR = np.array([[1.0, 10.0], [2.0, 0.0], [-1.0, 0.5]], np.float32)
LABELS = [f"digit {i}" for i in range(10)]


def expected_probabilities(x: np.ndarray, version: int) -> np.ndarray:
    w, b = WEIGHTS[version]
    logits = x.reshape(len(x), -1).astype(np.float64) @ w.astype(np.float64) + b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


# --- servers --------------------------------------------------------------------------------------

class Server(Service):
    """A started :class:`dlnotes.serve.Service` with quiet logging and its output kept in ``log``."""

    def __init__(self, base: Path, *options: str, log: Path):
        super().__init__(base, args=["--log-level", "warning", *options], timeout=STARTUP_TIMEOUT_S, log=log)
        self.start()

    @property
    def proc(self):
        return self.process

    def stop(self) -> None:  # a test's server must not linger: no graceful wait here
        self.kill()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("models")
    write_model(base, "mnist", 1, classifier(*WEIGHTS[1]), input_shape=(None, 28, 28, 1), labels=LABELS)
    write_model(base, "mnist", 2, classifier(*WEIGHTS[2]).SerializeToString(), input_shape=[None, 28, 28, 1])
    write_model(base, "linear", 1, linear(LINEAR), input_shape=(None, 3))
    write_model(base, "counts", 3, int_sum(), input_shape=(None, 2), dtype="int64")
    return base


@pytest.fixture(scope="module")
def slow_base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("slow")
    write_model(base, "slow", 1, slow(), input_shape=(None, 4))
    return base


@pytest.fixture(scope="module")
def server(base, tmp_path_factory):
    srv = Server(base, "--max-batch", str(MAX_BATCH), "--max-body-bytes", str(MAX_BODY),
                 log=tmp_path_factory.mktemp("log") / "server.log")
    yield srv
    srv.stop()


def post(server, path: str, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, timeout=30)


def assert_error(response: httpx.Response, status: int, field: str | None, received: str | None = None,
                 message: str = "") -> dict:
    """The status, a JSON body of the error shape naming ``field``, and the echo of what was received."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "field", "received"}, body
    assert body["field"] == field, body
    if field is not None and field not in ("body", "path", "method"):  # a field of the request: named in the message
        assert f"`{field}`" in body["error"], body
    if received is not None:
        assert received in body["received"], body
    assert message in body["error"], body
    return body


# --- the TF Serving API ---------------------------------------------------------------------------

def test_a_tf_serving_client_request_gets_the_numpy_predictions(server):
    x = images(5)
    data = json.dumps({"signature_name": "serving_default", "instances": x.tolist()})
    response = requests.post(f"{server.url}/v1/models/mnist:predict", data=data, timeout=30)  # as in TF's tutorial
    assert response.status_code == 200, response.text
    predictions = np.array(response.json()["predictions"])
    assert_close("predictions", predictions, expected_probabilities(x, 2), rtol=0, atol=ATOL)
    assert set(response.json()) == {"predictions"}


def test_columnar_inputs_and_named_instances(server):
    x = images(3, seed=2)
    want = expected_probabilities(x, 2)
    for body, key in (({"inputs": x.tolist()}, "outputs"), ({"inputs": {"pixels": x.tolist()}}, "outputs"),
                      ({"instances": [{"pixels": row} for row in x.tolist()]}, "predictions")):
        response = post(server, "/v1/models/mnist:predict", body)
        assert response.status_code == 200, response.text
        assert list(response.json()) == [key]
        assert_close(key, np.array(response.json()[key]), want, rtol=0, atol=ATOL)


def test_versions_are_selected_and_the_highest_is_the_default(server):
    x = images(2, seed=3)
    for path, version in (("/v1/models/mnist/versions/1:predict", 1), ("/v1/models/mnist/versions/2:predict", 2),
                          ("/v1/models/mnist:predict", 2)):
        response = post(server, path, {"instances": x.tolist()})
        assert response.status_code == 200, response.text
        assert_close(path, np.array(response.json()["predictions"]), expected_probabilities(x, version),
                     rtol=0, atol=ATOL)
    # the two versions differ by far more than the tolerance, so the selection is really tested
    assert np.abs(expected_probabilities(x, 1) - expected_probabilities(x, 2)).max() > 100 * ATOL


def test_status_endpoints(server):
    def status(version):
        return {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}

    assert httpx.get(server.url + "/v1/models/mnist").json() == {"model_version_status": [status("2"), status("1")]}
    assert httpx.get(server.url + "/v1/models/mnist/versions/1").json() == {"model_version_status": [status("1")]}
    assert httpx.get(server.url + "/v1/models/counts").json() == {"model_version_status": [status("3")]}


def test_metadata_is_tf_servings_signature_def_plus_the_labels(server):
    meta = httpx.get(server.url + "/v1/models/mnist/versions/1/metadata").json()
    assert meta["model_spec"] == {"name": "mnist", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["pixels"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["pixels"]["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert [d["size"] for d in sig["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "10"]
    assert meta["metadata"]["dlnotes"]["signature"] == {"input_name": "pixels", "shape": [None, 28, 28, 1],
                                                        "dtype": "float32", "output_name": "probabilities",
                                                        "labels": LABELS}
    default = httpx.get(server.url + "/v1/models/mnist/metadata").json()
    assert default["model_spec"]["version"] == "2" and "labels" not in default["metadata"]["dlnotes"]["signature"]
    counts = httpx.get(server.url + "/v1/models/counts/metadata").json()
    assert counts["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]["dtype"] == "DT_INT64"


def test_healthz_and_openapi(server):
    health = httpx.get(server.url + "/healthz").json()
    assert health["status"] == "ok" and health["models"] == {"counts": [3], "linear": [1], "mnist": [1, 2]}
    assert health["in_flight"] == 0 and health["max_batch"] == MAX_BATCH and health["max_body_bytes"] == MAX_BODY
    spec = httpx.get(server.url + "/openapi.json").json()
    operations = {op["operationId"]: op for path in spec["paths"].values() for op in path.values()}
    assert sorted(operations) == ["healthz", "model_metadata", "model_status", "predict", "predict_version",
                                  "version_metadata", "version_status"]
    assert "/v1/models/{name}:predict" in spec["paths"] and "/v1/models/{name}/versions/{version}:predict" in spec["paths"]
    for name in ("predict", "predict_version"):
        assert operations[name]["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/PredictRequest"}
        assert sorted(operations[name]["responses"]) == ["200", "400", "404", "413", "503"]
    assert all("422" not in op["responses"] for op in operations.values())
    assert spec["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["maxItems"] == MAX_BATCH
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower() and "/openapi.json" in docs.text
    # Offline: every script and stylesheet of the docs page comes from the server itself.
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", docs.text)
    assert assets and all(a.startswith("/docs-assets/") for a in assets), assets
    for asset in assets:
        assert httpx.get(server.url + asset).status_code == 200, asset


def test_nonfinite_outputs_are_null_and_ints_are_summed(server):
    x = [[1e38, 0.0, 0.0], [1.0, 2.0, 3.0]]  # 10 * 1e38 overflows float32 to inf
    response = post(server, "/v1/models/linear:predict", {"instances": x})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[pytest.approx(1e38, rel=1e-6), None], [2.0, 11.5]]}
    response = post(server, "/v1/models/counts:predict", {"inputs": [[1, 2], [2**40, -7]]})
    assert response.json() == {"outputs": [[3], [2**40 - 7]]}


# --- errors -------------------------------------------------------------------------------------------

def _instances(n: int = 4) -> list:
    return np.zeros((n, 28, 28, 1)).tolist()


def _with(path: tuple, value, n: int = 2) -> dict:
    """``{"instances": zeros}`` with one element replaced: ``path`` indexes into the instances."""
    rows = _instances(n)
    target = rows
    for i in path[:-1]:
        target = target[i]
    target[path[-1]] = value
    return {"instances": rows}


def _raw(text: str) -> bytes:
    return text.encode()


# id, path, body, status, field, echo (in "received" and the message), part of the message
ERRORS = [
    ("wrong shape", "/v1/models/mnist:predict", _with((3,), np.zeros((28, 27, 1)).tolist(), n=4), 400,
     "instances[3]", "[[[0.0], [0.0]", "`instances[3]` must have shape (28, 28, 1). Received: shape (28, 27, 1)"),
    ("flat instance", "/v1/models/mnist:predict", {"instances": [[0.0] * 784]}, 400, "instances[0]", "[0.0, 0.0",
     "Received: shape (784,)"),
    ("too deep", "/v1/models/mnist:predict", {"instances": np.zeros((1, 28, 28, 1, 1, 1)).tolist()}, 400,
     "instances[0]", "[[[[", "deeper"),
    ("ragged", "/v1/models/mnist:predict", _with((1, 5), [[0.0]] * 27), 400, "instances[1][5]", "[[0.0], [0.0]",
     "must be a list of 28 items"),
    ("string", "/v1/models/mnist:predict", _with((0, 0, 0, 0), "abc"), 400, "instances[0][0][0][0]", "'abc'",
     "must be a number (float32)"),
    ("boolean", "/v1/models/mnist:predict", _with((1, 2, 3, 0), True), 400, "instances[1][2][3][0]", "True",
     "of type boolean"),
    ("object", "/v1/models/mnist:predict", _with((1, 2, 3, 0), {"a": 1}), 400, "instances[1][2][3][0]", "{'a': 1}",
     "of type object"),
    ("null", "/v1/models/mnist:predict", _with((0, 27, 27, 0), None), 400, "instances[0][27][27][0]", "None",
     "of type null"),
    ("list leaf", "/v1/models/mnist:predict", _with((0, 1, 1, 0), [1.0]), 400, "instances[0][1][1][0]", "[1.0]",
     "of type array"),
    ("NaN token", "/v1/models/mnist:predict", _raw(json.dumps(_with((1, 2, 3, 0), float("nan")))), 400,
     "instances[1][2][3][0]", "NaN", "JSON has no NaN or Infinity"),
    ("Infinity token", "/v1/models/mnist:predict", _raw(json.dumps(_with((0, 0, 1, 0), float("inf")))), 400,
     "instances[0][0][1][0]", "Infinity", "finite"),
    ("-Infinity token", "/v1/models/linear:predict", _raw('{"instances": [[1, 2, -Infinity]]}'), 400,
     "instances[0][2]", "-Infinity", "finite"),
    ("1e400 overflows", "/v1/models/linear:predict", _raw('{"instances": [[1, 1e400, 0]]}'), 400, "instances[0][1]",
     "inf", "must be a finite number"),
    ("float32 range", "/v1/models/linear:predict", {"instances": [[1, 2, 3], [1e39, 0, 0]]}, 400, "instances[1][0]",
     "1e+39", "float32 range"),
    ("huge integer", "/v1/models/linear:predict", {"instances": [[10**400, 0, 0]]}, 400, "instances[0][0]", "1000",
     "float32 range"),
    ("NaN instance", "/v1/models/linear:predict", _raw('{"instances": [NaN]}'), 400, "instances[0]", "NaN",
     "must have shape (3,)"),
    ("empty instances", "/v1/models/mnist:predict", {"instances": []}, 400, "instances", "[]", "non-empty"),
    ("instances not a list", "/v1/models/mnist:predict", {"instances": 3}, 400, "instances", "3", "must be a list"),
    ("too many instances", "/v1/models/linear:predict", {"instances": [[0, 0, 0]] * (MAX_BATCH + 1)}, 400,
     "instances", f"{MAX_BATCH + 1} instances", f"at most {MAX_BATCH}"),
    ("too many inputs", "/v1/models/linear:predict", {"inputs": [[0, 0, 0]] * (MAX_BATCH + 1)}, 400,
     "inputs", f"{MAX_BATCH + 1} instances", f"at most {MAX_BATCH}"),
    ("inputs wrong shape", "/v1/models/linear:predict", {"inputs": {"x": [[0, 0, 0], [0, 0]]}}, 400, "inputs.x[1]",
     "[0, 0]", "must have shape (3,). Received: shape (2,)"),
    ("inputs unknown name", "/v1/models/linear:predict", {"inputs": {"y": [[0, 0, 0]]}}, 400, "inputs", "'y'",
     "the one key 'x'"),
    ("instance unknown name", "/v1/models/linear:predict", {"instances": [{"y": [0, 0, 0]}]}, 400, "instances[0]",
     "'y'", "the one key 'x'"),
    ("int model refuses floats", "/v1/models/counts:predict", {"instances": [[1, 2.5]]}, 400, "instances[0][1]", "2.5",
     "must be an integer (int64)"),
    ("int64 range", "/v1/models/counts:predict", {"instances": [[1, 2**63]]}, 400, "instances[0][1]",
     str(2**63), "int64 range"),
    ("int model refuses booleans", "/v1/models/counts:predict", {"inputs": [[False, 1]]}, 400, "inputs[0][0]",
     "False", "must be an integer"),
    ("unknown model", "/v1/models/nope:predict", {"instances": [[0, 0, 0]]}, 404, "name", "'nope'",
     "the served models ['counts', 'linear', 'mnist']. Received: name='nope'"),
    ("unknown version", "/v1/models/mnist/versions/7:predict", {"instances": _instances(1)}, 404, "version", "7",
     "the served versions of 'mnist', [1, 2]. Received: version=7"),
    ("not JSON", "/v1/models/mnist:predict", b"instances: [1, 2]", 400, "body", "b'instances: [1, 2]'",
     "not valid JSON"),
    ("empty body", "/v1/models/mnist:predict", b"", 400, "body", "''", "empty"),
    ("not UTF-8", "/v1/models/mnist:predict", b'{"instances": "\xff\xfe"}', 400, "body", "\\xff", "not valid JSON"),
    ("nested too deeply", "/v1/models/mnist:predict", b"[" * 50_000 + b"]" * 50_000, 400, "body", "b'[[[[",
     "nested too deeply"),
    ("too many digits", "/v1/models/linear:predict", _raw('{"instances": [[' + "9" * 5000 + ", 0, 0]]}"), 400,
     "body", "b'", "not valid JSON"),
    ("array body", "/v1/models/mnist:predict", [1, 2], 400, "body", "[1, 2]", "must be a JSON object"),
    ("string body", "/v1/models/mnist:predict", "instances", 400, "body", "'instances'", "must be a JSON object"),
    ("null body", "/v1/models/mnist:predict", None, 400, "body", "None", "must be a JSON object"),
    ("both formats", "/v1/models/linear:predict", {"instances": [[0, 0, 0]], "inputs": [[0, 0, 0]]}, 400, "body",
     "['instances', 'inputs']", "exactly one of `instances`"),
    ("neither format", "/v1/models/linear:predict", {"signature_name": "serving_default"}, 400, "body",
     "['signature_name']", "Received: neither"),
    ("unknown key", "/v1/models/linear:predict", {"instance": [[0, 0, 0]]}, 400, "instance", "[[0, 0, 0]]",
     "is not a field of a predict request"),
    ("bad signature_name", "/v1/models/linear:predict", {"signature_name": "predict", "instances": [[0, 0, 0]]}, 400,
     "signature_name", "'predict'", "must be 'serving_default'"),
]


@pytest.mark.parametrize("path, body, status, field, echo, message", [case[1:] for case in ERRORS],
                         ids=[case[0] for case in ERRORS])
def test_bad_requests_get_a_json_4xx_naming_the_field(server, path, body, status, field, echo, message):
    assert_error(post(server, path, body), status, field, echo, message)


def test_unknown_routes_and_methods_get_json_404_and_405(server):
    assert_error(httpx.get(server.url + "/v2/models/mnist"), 404, "path", "'/v2/models/mnist'", "no route")
    assert_error(httpx.post(server.url + "/v1/models/mnist:classify", content=b"{}"), 404, "path", "classify")
    response = httpx.get(server.url + "/v1/models/mnist:predict")
    assert_error(response, 405, "method", "GET", "Allowed: POST")
    assert response.headers["allow"] == "POST"
    response = httpx.delete(server.url + "/v1/models/mnist")
    assert_error(response, 405, "method", "DELETE")
    assert response.headers["allow"] == "GET"
    assert_error(httpx.get(server.url + "/v1/models/mnist/versions/one"), 404, "path", "/versions/one")


# --- body size limits -------------------------------------------------------------------------------

def raw_http(port: int, data: bytes) -> tuple[int, dict]:
    """Send ``data`` as is on a fresh connection; the status and JSON body of the answer.

    The server may close (and reset) the connection right after answering, without reading the
    rest of the body: what arrived before the reset is the answer.
    """
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), received[:200]
    return int(head.split()[1]), json.loads(body)


def test_a_body_over_the_limit_is_refused_by_content_length_and_by_bytes_read(server):
    request = (b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: test\r\nConnection: close\r\n")
    # Content-Length alone: refused before a byte of the body is read
    status, body = raw_http(server.port, request + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    assert (status, body["field"], body["received"]) == (413, "body", f"{MAX_BODY + 1} bytes"), body
    # chunked, no Content-Length: counted as it is read
    payload = b'{"instances": [' + b"0," * (MAX_BODY // 2) + b"0]}"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 4096]), payload[i:i + 4096])
                       for i in range(0, len(payload), 4096)) + b"0\r\n\r\n"
    status, body = raw_http(server.port, request + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert (status, body["field"], body["received"]) == (413, "body", f"more than {MAX_BODY} bytes"), body
    # the same chunked encoding under the limit is read and parsed
    small = b'{"instances": [[1, 2, 3]]}'
    status, body = raw_http(server.port, request.replace(b"mnist", b"linear") + b"Transfer-Encoding: chunked\r\n\r\n"
                            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
    assert status == 200 and body == {"predictions": [[2.0, 11.5]]}, body
    # and an ordinary client's oversized body
    assert_error(post(server, "/v1/models/mnist:predict", b" " * (MAX_BODY + 1)), 413, "body",
                 f"{MAX_BODY + 1} bytes", "at most 200000 bytes")


# --- schemathesis against /openapi.json -----------------------------------------------------------------

TALLY: Counter = Counter()  # "requests", "5xx", and each status code
PER_OPERATION: Counter = Counter()  # (operation, status code)
FUZZ_EXAMPLES = 25  # per operation and generation mode (schema-valid, then schema-invalid data)


def test_openapi_schema_fuzzing_finds_no_server_error(server):
    # schemathesis.pytest.from_fixture would do this per operation, but it reads pytest's
    # Function._nodeid, which pytest 9 removed; so each operation's strategy runs under @given here.
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    for operation in operations:
        # Every check, response-schema conformance among them; for the predict operations positive
        # data acceptance is left out: the schema describes the envelope but not each model's input
        # shape (the metadata has it), so a schema-valid body is often rightly a 400.
        excluded = [positive_data_acceptance] if operation.method.upper() == "POST" else []
        has_inputs = bool(operation.path_parameters) or operation.body
        strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
        if has_inputs:
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
        if operation.body:  # the schema's request examples (one per model), with generated path parameters
            strategies.append(st.one_of(operation.get_strategies_from_examples()))
        for strategy in strategies:
            @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def fuzz(case):
                response = case.call(base_url=server.url, timeout=30)
                TALLY["requests"] += 1
                TALLY[str(response.status_code)] += 1
                PER_OPERATION[operation.label, response.status_code] += 1
                TALLY["5xx"] += response.status_code >= 500
                case.validate_response(response, excluded_checks=excluded)  # not_a_server_error among them

            fuzz()


def test_openapi_fuzzing_made_requests_and_no_5xx():
    if not TALLY:
        pytest.skip("run together with test_openapi_schema_fuzzing_finds_no_server_error")
    operations = Counter()
    for (label, _), n in PER_OPERATION.items():
        operations[label] += n
    statuses = {key: n for key, n in sorted(TALLY.items()) if key.isdigit()}
    print(f"\nschemathesis: {len(operations)} operations, {TALLY['requests']} requests, {TALLY['5xx']} with a 5xx; "
          f"statuses {statuses}; per operation {dict(operations)}; "
          f"per operation and status { {f'{k[0]} {k[1]}': n for k, n in sorted(PER_OPERATION.items())} }")
    assert len(operations) == 7 and TALLY["5xx"] == 0, TALLY
    # every operation with inputs got both kinds of data, and each kind of answer was seen
    assert all(n >= FUZZ_EXAMPLES for label, n in operations.items() if "{" in label), operations
    assert all(TALLY[status] > 0 for status in ("200", "400", "404")), statuses
    assert sum(n for (label, status), n in PER_OPERATION.items() if label.startswith("POST") and status == 200)


# --- concurrency and shutdown -------------------------------------------------------------------------

def _slow_predict(url: str, x: list) -> httpx.Response:
    return httpx.post(url + "/v1/models/slow:predict", content=json.dumps({"instances": x}), timeout=60)


def test_a_saturated_server_answers_503_at_once_and_stays_responsive(slow_base, tmp_path):
    srv = Server(slow_base, "--max-concurrency", "1", "--max-queue", "0", "--retry-after", "2", log=tmp_path / "log")
    try:
        x = [[1.0, 2.0, 3.0, 4.0]]
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(_slow_predict, srv.url, x)
            deadline = time.monotonic() + 10
            while httpx.get(srv.url + "/healthz").json()["in_flight"] == 0:  # the first is running
                assert time.monotonic() < deadline and not first.done(), "the first prediction never ran"
                time.sleep(0.01)
            start = time.perf_counter()
            health = httpx.get(srv.url + "/healthz", timeout=5)
            health_s = time.perf_counter() - start
            others = [pool.submit(_slow_predict, srv.url, x) for _ in range(3)]
            rejected = [f.result() for f in others]
            still_running = not first.done()
            responses = [first.result()] + rejected
    finally:
        srv.stop()
    assert health.json()["in_flight"] == 1 and health_s < 0.5, (health.json(), health_s)
    assert still_running, "the slow prediction ended before the others were rejected: the test proves nothing"
    assert responses[0].status_code == 200 and responses[0].json() == {"predictions": [[2.0, 4.0, 6.0, 8.0]]}
    for response in rejected:
        assert_error(response, 503, None, message="The server is busy")
        assert response.headers["retry-after"] == "2"
    assert all(r.status_code in (200, 503) for r in responses)


def test_sigterm_lets_predictions_in_flight_finish_then_exits_0(slow_base, tmp_path):
    srv = Server(slow_base, "--max-concurrency", "3", "--max-queue", "0", log=tmp_path / "log")
    try:
        inputs = [[[float(i), 1.0, 2.0, 3.0]] for i in range(3)]
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(_slow_predict, srv.url, x) for x in inputs]
            deadline = time.monotonic() + 10
            while httpx.get(srv.url + "/healthz").json()["in_flight"] < 3:  # all three accepted and running
                assert time.monotonic() < deadline, "the three predictions never ran together"
                time.sleep(0.01)
            srv.proc.send_signal(signal.SIGTERM)
            refused_while_in_flight = False
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
                except ConnectionRefusedError:
                    refused_while_in_flight = not all(f.done() for f in futures)
                    break
                time.sleep(0.01)
            responses = [f.result() for f in futures]
        code = srv.proc.wait(timeout=30)
    finally:
        srv.stop()
    assert refused_while_in_flight, "new connections were not refused while the predictions were finishing"
    for x, response in zip(inputs, responses):
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [[2 * v for v in x[0]]]}
    assert code == 0, srv.output()
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/healthz", timeout=2)


def test_the_limiter_queues_up_to_max_queue_then_refuses():
    async def scenario():
        limiter = Limiter(max_concurrency=1, max_queue=1, retry_after=3)
        limiter.start()
        try:
            results = await asyncio.gather(*(limiter.run(time.sleep, 0.2) for _ in range(3)), return_exceptions=True)
        finally:
            limiter.stop()
        return limiter, results

    limiter, results = _run(scenario())
    refused = [r for r in results if isinstance(r, RequestError)]
    assert results.count(None) == 2 and len(refused) == 1, results
    assert refused[0].status == 503 and refused[0].headers == {"Retry-After": "3"}
    assert limiter.running == limiter.queued == 0


# --- request parsing, without a server --------------------------------------------------------------

SIGNATURE = Signature("x", (None, 2, 3), "float32", "y")
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=20)


@given(instances=json_values)
def test_any_json_is_either_a_valid_batch_or_a_400(instances):
    body = json.dumps({"instances": instances}).encode()  # floats may become NaN/Infinity tokens
    try:
        key, batch = parse_predict_body(body, SIGNATURE, max_batch=4)
    except RequestError as error:
        assert error.status == 400 and error.field and error.field.startswith("instances")
        return
    assert key == "predictions" and batch.dtype == np.float32 and batch.shape[1:] == (2, 3)
    assert np.isfinite(batch).all()
    rows = [row["x"] if isinstance(row, dict) else row for row in instances]  # {"x": tensor} rows
    expected = np.array([[[float(v) for v in line] for line in row] for row in rows]).astype(np.float32)
    np.testing.assert_array_equal(batch, expected)


@given(x=st.lists(st.floats(-2.0**100, 2.0**100, width=32) | st.integers(-2**31, 2**31), min_size=6, max_size=6),
       n=st.integers(1, 4))
def test_valid_batches_convert_exactly(x, n):
    rows = [np.array(x, dtype=object).reshape(2, 3).tolist()] * n
    key, batch = parse_predict_body(json.dumps({"inputs": rows}).encode(), SIGNATURE, max_batch=4)
    assert key == "outputs"
    np.testing.assert_array_equal(batch, np.array(rows, dtype=np.float64).astype(np.float32))


# --- bad arguments ----------------------------------------------------------------------------------

def test_write_model_refuses_bad_arguments(tmp_path):
    model = classifier(*WEIGHTS[1])
    ok = dict(input_shape=(None, 28, 28, 1))
    cases = [
        (ValueError, "`name` must be", dict(name="a/b")),
        (ValueError, "Received: name=':predict'", dict(name=":predict")),
        (ValueError, "Received: version=0", dict(version=0)),
        (ValueError, "Received: version=True", dict(version=True)),
        (TypeError, "Received: model of type int", dict(model=123)),
        (ValueError, "not a valid ONNX model", dict(model=b"not onnx")),
        (ValueError, "which is not a file", dict(model=tmp_path / "missing.onnx")),
        (ValueError, "Received: shape=(28, 28, 1)", dict(input_shape=(28, 28, 1))),
        (ValueError, "Received: shape=[None, 28, 28]", dict(input_shape=[None, 28, 28])),
        (ValueError, "Received: shape=[None, 28, 28, 3]", dict(input_shape=[None, 28, 28, 3])),
        (ValueError, "Received: dtype='float64'", dict(dtype="float64")),
        (ValueError, "Received: dtype='float33'", dict(dtype="float33")),
        (ValueError, "Received: 3 labels", dict(labels=["a", "b", "c"])),
        (ValueError, "Received: labels=[1, 2]", dict(labels=[1, 2])),
        (ValueError, "Received: input_name='image'", dict(input_name="image")),
        (ValueError, "Received: output_name='logits'", dict(output_name="logits")),
        (ValueError, "batch dimension is fixed to 1", dict(model=classifier(*WEIGHTS[1], batch=1))),
        (TypeError, "`base_dir` must be a path", dict(base_dir=3)),
    ]
    for error, message, change in cases:
        args = dict(base_dir=tmp_path, name="mnist", version=1, model=model, **ok) | change
        with pytest.raises(error, match=None) as raised:
            write_model(args.pop("base_dir"), args.pop("name"), args.pop("version"), args.pop("model"), **args)
        assert message in str(raised.value), (change, str(raised.value))
    write_model(tmp_path, "mnist", 1, model, **ok)
    with pytest.raises(ValueError, match="already exists"):
        write_model(tmp_path, "mnist", 1, model, **ok)
    write_model(tmp_path, "mnist", 1, model, overwrite=True, **ok)


def test_write_model_reads_external_data_from_a_path(tmp_path):
    import onnx

    onnx.save(linear(LINEAR), tmp_path / "split.onnx", save_as_external_data=True, location="split.onnx.data",
              size_threshold=0)  # the weights in split.onnx.data, as torch.onnx.export writes them
    folder = write_model(tmp_path / "models", "linear", 1, tmp_path / "split.onnx", input_shape=(None, 3))
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "signature.json"]
    model = load_models(tmp_path / "models")["linear"][1]
    assert model.predict(np.ones((1, 3), np.float32)).tolist() == [[2.0, 10.5]]
    unloaded = onnx.load(tmp_path / "split.onnx", load_external_data=False)
    with pytest.raises(ValueError, match="external data files"):
        write_model(tmp_path / "models", "linear", 2, unloaded, input_shape=(None, 3))


def _published(tmp_path: Path) -> Path:
    write_model(tmp_path / "models", "linear", 1, linear(LINEAR), input_shape=(None, 3))
    return tmp_path / "models"


def test_load_models_refuses_a_bad_base_directory(tmp_path):
    with pytest.raises(ValueError, match=r"`base_dir` must be an existing folder.*Received: base_dir='.*missing'"):
        load_models(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no models"):
        load_models(tmp_path / "empty")
    with pytest.raises(TypeError, match="`base_dir` must be a path"):
        load_models(None)
    with pytest.raises(ValueError, match="Received: intra_op_threads=0"):
        load_models(_published(tmp_path), intra_op_threads=0)
    models = load_models(tmp_path / "models")
    assert list(models) == ["linear"] and list(models["linear"]) == [1]
    assert models["linear"][1].predict(np.ones((2, 3), np.float32)).tolist() == [[2.0, 10.5]] * 2


SIGNATURE_EDITS = [
    ({"shape": [3]}, "Received: shape=[3]"),
    ({"shape": [None, 0]}, "Received: shape=[None, 0]"),
    ({"shape": [None, 4]}, "must match the model's input shape [None, 3]"),
    ({"dtype": "float33"}, "Received: dtype='float33'"),
    ({"dtype": "int64"}, "the model's input type 'float32'. Received: dtype='int64'"),
    ({"input_name": ""}, "Received: input_name=''"),
    ({"output_name": "z"}, "Received: output_name='z'"),
    ({"labels": "ab"}, "Received: labels='ab'"),
    ({"labels": ["a", "b", "c"]}, "Received: 3 labels"),
    ({"extra": 1}, "unknown field(s) ['extra']"),
    ({"dtype": None}, "Received: dtype=None"),
]


@pytest.mark.parametrize("edit, message", SIGNATURE_EDITS, ids=[str(e) for e, _ in SIGNATURE_EDITS])
def test_load_models_names_the_bad_signature_field(tmp_path, edit, message):
    path = _published(tmp_path) / "linear" / "1" / "signature.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | edit))
    with pytest.raises(ValueError) as raised:
        load_models(tmp_path / "models")
    assert message in str(raised.value) and str(path) in str(raised.value), str(raised.value)


def test_load_models_names_the_bad_file_or_folder(tmp_path):
    base = _published(tmp_path)
    signature = base / "linear" / "1" / "signature.json"
    good = signature.read_text()
    problems = {
        "missing field": (lambda: signature.write_text('{"input_name": "x"}'), "missing the field(s) ['shape'"),
        "not JSON": (lambda: signature.write_text("{shape: [null, 3]"), "is not valid JSON"),
        "NaN in JSON": (lambda: signature.write_text(good.replace("3]", "NaN]")), "it contains NaN"),
        "not an object": (lambda: signature.write_text("[1]"), "must be a JSON object. Received: [1]"),
        "version name": (lambda: (base / "linear" / "v2").mkdir(), "Received: 'v2'"),
        "leading zero": (lambda: (base / "linear" / "01").mkdir(), "Received: '01'"),
        "model name": (lambda: (base / "-bad").mkdir(), "must be model names"),
        "stray file": (lambda: (base / "notes.txt").write_text("x"), "Received: the file"),
        "no versions": (lambda: (base / "empty").mkdir(), "has no versions"),
        "no model.onnx": (lambda: (base / "linear" / "1" / "model.onnx").unlink(), "model.onnx is missing"),
        "bad model.onnx": (lambda: (base / "linear" / "1" / "model.onnx").write_bytes(b"junk"), "onnxruntime cannot"),
    }
    for name, (damage, message) in problems.items():
        damage()
        with pytest.raises(ValueError) as raised:
            load_models(base)
        assert message in str(raised.value), (name, str(raised.value))
        (base.parent / "models").rename(base.parent / f"broken-{name}")
        _published(tmp_path)
    (base / ".hidden").mkdir()  # hidden entries are ignored
    assert list(load_models(base)) == ["linear"]


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "`--port` must be an integer in [1, 65535]. Received: --port=70000"),
    (["--port", "0"], "Received: --port=0"),
    (["--port", "http"], "argument --port: invalid int value: 'http'"),
    (["--max-concurrency", "0"], "Received: --max-concurrency=0"),
    (["--max-queue", "-1"], "Received: --max-queue=-1"),
    (["--graceful-timeout", "0"], "Received: --graceful-timeout=0.0"),
    (["--intra-op-threads", "0"], "Received: --intra-op-threads=0"),
])
def test_the_command_line_refuses_bad_options(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as raised:
        main(["--model", str(_published(tmp_path)), *argv])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_refuses_a_missing_model_directory(tmp_path):
    missing = tmp_path / "nowhere"
    proc = subprocess.run([sys.executable, "-m", "dlnotes.serve", "--model", str(missing), "--port", "8501"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert f"Received: base_dir='{missing}'" in proc.stderr and "usage: dlnotes-serve" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dlnotes.serve"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "--model" in proc.stderr


def test_a_port_in_use_stops_the_server_with_uvicorns_startup_failure(server, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dlnotes.serve", "--model", str(_published(tmp_path)),
                           "--port", str(server.port)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 3 and "address already in use" in proc.stderr, proc.stderr  # uvicorn.STARTUP_FAILURE


def test_validation_and_unexpected_errors_are_json_too(tmp_path):
    from dlnotes.serve import create_app

    app = create_app(load_models(_published(tmp_path)))

    @app.get("/probe")  # routes of dlnotes.serve validate nothing through FastAPI; this one does
    async def probe(n: int) -> dict:
        return {"n": n}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("a bug")

    async def requests_in_process():  # no lifespan here: the limiter starts its thread pool when first needed
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get("/probe", params={"n": "abc"}), await client.get("/boom"),
                    await client.post("/v1/models/linear:predict", json={"instances": [[1, 1, 1]]}))

    invalid, bug, prediction = _run(requests_in_process())
    app.state.limiter.stop()
    assert_error(invalid, 400, "n", "'abc'", "`n` Input should be a valid integer")
    assert_error(bug, 500, None, message="Internal server error (RuntimeError)")
    assert prediction.json() == {"predictions": [[2.0, 10.5]]}
    with pytest.raises(ValueError, match="Received: max_queue=-1"):
        create_app(load_models(tmp_path / "models"), max_queue=-1)
    with pytest.raises(ValueError, match="`models` must hold at least one model"):
        create_app({})


def test_the_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["dlnotes-serve"] == "dlnotes.serve:main"
    assert dlnotes.serve.main is main
    assert "dlnotes.serve" in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_service_helper_stops_gracefully_and_checks_its_arguments(base):
    with Service(base, args=["--log-level", "warning"]) as service:
        assert httpx.get(service.url + "/v1/models/mnist").status_code == 200
        log = service.log
    assert service.returncode == 0, service.output()
    assert not log.exists(), "a temporary log is removed when the service stops"
    with pytest.raises(ValueError, match="`model_dir` must name an existing directory. Received: model_dir='missing-dir'"):
        Service("missing-dir")
    with pytest.raises(TypeError, match="`args` must be a list of strings"):
        Service(base, args="--port 1")
