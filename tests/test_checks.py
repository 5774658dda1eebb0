"""dlnotes._checks: the one argument-checking module; every message names the argument and echoes it."""

import re

import numpy as np
import pytest

from dlnotes import _checks as C


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_int_accepts_and_returns_int(value):
    assert C.check_positive_int("units", value) == int(value)
    assert type(C.check_positive_int("units", value)) is int


@pytest.mark.parametrize("value", [0, -2, 1.0, True, "3", None])
def test_positive_int_refuses(value):
    with pytest.raises(ValueError, match=re.escape(f"`units` must be a positive integer. Received: units={value!r}")):
        C.check_positive_int("units", value)


@pytest.mark.parametrize("value", [0, -1e-3, float("nan"), True, "1"])
def test_positive_float_refuses(value):
    with pytest.raises(ValueError, match=re.escape(f"Received: lr={value!r}")):
        C.check_positive_float("lr", value)


def test_real_bounds_open_and_closed():
    assert C.check_real("beta", 0.0, 0.0, 1.0, high_open=True) == 0.0
    with pytest.raises(ValueError, match=re.escape("`beta` must be in [0.0, 1.0). Received: beta=1.0")):
        C.check_real("beta", 1.0, 0.0, 1.0, high_open=True)
    with pytest.raises(ValueError, match=re.escape("`eps` must be in (0.0, inf). Received: eps=0.0")):
        C.check_real("eps", 0.0, 0.0, low_open=True)
    with pytest.raises(ValueError, match=re.escape("`eps` must be in [0.0, inf). Received: eps=-1")):
        C.check_real("eps", -1, 0.0)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "0.1", None, False])
def test_real_refuses_non_finite_and_non_numbers(value):
    with pytest.raises(TypeError, match=re.escape(f"`momentum` must be a finite real number. Received: momentum={value!r}")):
        C.check_real("momentum", value)


def test_ndarray_checks_type_and_ndim():
    x = np.zeros((2, 3))
    assert C.check_ndarray("x", x, 2) is x
    with pytest.raises(TypeError, match="`x` must be a NumPy array. Received: x of type list"):
        C.check_ndarray("x", [[0.0]], 2)
    with pytest.raises(ValueError, match=re.escape("`x` must be 3-D. Received: x.shape=(2, 3)")):
        C.check_ndarray("x", x, 3)


def test_float_array_converts_ints_keeps_floats_refuses_others():
    assert C.check_float_array("x", [1, 2]).dtype == np.float64
    assert C.check_float_array("x", np.ones(2, np.float32)).dtype == np.float32
    with pytest.raises(TypeError, match="`x` must be a real-valued array"):
        C.check_float_array("x", np.array(["a"]))
    with pytest.raises(TypeError, match="`x` must be a real-valued array"):
        C.check_float_array("x", [[1.0], [1.0, 2.0]])


def test_choice():
    assert C.check_choice("reduction", "sum", ("mean", "sum")) == "sum"
    with pytest.raises(ValueError, match=re.escape("`reduction` must be one of ('mean', 'sum'). Received: reduction='max'")):
        C.check_choice("reduction", "max", ("mean", "sum"))
