"""Caffe's Eltwise (fastconv.eltwise_caffe): bit for bit against Caffe's CPU loops written here
in numpy in the dtype (eltwise_layer.cpp: SUM sets the top to 0 and adds coeff * bottom for
each bottom in order, the product rounded as the reference BLAS's axpy does; PROD multiplies in
bottom order; MAX keeps bottom 0 only where strictly greater than bottom 1, then each later
bottom where strictly greater), on signed zeros, infinities, NaN and subnormals, on arrays large
enough to be split between threads and blocked, in place and into ``out``; the argument
errors."""
import numpy as np
import pytest

import fastconv

from reference.tolerance import assert_same_bits

DTYPES = [np.float32, np.float64]


def caffe_sum(bottoms, coeff):
    dtype = bottoms[0].dtype.type
    top = np.zeros_like(bottoms[0])
    with np.errstate(invalid="ignore", over="ignore"):
        for factor, bottom in zip(coeff, bottoms):
            top = top + dtype(factor) * bottom
    return top


def caffe_max(bottoms):
    top = np.where(bottoms[0] > bottoms[1], bottoms[0], bottoms[1])
    for bottom in bottoms[2:]:
        top = np.where(bottom > top, bottom, top)
    return top


def bottoms_of(dtype, shape, count, seed):
    rng = np.random.default_rng(seed)
    bottoms = [rng.standard_normal(shape).astype(dtype) for _ in range(count)]
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(dtype).smallest_subnormal,
                        np.finfo(dtype).max, -0.0], dtype)
    for index, bottom in enumerate(bottoms):
        flat = bottom.reshape(-1)
        positions = np.arange(index, flat.size, 97)[:8]
        flat[positions] = np.roll(special, index)[:len(positions)]
        flat[1::11] = -0.0   # where every bottom is -0: the sum from +0 is +0
    return bottoms


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, count", [((2, 3, 5, 7), 2), ((3, 70, 30, 30), 3), ((1029,), 4)])
@pytest.mark.parametrize("coeff", [None, "mixed"])
def test_sum_bit_for_bit(dtype, shape, count, coeff):
    bottoms = bottoms_of(dtype, shape, count, seed=count)
    factors = [1.0] * count if coeff is None else [0.5, -1.0, 3.0, 1e-3][:count]
    originals = [bottom.copy() for bottom in bottoms]
    y = fastconv.eltwise_caffe(*bottoms, coeff=None if coeff is None else factors)
    assert_same_bits(y, caffe_sum(bottoms, factors))
    for bottom, original in zip(bottoms, originals):
        assert_same_bits(bottom, original)


def test_sum_rounds_each_product_before_adding():
    """0.1 * 3 rounds in float32 before the sum (a fused multiply-add would not)."""
    a = np.array([np.float32(0.1)], np.float32)
    b = np.array([-np.float32(0.3)], np.float32)
    y = fastconv.eltwise_caffe(a, b, coeff=[3.0, 1.0])
    assert y[0] == np.float32(np.float32(3) * np.float32(0.1)) + np.float32(-0.3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prod_and_max_bit_for_bit(dtype):
    bottoms = bottoms_of(dtype, (2, 4, 9, 9), 3, seed=7)
    with np.errstate(invalid="ignore", over="ignore"):
        product = bottoms[0] * bottoms[1] * bottoms[2]
    assert_same_bits(fastconv.eltwise_caffe(*bottoms, operation="PROD"), product)
    assert_same_bits(fastconv.eltwise_caffe(*bottoms, operation="MAX"), caffe_max(bottoms))


@pytest.mark.parametrize("operation", ["SUM", "PROD", "MAX"])
def test_in_place_and_into_out(operation):
    bottoms = bottoms_of(np.float32, (2, 3, 40, 40), 3, seed=9)
    expected = fastconv.eltwise_caffe(*bottoms, operation=operation)
    for index in range(3):
        copies = [bottom.copy() for bottom in bottoms]
        top = fastconv.eltwise_caffe(*copies, operation=operation, out=copies[index])
        assert top is copies[index]
        assert_same_bits(top, expected)
    out = np.empty_like(bottoms[0])
    assert fastconv.eltwise_caffe(*bottoms, operation=operation, out=out) is out
    assert_same_bits(out, expected)


def test_dtype_follows_the_bottoms():
    a, b = np.ones((2, 3), np.float32), np.ones((2, 3), np.float64)
    assert fastconv.eltwise_caffe(a, a).dtype == np.float32
    assert fastconv.eltwise_caffe(a, b).dtype == np.float64
    assert fastconv.eltwise_caffe(a.astype(np.uint8), a).dtype == np.float32


@pytest.mark.parametrize("call, error, message", [
    (lambda a: fastconv.eltwise_caffe(a), ValueError, r"at least two bottoms"),
    (lambda a: fastconv.eltwise_caffe(a, a[:1]), ValueError,
     r"bottom 1 has shape \(1, 3\).*equal shapes"),
    (lambda a: fastconv.eltwise_caffe(a, a, operation="MIN"), ValueError,
     r"operation='MIN'.*eltwise_param.operation"),
    (lambda a: fastconv.eltwise_caffe(a, a, operation="MAX", coeff=[1, 1]), ValueError,
     r"coeff is only allowed with operation SUM.*eltwise_param.coeff"),
    (lambda a: fastconv.eltwise_caffe(a, a, coeff=[1.0]), ValueError,
     r"1 coeff values for 2 bottoms.*eltwise_param.coeff"),
    (lambda a: fastconv.eltwise_caffe(a, a, coeff=[1.0, "x"]), TypeError,
     r"coeff='x' must be a number.*eltwise_param.coeff"),
    (lambda a: fastconv.eltwise_caffe(a, a, out=np.empty((2, 3), np.float64)), ValueError,
     r"out must be a writeable C-contiguous float32 array"),
    (lambda a: fastconv.eltwise_caffe(a, a.copy(), out=a.copy()[::-1]), ValueError,
     r"out must be"),
    (lambda a: fastconv.eltwise_caffe(a, np.ones((2, 3), complex)), TypeError,
     r"bottom 1 has dtype"),
])
def test_errors_name_the_caffe_parameter(call, error, message):
    a = np.ones((2, 3), np.float32)
    with pytest.raises(error, match=message):
        call(a)


def test_out_overlapping_a_bottom():
    a, b = np.ones((4, 6), np.float32), np.ones((4, 6), np.float32)
    view_of_a = a.reshape(4, 6)   # the same memory, not the array a itself
    with pytest.raises(ValueError, match="out overlaps a bottom"):
        fastconv.eltwise_caffe(b, a, out=view_of_a)
