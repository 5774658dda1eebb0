"""The one comparison helper every unit test uses to check dlnotes against PyTorch.

Usage, one line per check::

    assert_matches_torch(relu, torch.relu, [x], grad_ours=relu_backward)

Both sides run in float64 so tolerances can be tight: by default values must agree to
``rtol=1e-7``, gradients to ``grad_rtol=1e-6``. Keras comparisons run in float32 and
pass looser tolerances (about ``1e-5``) explicitly.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch


def _as_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close(name: str, ours, theirs, *, rtol: float, atol: float, check_dtype: bool = True) -> None:
    """Shape, then dtype, then values; the message says which and shows the worst entry."""
    ours, theirs = _as_numpy(ours), _as_numpy(theirs)
    assert ours.shape == theirs.shape, f"{name}: shape differs. Expected {theirs.shape}, received {ours.shape}"
    if check_dtype:
        assert ours.dtype == theirs.dtype, f"{name}: dtype differs. Expected {theirs.dtype}, received {ours.dtype}"
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=f"{name}: values differ")


def assert_matches_torch(
    ours: Callable[..., np.ndarray],
    torch_fn: Callable[..., torch.Tensor],
    inputs: Sequence[np.ndarray],
    *,
    grad_ours: Callable[..., Sequence[np.ndarray]] | None = None,
    upstream: np.ndarray | None = None,
    rtol: float = 1e-7,
    atol: float = 1e-12,
    grad_rtol: float = 1e-6,
    grad_atol: float = 1e-10,
    check_dtype: bool = True,
    seed: int = 0,
) -> None:
    """Check ``ours(*inputs)`` against ``torch_fn`` on the same inputs, then the gradients.

    Args:
        ours: NumPy function of the arrays in ``inputs``.
        torch_fn: the torch function it should match, called on float tensors with ``requires_grad``.
        inputs: the arrays (float64 for tight tolerances); integer arrays (targets, indices) are
            passed through as tensors without gradients.
        grad_ours: if given, called as ``grad_ours(*inputs, upstream)`` and must return the
            gradient of ``sum(upstream * output)`` with respect to every floating input, in order.
        upstream: the output gradient; a seeded random array of the output's shape when ``None``.
        rtol, atol: tolerances for the forward values.
        grad_rtol, grad_atol: tolerances for the gradients.
        check_dtype: also require equal dtypes.
    """
    tensors = [
        torch.tensor(x, requires_grad=np.issubdtype(np.asarray(x).dtype, np.floating)) for x in inputs
    ]
    expected = torch_fn(*tensors)
    received = ours(*inputs)
    assert_close("forward", received, expected, rtol=rtol, atol=atol, check_dtype=check_dtype)
    if grad_ours is None:
        return
    if upstream is None:
        upstream = np.random.default_rng(seed).standard_normal(np.shape(received)).astype(np.asarray(received).dtype)
    differentiable = [t for t in tensors if t.requires_grad]
    expected_grads = torch.autograd.grad(
        (expected * torch.as_tensor(upstream, dtype=expected.dtype)).sum(), differentiable, allow_unused=True
    )
    received_grads = list(grad_ours(*inputs, upstream))
    assert len(received_grads) == len(differentiable), (
        f"grad_ours returned {len(received_grads)} gradients; expected {len(differentiable)} (one per float input)"
    )
    for i, (got, want) in enumerate(zip(received_grads, expected_grads)):
        want = torch.zeros_like(differentiable[i]) if want is None else want
        assert_close(f"gradient of input {i}", got, want, rtol=grad_rtol, atol=grad_atol, check_dtype=check_dtype)


# A number in benchmarks/<chapter>_thresholds.md: 4 significant digits, small ones as 9.578e-05.
TABLE_NUMBER = r"-?[\d.]+(?:e[-+]?\d+)?"


def chapter_thresholds_hold(chapter: str, notebook: str, constants: dict[str, str]) -> None:
    """Each ``NAME = value`` constant of ``notebook``'s code equals ``scripts/thresholds/<chapter>.py``'s
    threshold for its metric, and lies beyond the worst run of every table in
    ``benchmarks/<chapter>_thresholds.md`` (below the minimum for "min", above the maximum for "max")."""
    import importlib.util
    import json
    import re

    from tests.notebooks import ROOT

    spec = importlib.util.spec_from_file_location(f"thresholds_{chapter}", ROOT / f"scripts/thresholds/{chapter}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    table = (ROOT / f"benchmarks/{chapter}_thresholds.md").read_text(encoding="utf-8")
    for constant, metric in constants.items():
        value = float(re.search(rf"^{constant} = (-?[\d.]+)", code, re.M).group(1))
        threshold, kind = module.THRESHOLDS[metric]
        assert value == threshold, f"{constant} = {value} in the notebook, {threshold} in the script"
        rows = re.findall(rf"^\| {chapter} \| {metric} \| \d+ \| ({TABLE_NUMBER}) \| {TABLE_NUMBER} \| ({TABLE_NUMBER}) \|",
                          table, re.M)
        assert rows, f"{metric}: no measured row in benchmarks/{chapter}_thresholds.md"
        for low, high in rows:
            worst = float(low if kind == "min" else high)
            assert (threshold < worst) if kind == "min" else (threshold > worst), (metric, threshold, worst)
