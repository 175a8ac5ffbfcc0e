"""Caffe's BatchNorm with stored statistics (fastconv.batch_norm_caffe) and Scale
(fastconv.scale_caffe): bit for bit against Caffe's arithmetic written here with numpy in the
dtype (batch_norm_layer.cpp: the stored sums times 1 / scale_factor, or 0 for a zero factor,
sqrt(variance + eps), then (x - mean) / deviation, each operation rounded; scale_layer.cpp:
x * scale, then + bias), on special values, on every axis layout Scale accepts, on arrays
large enough to be split between threads, in place and into ``out``; the argument errors."""
import numpy as np
import pytest

import fastconv

from reference.tolerance import assert_same_bits

DTYPES = [np.float32, np.float64]


def caffe_batch_norm(x, mean, variance, scale_factor, eps):
    dtype = x.dtype.type
    stored = dtype(scale_factor)
    factor = dtype(0) if stored == 0 else dtype(1) / stored
    shape = (1, -1) + (1,) * (x.ndim - 2) if x.ndim > 1 else (1,)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = np.sqrt(variance * factor + dtype(eps))
        return (x - (mean * factor).reshape(shape)) / deviation.reshape(shape)


def caffe_scale(x, scale, bias, axis):
    dtype = x.dtype.type
    axis = 0 if scale.ndim == 0 else axis % x.ndim
    shape = scale.shape + (1,) * (x.ndim - axis - scale.ndim)
    with np.errstate(invalid="ignore"):
        product = x * scale.reshape(shape)
        return product if bias is None else product + bias.reshape(shape).astype(dtype)


def with_special_values(x):
    flat = x.reshape(-1)
    flat[::7] = -0.0
    flat[::11] = np.inf
    flat[::13] = np.nan
    flat[::17] = -np.inf
    flat[::19] = np.finfo(x.dtype).smallest_subnormal
    return x


def statistics(rng, channels, dtype):
    mean = rng.standard_normal(channels).astype(dtype) * dtype(4)
    variance = rng.uniform(0.0, 8.0, channels).astype(dtype)
    variance[::5] = 0   # deviation sqrt(eps)
    return mean, variance


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (4, 6), (9,), (1, 3, 2, 4, 5), (2, 70, 40, 40)])
@pytest.mark.parametrize("scale_factor", [1.0, 999.0, 0.0])
def test_batch_norm_bit_for_bit(dtype, shape, scale_factor):
    rng = np.random.default_rng(len(shape) * 10 + int(scale_factor) % 7)
    x = with_special_values(rng.standard_normal(shape).astype(dtype))
    channels = 1 if len(shape) == 1 else shape[1]
    mean, variance = statistics(rng, channels, dtype)
    mean[1 % channels] = np.inf
    original = x.copy()
    factor_blob = np.array([scale_factor], dtype)
    y = fastconv.batch_norm_caffe(x, mean, variance, factor_blob, eps=1e-5)
    assert_same_bits(y, caffe_batch_norm(x, mean, variance, scale_factor, 1e-5))
    assert_same_bits(x, original)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_against_float64(dtype):
    """The formula itself, in float64 from the same operands: within a few roundings."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 5, 5)).astype(dtype)
    mean, variance = statistics(rng, 8, dtype)
    y = fastconv.batch_norm_caffe(x, mean * 2, variance * 2, 2.0, eps=1e-3)
    expected = ((x.astype(np.float64) - mean[:, None, None].astype(np.float64))
                / np.sqrt(variance[:, None, None].astype(np.float64) + np.float64(dtype(1e-3))))
    np.testing.assert_allclose(y, expected, rtol=8 * np.finfo(dtype).eps, atol=0)


# (x shape, scale shape, axis): Caffe's channel scale, a scale over two axes, the last axis, a
# negative axis, axis 0, a scalar (axis ignored), a scale over every axis.
SCALE_CASES = [
    ((2, 5, 7, 3), (5,), 1),
    ((2, 5, 7, 3), (5, 7), 1),
    ((2, 5, 7, 3), (3,), 3),
    ((2, 5, 7, 3), (7, 3), -2),
    ((4, 6), (4,), 0),
    ((4, 6, 2), (), 2),
    ((3, 4), (3, 4), 0),
    ((2, 80, 30, 30), (80,), 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, scale_shape, axis", SCALE_CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_scale_bit_for_bit(dtype, x_shape, scale_shape, axis, with_bias):
    rng = np.random.default_rng(len(x_shape) + len(scale_shape) + axis)
    x = with_special_values(rng.standard_normal(x_shape).astype(dtype))
    scale = np.asarray(rng.standard_normal(scale_shape) * 3, dtype)
    bias = np.asarray(rng.standard_normal(scale_shape), dtype) if with_bias else None
    if scale.size > 2:
        scale.reshape(-1)[:3] = [0.0, -0.0, np.inf]
    original = x.copy()
    y = fastconv.scale_caffe(x, scale, bias, axis=axis)
    assert_same_bits(y, caffe_scale(x, scale, bias, axis))
    assert_same_bits(x, original)


def test_scale_rounds_the_product_before_the_sum():
    """x * s + b with one rounding (a fused multiply-add) and two roundings differ here:
    (1 + 2^-23)^2 = 1 + 2^-22 + 2^-46, whose product rounds to 1 + 2^-22."""
    v = np.float32(1 + 2.0**-23)
    y = fastconv.scale_caffe(np.array([[v]], np.float32), np.array([v]),
                             np.array([-(1 + 2.0**-22)], np.float32))
    assert y[0, 0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_into_out(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 9, 9)).astype(dtype)
    mean, variance = statistics(rng, 6, dtype)
    scale, bias = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    expected_norm = caffe_batch_norm(x, mean, variance, 1.0, 1e-5)
    expected = caffe_scale(expected_norm, scale, bias, 1)
    out = np.empty_like(x)
    assert fastconv.batch_norm_caffe(x, mean, variance, out=out) is out
    assert_same_bits(out, expected_norm)
    in_place = x.copy()
    assert fastconv.batch_norm_caffe(in_place, mean, variance, out=in_place) is in_place
    assert fastconv.scale_caffe(in_place, scale, bias, out=in_place) is in_place
    assert_same_bits(in_place, expected)


def test_dtype_follows_the_operands():
    x = np.ones((1, 2, 2, 2), np.float32)
    assert fastconv.batch_norm_caffe(x, np.zeros(2), np.ones(2)).dtype == np.float64
    assert fastconv.scale_caffe(x, np.ones(2, np.float32)).dtype == np.float32
    assert fastconv.scale_caffe(x.astype(np.int16), np.ones(2, np.float32)).dtype == np.float32


@pytest.mark.parametrize("call, error, message", [
    (lambda x: fastconv.batch_norm_caffe(x, np.zeros(3), np.ones(2)), ValueError,
     r"mean has shape \(3,\).*BatchNorm blobs\[0\]"),
    (lambda x: fastconv.batch_norm_caffe(x, np.zeros(2), np.ones((2, 1))), ValueError,
     r"variance has shape \(2, 1\).*BatchNorm blobs\[1\]"),
    (lambda x: fastconv.batch_norm_caffe(x, np.zeros(2), np.ones(2), np.ones(2)), ValueError,
     r"scale_factor.*BatchNorm blobs\[2\]"),
    (lambda x: fastconv.batch_norm_caffe(x, np.zeros(2), np.ones(2), eps="1"), TypeError,
     r"eps='1'.*batch_norm_param.eps"),
    (lambda x: fastconv.batch_norm_caffe(np.float32(1), np.zeros(1), np.ones(1)), ValueError,
     r"x must have at least one axis"),
    (lambda x: fastconv.scale_caffe(x, np.ones(3)), ValueError,
     r"scale has shape \(3,\).*covers axes 1\.\."),
    (lambda x: fastconv.scale_caffe(x, np.ones(2), np.ones(3)), ValueError,
     r"bias has shape \(3,\).*scale_param.bias_term"),
    (lambda x: fastconv.scale_caffe(x, np.ones(2), axis=4), ValueError,
     r"axis=4 is out of range.*scale_param.axis"),
    (lambda x: fastconv.scale_caffe(x, np.ones(2), axis=1.0), TypeError,
     r"axis=1.0 must be an integer.*scale_param.axis"),
    (lambda x: fastconv.scale_caffe(x, np.ones(2, np.float32), out=np.empty((1, 2, 3, 3))),
     ValueError,
     r"out must be a writeable C-contiguous float32 array"),
    (lambda x: fastconv.batch_norm_caffe(x, np.zeros(2), np.ones(2), out=x[:, :, ::-1]),
     ValueError, r"out must be"),
    (lambda x: fastconv.scale_caffe(x, np.ones(2), out=x.reshape(-1)[::-1].reshape(x.shape)),
     ValueError, r"out must be"),
    (lambda x: fastconv.scale_caffe(x, np.ones(2, complex)), TypeError, r"scale has dtype"),
])
def test_errors_name_the_caffe_parameter(call, error, message):
    x = np.ones((1, 2, 3, 4), np.float32)
    with pytest.raises(error, match=message):
        call(x)
