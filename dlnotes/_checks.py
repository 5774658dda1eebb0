"""Argument checks shared by every public dlnotes function (one place, like ``sklearn.utils.validation``).

Every check names the argument and echoes the value it received, in the Keras style::

    `units` must be a positive integer. Received: units=0

and raises ``TypeError`` for a value of the wrong kind, ``ValueError`` for a value of the
right kind out of range. Module-specific checks (shapes of a cell's weights, a cache's
keys) live beside the code they protect and are built from these.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_positive_int", "check_positive_float", "check_real", "check_ndarray", "check_float_array", "check_choice"]


def check_positive_int(name: str, value) -> int:
    """``value`` as an ``int`` >= 1 (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_positive_float(name: str, value) -> float:
    """``value`` as a ``float`` > 0 (``bool`` and NaN are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def check_real(name: str, value, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval given by ``low``/``high`` (closed unless ``*_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"`{name}` must be a finite real number. Received: {name}={value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "-inf" if low is None else f"{low}"
        right = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open or low is None else '['}{left}, {right}{')' if high_open or high is None else ']'}"
        raise ValueError(f"`{name}` must be in {interval}. Received: {name}={value!r}")
    return float(value)


def check_ndarray(name: str, value, ndim: int | None = None) -> np.ndarray:
    """``value`` itself, which must already be a NumPy array (of ``ndim`` dimensions when given)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"`{name}` must be a NumPy array. Received: {name} of type {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D. Received: {name}.shape={value.shape}")
    return value


def check_float_array(name: str, value) -> np.ndarray:
    """``value`` as a floating-point array: integers become float64, floats keep their dtype."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise TypeError(f"`{name}` must be a real-valued array. Received: {name}={value!r}") from error
    if np.issubdtype(array.dtype, np.floating):
        return array
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float64)
    raise TypeError(f"`{name}` must be a real-valued array (float or int). Received: {name} with dtype {array.dtype}")


def check_choice(name: str, value, choices) -> object:
    """``value`` itself, which must be one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")
    return value
