"""pool2d_caffe / pool2d_caffe_backward / pool2d_keras against plain-Python references written
from Caffe's pooling_layer.cpp (tests/reference/pool.py) and TensorFlow's pooling definitions.

Pooling sums at most kh*kw values, so float64 results agree to 1e-13 relative; MAX is exact.
"""
import math

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from reference.pool import (caffe_ave_pool2d_backward_bits, caffe_max_pool2d_backward_bits,
                            caffe_pool, caffe_pool2d_bits)
from reference.tolerance import assert_same_bits


# (H, W, kernel, stride, pad): unequal axes, ceil-extra windows, the clip rule, window > input.
GEOMETRIES = [
    ((7, 10), (3, 2), (2, 3), (1, 0)),  # last column window [9, 11) clipped to [9, 10)
    ((6, 6), (3, 3), (2, 2), (1, 1)),   # clip rule: ceil gives 4, the last window starts at 6
    ((5, 8), (2, 4), (1, 3), (1, 2)),
    ((4, 4), (5, 5), (2, 3), (0, 0)),   # window larger than the input: one output (as Caffe)
    ((6, 3), (3, 1), (2, 4), (1, 0)),   # pad_h clips the width: 1 column, not 2 (real Caffe)
    ((13, 13), (3, 3), (2, 2), (0, 0)),
]


@pytest.mark.parametrize("method", ["max", "ave"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_forward_and_backward_match_reference(geometry, method):
    size, kernel, stride, pad = geometry
    rng = np.random.default_rng(hash(geometry) % 2**32)
    # Small integers make ties common: MAX must keep the first maximum in row-major order.
    x = rng.integers(-3, 4, size=(2, 3, *size)).astype(np.float64)
    y = fastconv.pool2d_caffe(x, kernel, stride=stride, pad=pad, method=method)
    expected = caffe_pool(x, kernel, stride, pad, method)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=0)
    dy = rng.standard_normal(y.shape)
    dx = fastconv.pool2d_caffe_backward(x, dy, kernel, stride=stride, pad=pad, method=method)
    np.testing.assert_allclose(dx, caffe_pool(x, kernel, stride, pad, method, dy),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_and_global_pooling(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    y = fastconv.pool2d_caffe(x, None, global_pooling=True, method="max")
    assert y.dtype == dtype and y.shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(y[..., 0, 0], x.max(axis=(2, 3)))
    ave = fastconv.pool2d_caffe(x, None, global_pooling=True, method="ave")
    # 35 float32 additions: 35 * 2**-24 relative worst case.
    np.testing.assert_allclose(ave[..., 0, 0], x.astype(np.float64).mean(axis=(2, 3)),
                               rtol=35 * 2.0 ** -23 if dtype == np.float32 else 1e-14, atol=1e-6)
    dx = fastconv.pool2d_caffe_backward(x, np.ones((2, 3, 1, 1)), None, global_pooling=True,
                                        method="ave")
    np.testing.assert_allclose(dx, np.full(x.shape, 1 / 35), rtol=1e-6)


def test_max_ties_keep_first_and_padding_is_ignored():
    x = -np.ones((1, 1, 2, 2))  # all equal, all negative: padding zeros must not win
    y = fastconv.pool2d_caffe(x, 2, stride=1, pad=1, method="max")
    np.testing.assert_array_equal(y, -np.ones((1, 1, 3, 3)))
    dx = fastconv.pool2d_caffe_backward(x, np.ones((1, 1, 3, 3)), 2, stride=1, pad=1)
    # Window (0,0) covers only x[0,0]; window (1,1) covers all four and routes to x[0,0] (first).
    np.testing.assert_array_equal(dx[0, 0], [[4, 2], [2, 1]])


def test_average_divisor_counts_padding_inside_in_plus_pad():
    x = np.ones((1, 1, 3, 3))
    y = fastconv.pool2d_caffe(x, 3, stride=2, pad=1, method="ave")
    # Every window is 3x3 inside the padded 5x5 map: 4 cells of 9 (corner), 6 of 9 (edge) ...
    np.testing.assert_allclose(y[0, 0], [[4 / 9, 4 / 9], [4 / 9, 4 / 9]])
    # ... whereas Keras "same" divides by the input cells only.
    keras_y = fastconv.pool2d_keras(x.transpose(0, 2, 3, 1), 3, strides=2, padding="same",
                                    method="ave")
    np.testing.assert_allclose(keras_y, np.ones((1, 2, 2, 1)))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_average_backward_is_adjoint(data):
    draw = data.draw
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = tuple(draw(st.integers(0, k - 1)) for k in kernel)
    size = tuple(draw(st.integers(1, 8)) for _ in range(2))
    if any(s > k and p == 0 for s, k, p in zip(stride, kernel, pad)):
        stride = kernel  # keep clear of the refused empty-window geometry
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((1, 2, *size))
    try:
        y = fastconv.pool2d_caffe(x, kernel, stride=stride, pad=pad, method="ave")
    except ValueError as error:
        assert "no output" in str(error)
        return
    np.testing.assert_allclose(y, caffe_pool(x, kernel, stride, pad, "ave"),
                               rtol=1e-12, atol=1e-15)
    dy = rng.standard_normal(y.shape)
    dx = fastconv.pool2d_caffe_backward(x, dy, kernel, stride=stride, pad=pad, method="ave")
    assert math.isclose(np.vdot(y, dy), np.vdot(x, dx), rel_tol=1e-12, abs_tol=1e-12)


def test_caffe_and_keras_sizes_differ():
    """AlexNet/VGG-style 3x3 stride-2 pooling: Caffe rounds up, Keras "valid" rounds down.

    On 112x112 Caffe gives 56x56 and Keras "valid" 55x55, so a port that copies the layer
    parameters loses a row and a column. A faithful port depends on the layer: here Keras's
    "same" (pad 0 above/left, 1 below/right, padding ignored by MAX and excluded from AVE's
    divisor) reproduces Caffe exactly; on 55x55 both give 27 and "valid" is the faithful one.
    When in doubt, call fastconv.pool2d_caffe, which is Caffe by construction.
    """
    rng = np.random.default_rng(3)
    for method in ("max", "ave"):
        x = rng.standard_normal((1, 2, 112, 112))
        caffe = fastconv.pool2d_caffe(x, 3, stride=2, method=method)
        nhwc = x.transpose(0, 2, 3, 1)
        valid = fastconv.pool2d_keras(nhwc, 3, strides=2, padding="valid", method=method)
        same = fastconv.pool2d_keras(nhwc, 3, strides=2, padding="same", method=method)
        assert caffe.shape[2:] == (56, 56) and valid.shape[1:3] == (55, 55)
        np.testing.assert_allclose(same.transpose(0, 3, 1, 2), caffe, rtol=1e-14)
        np.testing.assert_array_equal(valid.transpose(0, 3, 1, 2), caffe[:, :, :55, :55])
        small = x[:, :, :55, :55]
        np.testing.assert_array_equal(
            fastconv.pool2d_caffe(small, 3, stride=2, method=method),
            fastconv.pool2d_keras(small.transpose(0, 2, 3, 1), 3, strides=2,
                                  method=method).transpose(0, 3, 1, 2))


def test_stride_defaults_to_one():
    """Caffe's Pooling stride defaults to 1 (Keras's strides default to the pool size)."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    assert fastconv.pool2d_caffe(x, 2).shape == (1, 1, 3, 3)
    assert fastconv.pool2d_keras(x.reshape(1, 4, 4, 1), 2).shape == (1, 2, 2, 1)


# (planes, H, W, kernel, stride, pad): rows with inside windows along the row (16 or more
# columns) and edge windows, strides 1, 2 and 3, planes not a multiple of the blocks they are
# taken in, rows too short for the row path, global windows.
BIT_GEOMETRIES = [
    ((2, 9), 12, 40, (3, 3), (1, 1), (1, 1)),
    ((3, 7), 13, 37, (3, 3), (2, 2), (1, 1)),
    ((1, 19), 9, 50, (2, 4), (2, 3), (0, 2)),
    ((2, 5), 16, 16, (2, 2), (2, 2), (0, 0)),
    ((1, 13), 14, 14, (5, 5), (3, 3), (0, 0)),
    ((4, 9), 7, 7, (7, 7), (1, 1), (0, 0)),
    ((1, 3), 11, 35, (3, 5), (1, 2), (2, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["max", "ave"])
@pytest.mark.parametrize("geometry", BIT_GEOMETRIES, ids=[str(g) for g in BIT_GEOMETRIES])
def test_forward_bits_follow_caffe_order_on_any_thread_count(geometry, method, dtype):
    planes, h, w, kernel, stride, pad = geometry
    rng = np.random.default_rng(h * w)
    # Wide magnitudes make AVE's rounding depend on the order of its additions; small integers
    # and signed zeros make MAX's ties (the first one in row-major order wins); NaN never wins
    # and -inf gives -FLT_MAX.
    x = (rng.standard_normal((*planes, h, w)) * 10.0 ** rng.integers(-6, 7, (*planes, h, w)))
    ties = rng.random(x.shape) < 0.3
    x[ties] = rng.choice([0.0, -0.0, 1.0, -1.0], ties.sum())
    if method == "max":
        special = rng.random(x.shape) < 0.05
        x[special] = rng.choice([np.nan, -np.inf, np.inf], special.sum())
    x = x.astype(dtype)
    expected = caffe_pool2d_bits(x, kernel, stride, pad, method)
    previous = fastconv.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            y = fastconv.pool2d_caffe(x, kernel, stride=stride, pad=pad, method=method)
            assert y.shape == expected.shape
            np.testing.assert_array_equal(y.view(f"u{y.itemsize}"),
                                          expected.view(f"u{y.itemsize}"), err_msg=str(threads))
    finally:
        fastconv.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", BIT_GEOMETRIES, ids=[str(g) for g in BIT_GEOMETRIES])
def test_max_backward_bits_follow_caffe_order(geometry, dtype):
    """Each dy onto its window's first maximum, the outputs in Caffe's order: bit for bit,
    with overlapping windows (an element gets several additions), ties, signed zeros, NaN
    and inf; rows long enough for the vectorised argmax and rows too short for it."""
    planes, h, w, kernel, stride, pad = geometry
    rng = np.random.default_rng(h + w)
    x = rng.integers(-3, 4, (*planes, h, w)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = -0.0
    special = rng.random(x.shape) < 0.05
    x[special] = rng.choice([np.nan, -np.inf, np.inf], special.sum())
    y = fastconv.pool2d_caffe(x, kernel, stride=stride, pad=pad)
    dy = (rng.standard_normal(y.shape) * 10.0 ** rng.integers(-6, 7, y.shape)).astype(dtype)
    dx = fastconv.pool2d_caffe_backward(x, dy, kernel, stride=stride, pad=pad)
    assert_same_bits(dx, caffe_max_pool2d_backward_bits(x, dy, kernel, stride, pad))


# Rows of more than FC_POOL_ROW_BLOCK (256) outputs whose windows overlap across the blocks,
# and one padded window over the whole plane (its divisor counts the padding: 7 x 8, not 5 x 6).
AVE_BACKWARD_GEOMETRIES = BIT_GEOMETRIES + [((1, 2), 4, 600, (3, 3), (1, 1), (1, 1)),
                                            ((1, 1), 5, 1030, (3, 4), (2, 3), (1, 2)),
                                            ((2, 3), 5, 6, (7, 8), (1, 1), (1, 1))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", AVE_BACKWARD_GEOMETRIES,
                         ids=[str(g) for g in AVE_BACKWARD_GEOMETRIES])
def test_ave_backward_bits_follow_caffe_order(geometry, dtype):
    """Each dy / pool_size onto every cell of its window, the outputs in Caffe's order: bit
    for bit, with overlapping windows, windows clipped by the padding (pool_size counts the
    padding up to in + pad), signed zeros, NaN and inf, and magnitudes far apart (the order
    of the additions shows)."""
    planes, h, w, kernel, stride, pad = geometry
    rng = np.random.default_rng(h * w + 1)
    x = np.zeros((*planes, h, w), dtype)
    y = fastconv.pool2d_caffe(x, kernel, stride=stride, pad=pad, method="ave")
    dy = (rng.standard_normal(y.shape) * 10.0 ** rng.integers(-6, 7, y.shape)).astype(dtype)
    dy[rng.random(dy.shape) < 0.1] = -0.0
    special = rng.random(dy.shape) < 0.02
    dy[special] = rng.choice([np.nan, -np.inf, np.inf], special.sum())
    dx = fastconv.pool2d_caffe_backward(x, dy, kernel, stride=stride, pad=pad, method="ave")
    expected = caffe_ave_pool2d_backward_bits(dy, x.shape, kernel, stride, pad, dtype)
    assert_same_bits(dx, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["max", "ave"])
def test_large_planes_split_over_threads_keep_their_bits(method, dtype):
    """Enough work for several threads (the small cases above run on one): 1 to 4 threads,
    17 planes (blocks of planes that do not divide evenly), the row path and the edges, a
    global pooling's plane blocks, and the backward; every thread count bit for bit against
    Caffe's windows written out in the dtype (the backward against Caffe's order)."""
    x = np.random.default_rng(9).standard_normal((1, 17, 96, 120)).astype(dtype)
    windows = caffe_pool2d_bits(x, (3, 3), (2, 2), (1, 1), method)
    expected = [windows, caffe_pool2d_bits(x, (96, 120), (1, 1), (0, 0), method)]
    previous = fastconv.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3, 4):
            fastconv.set_num_threads(threads)
            windows = fastconv.pool2d_caffe(x, 3, stride=2, pad=1, method=method)
            results.append((windows,
                            fastconv.pool2d_caffe(x, None, global_pooling=True, method=method),
                            fastconv.pool2d_caffe_backward(x, windows, 3, stride=2, pad=1,
                                                           method=method)))
    finally:
        fastconv.set_num_threads(previous)
    if method == "max":
        backward = caffe_max_pool2d_backward_bits(x, windows, (3, 3), (2, 2), (1, 1))
    else:
        backward = caffe_ave_pool2d_backward_bits(windows, x.shape, (3, 3), (2, 2), (1, 1),
                                                  dtype)
    for result in results:
        assert_same_bits(result[2], backward)
    for result in results:
        assert_same_bits(result[0], expected[0])
        assert_same_bits(result[1], expected[1])
        assert_same_bits(result[2], results[0][2])


@pytest.mark.parametrize("shape", [(0, 3, 8, 8), (2, 0, 8, 8)])
def test_empty_batch_or_channels(shape):
    x = np.zeros(shape, np.float32)
    for method in ("max", "ave"):
        y = fastconv.pool2d_caffe(x, 2, stride=2, method=method)
        assert y.shape == shape[:2] + (4, 4)
        dx = fastconv.pool2d_caffe_backward(x, y, 2, stride=2, method=method)
        assert dx.shape == shape
    assert fastconv.pool2d_keras(x.transpose(0, 2, 3, 1), 2).shape == (shape[0], 4, 4, shape[1])


def test_inputs_untouched():
    x = np.random.default_rng(4).standard_normal((1, 2, 6, 6))
    x.flags.writeable = False
    copy = x.copy()
    y = fastconv.pool2d_caffe(x, 3, stride=2, pad=1)
    fastconv.pool2d_caffe_backward(x, np.ones_like(y), 3, stride=2, pad=1)
    np.testing.assert_array_equal(x, copy)


def test_errors():
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match=r"pad=3 must be smaller than kernel_size=3"):
        fastconv.pool2d_caffe(x, 3, pad=3)
    with pytest.raises(ValueError, match="global_pooling"):
        fastconv.pool2d_caffe(x, None, pad=1, global_pooling=True)
    with pytest.raises(ValueError, match="global_pooling"):
        fastconv.pool2d_caffe(x, None, stride=2, global_pooling=True)
    with pytest.raises(ValueError, match="kernel_size=3 cannot be given"):
        fastconv.pool2d_caffe(x, 3, global_pooling=True)
    with pytest.raises(ValueError, match="no output"):
        fastconv.pool2d_caffe(np.zeros((1, 1, 2, 2)), 5, stride=1)
    with pytest.raises(ValueError, match="entirely past the input"):
        fastconv.pool2d_caffe(np.zeros((1, 1, 5, 5)), 1, stride=3)
    with pytest.raises(ValueError, match="method='stochastic'"):
        fastconv.pool2d_caffe(x, 2, method="stochastic")
    with pytest.raises(ValueError, match=re.escape("method=['max'] must be 'max' or 'ave'")):
        fastconv.pool2d_caffe(x, 2, method=["max"])   # unhashable: named, not a bare TypeError
    with pytest.raises(ValueError, match="kernel_size"):
        fastconv.pool2d_caffe(x, (2, 2, 2))
    with pytest.raises(ValueError, match="kernel_size"):
        fastconv.pool2d_caffe(x, 0)
    with pytest.raises(ValueError, match=r"dy has shape \(1, 2, 3, 3\); expected \(1, 2, 5, 5\)"):
        fastconv.pool2d_caffe_backward(x, np.zeros((1, 2, 3, 3)), 2)
    with pytest.raises(ValueError, match="empty spatial axis"):
        fastconv.pool2d_caffe(np.zeros((1, 1, 0, 3)), 2, pad=1)
    with pytest.raises(ValueError, match="x must be 4-D"):
        fastconv.pool2d_caffe(np.zeros((2, 6, 6)), 2)
    with pytest.raises(ValueError, match="no output"):
        fastconv.pool2d_keras(np.zeros((1, 2, 2, 1)), 3)
    with pytest.raises(ValueError, match="padding='full'"):
        fastconv.pool2d_keras(np.zeros((1, 4, 4, 1)), 2, padding="full")
