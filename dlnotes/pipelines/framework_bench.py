r"""One model, four frameworks: train the seed classifier and measure time, accuracy, code.

Taught in: *Choosing a framework* (``book/faq/choosing_a_framework.ipynb``); the
*Image classification with Keras* project uses :func:`run_listing` to run the seed's
TensorFlow listing unchanged.

Run one measurement from the command line; it prints one JSON line::

    python -m dlnotes.pipelines.framework_bench --backend torch --epochs 2

``--backend`` is a Keras 3 backend (``torch``, ``tensorflow``, ``jax``: the same Keras
code, :func:`dlnotes.pipelines.image_classifier.build_keras_model` and ``train_keras``) or
``pytorch``: the plain PyTorch twin and its explicit training loop
(:func:`dlnotes.pipelines.image_classifier.train_torch`). Both paths use the same arguments
(:mod:`dlnotes.pipelines.common`: Adam with the same epsilon, learning rate 1e-3, batches of 32).
Keras reads ``KERAS_BACKEND`` once, when it is first imported, so each backend needs a
fresh process: :func:`run_benchmark` starts one with the variable set and parses its line.

Measured, for ``epochs`` epochs on ``n_train`` images with batches of 32:

- ``first_epoch_s``: the first epoch, which includes tracing/compiling (TensorFlow, JAX);
- ``seconds_per_epoch``: the mean of the later epochs (the first, if ``epochs == 1``);
- ``test_accuracy`` on ``n_test`` held-out images;
- ``lines_of_code``: :func:`count_code_lines` of the functions that define, train and
  evaluate the model (docstrings, comments and blank lines not counted);
- ``import_s``: importing the framework; ``cpu_s``: the process's CPU seconds in all;
- ``versions``: the versions of Keras (if used) and of the framework underneath.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from dlnotes._checks import check_positive_int

__all__ = [
    "BACKENDS",
    "KERAS_BACKENDS",
    "RESULT_KEYS",
    "check_backend",
    "subprocess_env",
    "count_code_lines",
    "model_code",
    "parse_result",
    "benchmark",
    "run_benchmark",
    "run_listing",
    "main",
]

KERAS_BACKENDS = ("torch", "tensorflow", "jax")
BACKENDS = KERAS_BACKENDS + ("pytorch",)
RESULT_KEYS = ("backend", "epochs", "n_train", "n_test", "first_epoch_s", "seconds_per_epoch",
               "test_accuracy", "lines_of_code", "import_s", "cpu_s")
# Environment for child processes: silence TensorFlow's C++ logging and Python warnings.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


def check_backend(backend) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise.

    Raises:
        ValueError: not one of ``("torch", "tensorflow", "jax", "pytorch")``; the message echoes it.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}. Received: backend={backend!r}")
    return backend


def subprocess_env(backend: str) -> dict[str, str]:
    """The environment for a child process: ours, plus ``KERAS_BACKEND`` and TensorFlow quieted.

    ``pytorch`` (no Keras) gets ``KERAS_BACKEND=torch`` so nothing in it would start TensorFlow.
    ``TF_ENABLE_ONEDNN_OPTS`` is removed, so TensorFlow is measured with its default kernels
    even if the parent turned oneDNN off to silence its notice. The package's folder is put
    first on ``PYTHONPATH`` so the child imports this ``dlnotes``.

    Raises:
        ValueError: ``backend`` is not one of :data:`BACKENDS`.
    """
    backend = check_backend(backend)
    env = dict(os.environ, **QUIET_ENV)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # TensorFlow's default kernels, whatever the parent set
    env["KERAS_BACKEND"] = "torch" if backend == "pytorch" else backend
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def count_code_lines(*sources) -> int:
    """Lines of code: non-blank source lines that are neither comments nor docstrings.

    Args:
        sources: functions, classes or strings of Python source.

    Returns:
        The total over all ``sources``.

    Raises:
        TypeError: a source is neither a string nor a function or class.
    """
    total = 0
    for source in sources:
        if not isinstance(source, str):
            if not (inspect.isfunction(source) or inspect.isclass(source)):
                raise TypeError(f"`sources` must be functions, classes or strings. Received: {source!r}")
            source = textwrap.dedent(inspect.getsource(source))
        docstrings = set()
        for node in ast.walk(ast.parse(source)):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
        total += sum(1 for number, line in enumerate(source.splitlines(), 1)
                     if line.strip() and not line.strip().startswith("#") and number not in docstrings)
    return total


def model_code(backend: str) -> list:
    """The functions whose lines :func:`count_code_lines` counts for ``backend``.

    Everything of ours that defines, trains and evaluates the model on that path, apart from
    what both paths share (the argument checks and
    :func:`~dlnotes.pipelines.common.classification_metrics`). Keras (any backend):
    ``build_keras_model``, ``train_keras``, ``evaluate_keras`` and the ``compile`` + ``fit`` they
    call. PyTorch: ``build_torch_model``, ``torch_images``, ``train_torch``, ``evaluate_torch`` and
    the explicit loop they call.

    Raises:
        ValueError: ``backend`` is not one of :data:`BACKENDS`.
    """
    from dlnotes.pipelines import common
    from dlnotes.pipelines import image_classifier as ic

    if check_backend(backend) == "pytorch":
        return [ic.build_torch_model, ic.torch_images, ic.train_torch, ic.evaluate_torch, common.train_torch_classifier,
                common._torch_tensors, common.fit_torch_classifier, common.torch_adam, common.torch_outputs,
                common.evaluate_torch_classifier]
    return [ic.build_keras_model, ic.train_keras, ic.evaluate_keras, common.train_keras_classifier,
            common.fit_keras_classifier, common.keras_adam, common.evaluate_keras_classifier]


def _seed(backend: str, seed: int) -> None:
    """Seed without ``keras.utils.set_random_seed``: it imports TensorFlow whatever the backend."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    if backend in ("torch", "pytorch"):
        import torch

        torch.manual_seed(seed)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.random.set_seed(seed)


def _load_arrays(data, n_train: int, n_test: int):
    """The first ``n_train``/``n_test`` images of an ``.npz`` file (or of the offline MNIST if ``None``)."""
    from dlnotes.pipelines import image_classifier as ic

    if data is None:
        if n_train + n_test > 5000:
            raise ValueError(f"`n_train + n_test` must be at most 5000 (the offline MNIST). Received: {n_train}+{n_test}")
        (x_train, y_train), (x_test, y_test) = ic.load_data(n_train=n_train)
    else:
        with np.load(data) as arrays:
            x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        if n_train > len(x_train) or n_test > len(x_test):
            raise ValueError(f"`data` holds {len(x_train)} training and {len(x_test)} test images. "
                             f"Received: n_train={n_train}, n_test={n_test}")
    return (x_train[:n_train], y_train[:n_train]), (x_test[:n_test], y_test[:n_test])


def benchmark(backend: str, *, epochs: int = 2, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
              data=None) -> dict:
    """Train and evaluate the seed classifier with ``backend`` in *this* process.

    For a Keras backend, ``KERAS_BACKEND`` must already name it when Keras is first
    imported; use :func:`run_benchmark` (a fresh process) unless you know it does.

    Args:
        backend: one of :data:`BACKENDS`.
        epochs: training epochs (batches of 32, Adam with learning rate 1e-3).
        n_train, n_test: how many training and test images to use (the first ones).
        seed: seeds the weights and the shuffling.
        data: path of an ``.npz`` file with ``x_train, y_train, x_test, y_test`` laid out as
            :func:`dlnotes.pipelines.image_classifier.load_data` returns them; ``None`` loads the
            offline MNIST (then ``n_train + n_test`` is at most 5,000).

    Returns:
        A dict with the keys :data:`RESULT_KEYS` and ``versions`` (see the module docstring).

    Raises:
        ValueError: bad backend or sizes, or Keras is already imported with another backend.
    """
    backend = check_backend(backend)
    epochs, n_train, n_test = (check_positive_int(k, v) for k, v in
                               (("epochs", epochs), ("n_train", n_train), ("n_test", n_test)))
    keras_backend = "torch" if backend == "pytorch" else backend
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != keras_backend:
        raise ValueError(f"Keras is already imported with the {sys.modules['keras'].backend.backend()!r} backend; "
                         f"run this in a fresh process. Received: backend={backend!r}")
    os.environ["KERAS_BACKEND"] = keras_backend  # before keras is imported
    from dlnotes.pipelines import image_classifier as ic

    (x_train, y_train), (x_test, y_test) = _load_arrays(data, n_train, n_test)
    start = time.perf_counter()
    if backend == "pytorch":
        import torch  # noqa: F401
    else:
        import keras  # noqa: F401
    import_s = time.perf_counter() - start
    _seed(backend, seed)
    epoch_times, last = [], [time.perf_counter()]

    def on_epoch_end(epoch, logs=None):
        now = time.perf_counter()
        epoch_times.append(now - last[0])
        last[0] = now

    model = ic.build_torch_model() if backend == "pytorch" else ic.build_keras_model()
    train, evaluate = (ic.train_torch, ic.evaluate_torch) if backend == "pytorch" else (ic.train_keras, ic.evaluate_keras)
    last[0] = time.perf_counter()
    train(model, x_train, y_train, epochs=epochs, batch_size=32, learning_rate=1e-3, seed=seed, on_epoch_end=on_epoch_end)
    accuracy = evaluate(model, x_test, y_test)["accuracy"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    names = ("torch",) if backend == "pytorch" else ("keras", backend)
    versions = {name: sys.modules[name].__version__ for name in names}
    steady = epoch_times[1:] or epoch_times
    return {"backend": backend, "epochs": epochs, "n_train": n_train, "n_test": n_test,
            "first_epoch_s": epoch_times[0], "seconds_per_epoch": float(np.mean(steady)),
            "test_accuracy": float(accuracy), "lines_of_code": count_code_lines(*model_code(backend)),
            "import_s": import_s, "cpu_s": usage.ru_utime + usage.ru_stime, "versions": versions}


def parse_result(stdout: str, required=RESULT_KEYS) -> dict:
    """The last line of ``stdout`` that is a JSON object, checked for the ``required`` keys.

    Raises:
        TypeError: ``stdout`` is not a string.
        ValueError: no line is a JSON object, or the object lacks a required key.
    """
    if not isinstance(stdout, str):
        raise TypeError(f"`stdout` must be a string. Received: stdout of type {type(stdout).__name__}")
    for line in reversed(stdout.strip().splitlines()):
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict):
            missing = [key for key in required if key not in result]
            if missing:
                raise ValueError(f"The result line lacks the keys {missing}. Received: {line.strip()[:200]!r}")
            return result
    raise ValueError(f"No JSON result line in the output. Received: stdout={stdout.strip()[-300:]!r}")


def _run(command: list[str], backend: str, timeout: float, required) -> dict:
    proc = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(backend), timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"The {backend} subprocess failed with exit code {proc.returncode}:\n{tail}")
    return parse_result(proc.stdout, required)


def _save_arrays(folder: str, x_train, y_train, x_test, y_test) -> Path:
    """Write the four arrays to ``folder/data.npz`` for a child process."""
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise ValueError(f"`x_{split}` and `y_{split}` must have the same length. "
                             f"Received: {len(arrays[f'x_{split}'])} and {len(arrays[f'y_{split}'])}")
    path = Path(folder) / "data.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def run_benchmark(backend: str, *, epochs: int = 2, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
                  data=None, timeout: float = 600) -> dict:
    """:func:`benchmark` in a fresh Python process with ``KERAS_BACKEND`` set; returns its result.

    The child runs ``python -m dlnotes.pipelines.framework_bench``; its stderr (TensorFlow's and
    JAX's start-up messages) is captured and dropped unless it fails.

    Args:
        data: ``((x_train, y_train), (x_test, y_test))`` as from
            :func:`dlnotes.pipelines.image_classifier.load_data`, handed to the child in a temporary
            ``.npz`` (saves each child from loading MNIST again); ``None``: the child loads it.
        others: as :func:`benchmark`; ``timeout`` in seconds.

    Raises:
        ValueError: bad backend or sizes (checked here, before starting the process).
        RuntimeError: the child failed; the message has the end of its stderr.
    """
    backend = check_backend(backend)
    sizes = dict(epochs=epochs, n_train=n_train, n_test=n_test)
    for name, value in sizes.items():
        check_positive_int(name, value)
    args = [f"--{name.replace('_', '-')}={value}" for name, value in sizes.items()]
    command = [sys.executable, "-m", "dlnotes.pipelines.framework_bench", f"--backend={backend}", f"--seed={int(seed)}", *args]
    if data is None:
        return _run(command, backend, timeout, RESULT_KEYS)
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and all(len(split) == 2 for split in data)):
        raise ValueError(f"`data` must be ((x_train, y_train), (x_test, y_test)). Received: data of type {type(data).__name__}")
    with tempfile.TemporaryDirectory() as folder:
        path = _save_arrays(folder, *data[0], *data[1])
        return _run(command + [f"--data={path}"], backend, timeout, RESULT_KEYS)


_PREAMBLE = """\
import json, sys
from dlnotes.pipelines.framework_bench import _seed
import numpy as np
_seed({backend!r}, {seed})
with np.load(sys.argv[1]) as data:
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
"""
_EPILOGUE = """
print(json.dumps({"test_accuracy": float(model.evaluate(x_test, y_test, verbose=0)[1])}))
"""


def run_listing(listing: str, backend: str, x_train, y_train, x_test, y_test, *, seed: int = 0,
                timeout: float = 600) -> dict:
    """Run a Keras script that uses ``x_train, y_train, x_test, y_test`` and defines ``model``.

    The script runs unchanged in a fresh process with ``KERAS_BACKEND=backend``, after a
    short preamble that loads the four arrays (from a temporary ``.npz``) and seeds
    ``random``, NumPy and the backend (for TensorFlow that imports it, as the listing
    will); afterwards ``model`` is evaluated on the test set.

    Returns:
        ``{"test_accuracy": float}``.

    Raises:
        TypeError: ``listing`` is not a string.
        ValueError: ``backend`` is not a Keras backend; arrays of different lengths.
        RuntimeError: the script failed; the message has the end of its stderr.
    """
    if not isinstance(listing, str):
        raise TypeError(f"`listing` must be Python source (str). Received: listing of type {type(listing).__name__}")
    if backend not in KERAS_BACKENDS:
        raise ValueError(f"`backend` must be one of {KERAS_BACKENDS}. Received: backend={backend!r}")
    with tempfile.TemporaryDirectory() as folder:
        data, script = _save_arrays(folder, x_train, y_train, x_test, y_test), Path(folder) / "listing.py"
        script.write_text(_PREAMBLE.format(backend=backend, seed=int(seed)) + listing + _EPILOGUE, encoding="utf-8")
        return _run([sys.executable, str(script), str(data)], backend, timeout, ("test_accuracy",))


def main(argv=None) -> dict:
    """Command line: ``python -m dlnotes.pipelines.framework_bench --backend NAME [...]``; prints one JSON line.

    Raises:
        ValueError: an unknown backend name (echoed) or a bad size.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", required=True, help=f"one of {BACKENDS}")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="an .npz with x_train, y_train, x_test, y_test (default: offline MNIST)")
    args = parser.parse_args(argv)
    result = benchmark(check_backend(args.backend), epochs=args.epochs, n_train=args.n_train,
                       n_test=args.n_test, seed=args.seed, data=args.data)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
