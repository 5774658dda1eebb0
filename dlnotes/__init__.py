r"""dlnotes: the reference implementations behind the dlnotes deep-learning course.

The package has two layers, and the path of a module says which one it belongs to:

``dlnotes.scratch``
    From-scratch references in NumPy: activations, losses, optimizers, an autograd engine,
    layers, convolution, pooling, recurrent cells. Each is checked against PyTorch (float64)
    or Keras (float32) in ``tests/scratch/``. Nothing here imports torch or keras.
``dlnotes.pipelines``
    The chapter pipelines built on PyTorch and Keras (the image classifier, the text
    generator, the framework comparisons, data-parallel training, exporting and quantising). Each offers the same shape of API:
    ``build_*`` returns a model, ``train_*`` fits it and returns a ``History``-like dict of
    per-epoch metrics, ``evaluate_*`` returns a dict of metrics. Tests in ``tests/pipelines/``.
``dlnotes.serve``
    A model service: ONNX models behind TensorFlow Serving's REST API (FastAPI, uvicorn,
    ONNX Runtime), started with ``python -m dlnotes.serve``. Tests in ``tests/test_serve.py``.
``dlnotes.data``, ``dlnotes.runtime``
    The one dataset loader (SHA-256 checked, cached, mirror, canonical URL) and the
    device/seed/environment helpers every chapter uses.
``dlnotes._checks``
    The argument checks every public function uses, so their errors read the same.

Gradient convention (``dlnotes.scratch``), one for the whole package:

* ``f_grad(x, ...)`` is the derivative of ``f`` where no upstream gradient is needed:
  the elementwise derivative :math:`f'(x)` of an elementwise activation, and
  :math:`\partial L / \partial \hat y` of a loss (same shape as its first argument).
* ``f_backward(upstream, ...)`` is a vector-Jacobian product: given
  :math:`\partial L / \partial \mathrm{out}` (shape of ``f``'s output) it returns
  :math:`\partial L / \partial \mathrm{in}` for each input (same shapes as the inputs), as an
  array, a tuple in argument order, or a dict keyed by parameter name.
* ``Tensor.backward()`` (``dlnotes.scratch.autograd``) fills ``.grad`` of every leaf, like
  ``torch.Tensor.backward``.

Modules are imported on demand (``from dlnotes.scratch import conv``); only the runtime
helpers are exported at the top level, so ``import dlnotes`` does not import torch.
"""

from dlnotes.runtime import env_report, get_device, seed_everything

__all__ = ["env_report", "get_device", "seed_everything", "__version__"]
__version__ = "0.1.0"
