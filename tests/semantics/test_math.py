"""math_caffe: the C library's expf, logf, tanhf and powf (exp, log, tanh, pow for float64)
element by element, as Caffe's Dtype code calls them, against the same functions called one by
one through ctypes; special values; its argument checks."""
import numpy as np
import pytest

import fastconv

from reference.libm import IS_GLIBC, libm_function, libm_power
from reference.tolerance import assert_same_bits

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the reference's inf, NaN


def values(dtype):
    """Wide magnitudes of both signs, and 0, -0, inf, -inf, NaN, subnormals."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20000) * 10.0 ** rng.integers(-4, 3, 20000)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-42, -1e-42, 88.8, -104.0, 1.0, 2.0, 0.5]
    return np.concatenate([x, special]).astype(dtype).reshape(4, -1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("function", ["exp", "log", "tanh"])
def test_functions_are_the_c_librarys(function, dtype):
    x = values(dtype)
    original = x.copy()
    y = fastconv.math_caffe(x, function)
    assert y.dtype == dtype and y.shape == x.shape
    assert_same_bits(y, libm_function(function, x))
    assert_same_bits(x, original)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exponent", [2.0, -0.75, 0.3, -1.5, 3.0])
def test_power_is_the_c_librarys(exponent, dtype):
    x = np.abs(values(dtype))
    x[0, ::5] *= -1   # negative bases: NaN, or a sign for whole exponents
    assert_same_bits(fastconv.math_caffe(x, "pow", exponent=exponent), libm_power(x, exponent))


@pytest.mark.skipif(not IS_GLIBC, reason="the difference shown is glibc's")
def test_differs_from_numpy_where_the_c_library_rounds_otherwise():
    """What the function is for: numpy's float32 exp is a few ulps off expf (and the float64
    one rounded to float32 lands on the other side of a midpoint now and then)."""
    x = np.random.default_rng(4).uniform(-10, 10, 200000).astype(np.float32)
    numpy_exp = np.exp(x.astype(np.float64)).astype(np.float32)
    caffe_exp = fastconv.math_caffe(x, "exp")
    assert_same_bits(caffe_exp, libm_function("exp", x))
    assert np.count_nonzero(numpy_exp != caffe_exp) + np.count_nonzero(
        np.exp(x) != caffe_exp) > 0


def test_shapes_scalars_and_integers():
    scalar = fastconv.math_caffe(np.float32(1.0), "exp")
    assert scalar.dtype == np.float32 and scalar.shape == ()
    assert fastconv.math_caffe(np.arange(3), "exp").dtype == np.float64
    power = fastconv.math_caffe(4.0, "pow", exponent=0.5)
    assert power.shape == () and power == 2.0
    assert fastconv.math_caffe(np.zeros((2, 0, 3), np.float32), "log").shape == (2, 0, 3)
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    assert_same_bits(fastconv.math_caffe(strided, "tanh"), libm_function("tanh", strided))


@pytest.mark.parametrize("kwargs, message", [
    (dict(function="sqrt"), "function='sqrt' must be one of exp, log, tanh, pow"),
    (dict(function=np.exp), "must be one of"),
    (dict(function="pow"), "exponent=None goes with function='pow'"),
    (dict(function="exp", exponent=2.0), "exponent=2.0 goes with function='pow'"),
    (dict(function="pow", exponent="2"), "power_param.power"),
])
def test_errors_name_the_argument(kwargs, message):
    function = kwargs.pop("function")
    with pytest.raises((ValueError, TypeError), match=message):
        fastconv.math_caffe(np.ones(3, np.float32), function, **kwargs)
