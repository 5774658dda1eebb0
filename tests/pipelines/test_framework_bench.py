"""dlnotes.pipelines.framework_bench: backend checks, the JSON protocol, code counting, smoke runs."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import json
import subprocess
import sys

import keras  # imported with the torch backend, as in the notebooks
import numpy as np
import pytest
import torch

from dlnotes.pipelines import framework_bench as fb
from dlnotes.pipelines import image_classifier as ic

RESULT = {"backend": "jax", "epochs": 2, "n_train": 4000, "n_test": 1000, "first_epoch_s": 3.5,
          "seconds_per_epoch": 1.25, "test_accuracy": 0.93, "lines_of_code": 18, "import_s": 1.0, "cpu_s": 9.0}


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax", "pytorch"])
def test_check_backend_accepts_the_four_names(backend):
    assert fb.check_backend(backend) == backend


@pytest.mark.parametrize("backend", ["mxnet", "Torch", "", None, "keras"])
def test_check_backend_rejects_and_echoes_bad_names(backend):
    with pytest.raises(ValueError, match=f"Received: backend={backend!r}"):
        fb.check_backend(backend)


def test_main_rejects_a_bad_backend_in_process_and_on_the_command_line():
    with pytest.raises(ValueError, match="backend='mxnet'"):
        fb.main(["--backend", "mxnet"])
    proc = subprocess.run([sys.executable, "-m", "dlnotes.pipelines.framework_bench", "--backend", "mxnet"],
                          capture_output=True, text=True, env=fb.subprocess_env("torch"))
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and "backend='mxnet'" in proc.stderr
    assert proc.stdout == ""


def test_parse_result_takes_the_last_json_object_line():
    noise = "Epoch 1/2\n125/125 - 2s - loss: 0.4\n[1, 2, 3]\n"
    older = dict(RESULT, test_accuracy=0.5)
    stdout = noise + json.dumps(older) + "\nsome log line\n" + json.dumps(RESULT) + "\n\n"
    assert fb.parse_result(stdout) == RESULT


def test_parse_result_with_custom_required_keys():
    assert fb.parse_result('{"test_accuracy": 0.75}', ("test_accuracy",)) == {"test_accuracy": 0.75}


@pytest.mark.parametrize("stdout, error, match", [
    ("Epoch 1/2\nloss 0.3\n", ValueError, "No JSON result line"),
    ("[1, 2]\n", ValueError, "No JSON result line"),
    (json.dumps({k: v for k, v in RESULT.items() if k != "cpu_s"}), ValueError, r"\['cpu_s'\]"),
    (b'{"backend": "jax"}', TypeError, "bytes"),
])
def test_parse_result_rejects_bad_output(stdout, error, match):
    with pytest.raises(error, match=match):
        fb.parse_result(stdout)


def three_lines_of_code(a):
    """A docstring,

    over several lines, is not code.
    """
    # a comment is not code

    b = a + 1  # but this line is
    return b * 2


class TwoLines:
    """Docstring."""

    x = 1


def test_count_code_lines_skips_docstrings_comments_and_blank_lines():
    # def line + two statements; class line + one assignment; a source string with 2 of 4 lines code.
    assert fb.count_code_lines(three_lines_of_code) == 3
    assert fb.count_code_lines(TwoLines) == 2
    assert fb.count_code_lines("import os\n\n# comment\nprint(os.sep)\n") == 2
    assert fb.count_code_lines(three_lines_of_code, TwoLines) == 5


def test_count_code_lines_rejects_other_objects():
    with pytest.raises(TypeError, match="Received: 42"):
        fb.count_code_lines(42)


def test_keras_code_is_the_same_for_every_backend_and_shorter_than_pytorch():
    keras_lines = {fb.count_code_lines(*fb.model_code(b)) for b in fb.KERAS_BACKENDS}
    assert len(keras_lines) == 1
    assert keras_lines.pop() < fb.count_code_lines(*fb.model_code("pytorch"))
    assert fb.model_code("pytorch")[0] is ic.build_torch_model
    assert fb.model_code("pytorch")[2] is ic.train_torch and ic.train_keras in fb.model_code("jax")
    shared = set(fb.model_code("pytorch")) & set(fb.model_code("torch"))
    assert not shared, f"code counted on both sides: {shared}"
    with pytest.raises(ValueError, match="backend='theano'"):
        fb.model_code("theano")


def test_subprocess_env_sets_the_backend_and_quiets_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    for backend, keras_backend in [("torch", "torch"), ("tensorflow", "tensorflow"), ("jax", "jax"), ("pytorch", "torch")]:
        env = fb.subprocess_env(backend)
        assert env["KERAS_BACKEND"] == keras_backend
        assert env["TF_CPP_MIN_LOG_LEVEL"] == "3"
        assert "TF_ENABLE_ONEDNN_OPTS" not in env  # TensorFlow measured with its default kernels
        assert env["PYTHONPATH"].split(os.pathsep)[0] == os.path.dirname(os.path.dirname(fb.__file__))
    with pytest.raises(ValueError, match="backend='tf'"):
        fb.subprocess_env("tf")


def test_main_in_process_prints_one_json_line(capsys):
    result = fb.main(["--backend", "torch", "--epochs", "1", "--n-train", "128", "--n-test", "64"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and fb.parse_result(lines[0]) == result
    assert (result["backend"], result["epochs"], result["n_train"], result["n_test"]) == ("torch", 1, 128, 64)
    assert result["seconds_per_epoch"] == result["first_epoch_s"] > 0  # one epoch: no steady state
    assert result["test_accuracy"] * 64 == round(result["test_accuracy"] * 64)  # a count of the 64 test images
    assert result["lines_of_code"] == fb.count_code_lines(*fb.model_code("torch"))
    assert result["versions"] == {"keras": keras.__version__, "torch": torch.__version__}


def test_benchmark_refuses_a_second_keras_backend_in_one_process():
    with pytest.raises(ValueError, match="already imported with the 'torch' backend"):
        fb.benchmark("jax", epochs=1, n_train=10, n_test=10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs=0"),
    (dict(n_train=-5), "n_train=-5"),
    (dict(n_test=1.5), "n_test=1.5"),
    (dict(n_train=4500, n_test=1000), "4500\\+1000"),
])
def test_benchmark_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fb.benchmark("torch", **kwargs)


def random_digits(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def test_benchmark_with_a_data_file_rejects_sizes_beyond_it(tmp_path):
    (x, y), (xt, yt) = random_digits(10), random_digits(5, seed=1)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    with pytest.raises(ValueError, match="n_train=20"):
        fb.benchmark("torch", n_train=20, n_test=5, data=tmp_path / "d.npz")


def test_run_benchmark_pytorch_smoke_in_a_subprocess():
    data = (random_digits(200), random_digits(80, seed=1))
    result = fb.run_benchmark("pytorch", epochs=2, n_train=160, n_test=64, data=data, timeout=300)
    assert (result["backend"], result["epochs"], result["n_train"], result["n_test"]) == ("pytorch", 2, 160, 64)
    assert result["versions"] == {"torch": torch.__version__}
    assert result["lines_of_code"] == fb.count_code_lines(*fb.model_code("pytorch"))
    assert result["test_accuracy"] * 64 == round(result["test_accuracy"] * 64) and result["cpu_s"] > 0


def test_run_benchmark_checks_arguments_before_starting_a_process():
    with pytest.raises(ValueError, match="backend='mxnet'"):
        fb.run_benchmark("mxnet")
    with pytest.raises(ValueError, match="epochs=0"):
        fb.run_benchmark("jax", epochs=0)
    with pytest.raises(ValueError, match="data of type ndarray"):
        fb.run_benchmark("jax", data=np.zeros((4, 28, 28, 1)))
    with pytest.raises(ValueError, match="`x_test` and `y_test`.*3 and 2"):
        fb.run_benchmark("jax", data=(random_digits(3), (random_digits(3)[0], np.zeros(2))))


TINY_LISTING = """\
import keras
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.set_weights([np.eye(2, dtype="float32"), np.zeros(2, dtype="float32")])
"""


def test_run_listing_passes_the_arrays_and_evaluates_model():
    x = np.array([[1, 0], [0, 1], [1, 0], [2, 3]], dtype=np.float32)
    y = np.array([0, 1, 1, 1])  # the identity weights predict [0, 1, 0, 1]: 3 of 4 right
    assert fb.run_listing(TINY_LISTING, "torch", x, y, x, y, timeout=300) == {"test_accuracy": 0.75}


def test_run_listing_reports_a_failing_script():
    with pytest.raises(RuntimeError, match="boom"):
        fb.run_listing("raise KeyError('boom')", "jax", np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))


def test_run_listing_rejects_bad_input():
    x, y = np.zeros((3, 2)), np.zeros(3)
    with pytest.raises(TypeError, match="listing of type bytes"):
        fb.run_listing(b"model = 1", "torch", x, y, x, y)
    with pytest.raises(ValueError, match="backend='pytorch'"):
        fb.run_listing("model = 1", "pytorch", x, y, x, y)
    with pytest.raises(ValueError, match="`x_test` and `y_test`.*3 and 2"):
        fb.run_listing("model = 1", "torch", x, y, x, y[:2])
