"""Caffe's ReLU (fastconv.relu_caffe): bit for bit against Caffe's per-element definition,
std::max(x, 0) + negative_slope * std::min(x, 0), written here with numpy in the dtype, on the
values where shortcuts go wrong (signed zeros, NaN, infinities, denormals) and on arrays large
enough to be split between threads; in place, into ``out``, and the argument errors."""
import numpy as np
import pytest

import fastconv

from reference.tolerance import assert_same_bits

DTYPES = [np.float32, np.float64]
SLOPES = [0.0, 0.125, -0.5, 1e-3]


def caffe_relu(x, slope):
    """Caffe's expression, each operation rounded in x's dtype: std::max(v, 0) is (v < 0 ? 0 :
    v), std::min(v, 0) is (0 < v ? 0 : v); the product rounded before the sum."""
    dtype = x.dtype.type
    zero = dtype(0)
    with np.errstate(invalid="ignore"):
        positive = np.where(x < zero, zero, x)
        negative = np.where(zero < x, zero, x)
        return positive + dtype(slope) * negative


def special_values(dtype):
    info = np.finfo(dtype)
    return np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, info.smallest_subnormal,
                     -info.smallest_subnormal, 1.5, -2.5, info.max, -info.max, info.tiny,
                     -info.tiny], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", SLOPES)
def test_special_values_bit_for_bit(dtype, slope):
    # Tiled past a vector's length, with an odd tail, in an NCHW-shaped array.
    x = np.tile(special_values(dtype), 9)[:125].reshape(1, 5, 5, 5)
    assert_same_bits(fastconv.relu_caffe(x, negative_slope=slope), caffe_relu(x, slope))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_arrays_split_between_threads(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 60, 60)).astype(dtype)      # 460,800 elements
    x.reshape(-1)[::97] = -0.0
    expected = caffe_relu(x, 0.25)
    assert_same_bits(fastconv.relu_caffe(x, negative_slope=0.25), expected)
    previous = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        assert_same_bits(fastconv.relu_caffe(x, negative_slope=0.25), expected)
    finally:
        fastconv.set_num_threads(previous)


def test_in_place_into_out_and_inputs_left_alone():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    expected = caffe_relu(x, 0.0)
    original = x.copy()
    fresh = fastconv.relu_caffe(x)
    assert_same_bits(fresh, expected)
    np.testing.assert_array_equal(x, original)
    out = np.empty_like(x)
    assert fastconv.relu_caffe(x, out=out) is out
    assert_same_bits(out, expected)
    assert fastconv.relu_caffe(x, out=x) is x                  # Caffe's in-place ReLU
    assert_same_bits(x, expected)
    # Fortran-ordered, read-only and integer inputs are read as they are.
    frozen = np.asfortranarray(original)
    frozen.flags.writeable = False
    assert_same_bits(fastconv.relu_caffe(frozen), expected)
    assert fastconv.relu_caffe(np.array([-3, 4], np.int8)).dtype == np.float32


@pytest.mark.parametrize("out", [
    np.empty((3, 4), np.float32),                 # another shape
    np.empty((4, 3), np.float64),                 # another dtype
    np.empty((4, 6), np.float32)[:, ::2],         # strided
    [[0.0] * 3] * 4,                              # not an array
])
def test_out_must_fit(out):
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array"):
        fastconv.relu_caffe(np.zeros((4, 3), np.float32), out=out)


def test_out_overlapping_x_and_bad_slope():
    x = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        fastconv.relu_caffe(x[:5], out=x[1:6])
    with pytest.raises(TypeError, match="relu_param.negative_slope"):
        fastconv.relu_caffe(x, negative_slope="0.1")
