"""The depthwise layer's backward pass (conv.template.c, depthwise_backward): one input channel
per group and one output per input channel, computed plane by plane instead of one GEMM per
group.

Its bits are a contract of their own, written here in numpy loops with every operation rounded
to the dtype (`in_caffes_order`):
  dx: each tap in turn adds w[c, tap] * dy (the product rounded) onto the element it came from,
      so every element gets its taps in order, as Caffe's col2im adds them;
  dW: per tap, one running sum per output column over the rows in order, each term dy times
      the element read (0 in the padding), then those sums in order from +0, then the images'
      sums in order from +0.
Also: the same bits on any thread count and through convnd_caffe_backward, deconvolution's
forward equal to the backward-data bit for bit, an inf in dy meeting the padding gives NaN in dW
(as im2col's zeros give), inputs untouched, and the float64 reference within rounding.
"""
import numpy as np
import pytest

import fastconv

from reference.conv import caffe_conv2d_backward
from reference.sizes import caffe_conv_out_size
from reference.tolerance import assert_same_bits, assert_scaled_close

# (batch, channels, height, width), (kh, kw), stride, pad, dilation
CASES = [
    ((2, 6, 9, 11), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 5, 10, 7), (3, 2), (2, 1), (1, 2), (1, 2)),
    ((3, 4, 8, 8), (5, 5), (2, 2), (2, 2), (1, 1)),
    ((1, 3, 6, 9), (2, 4), (3, 2), (1, 0), (2, 2)),
    ((2, 8, 1, 13), (1, 3), (1, 1), (0, 1), (1, 1)),
    ((1, 2, 3, 3), (5, 5), (1, 1), (2, 2), (1, 1)),   # every window reaches the padding
    ((2, 16, 28, 28), (3, 3), (1, 1), (1, 1), (1, 1)),   # enough planes for every thread
]
IDS = ["x{}k{}s{}p{}d{}".format(*case) for case in CASES]
DTYPES = [np.float32, np.float64]


def make(case, dtype, seed=0):
    x_shape, kernel, stride, pad, dilation = case
    rng = np.random.default_rng(seed)
    out = [caffe_conv_out_size(x_shape[2 + a], kernel[a], stride[a], pad[a], dilation[a])
           for a in range(2)]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((x_shape[1], 1) + kernel).astype(dtype)
    dy = rng.standard_normal((x_shape[0], x_shape[1], *out)).astype(dtype)
    return x, w, dy


def kwargs_of(case):
    _, _, stride, pad, dilation = case
    return dict(stride=stride, pad=pad, dilation=dilation, group=case[0][1])


def in_caffes_order(x, w, dy, stride, pad, dilation):
    """(dx, dw) of a depthwise layer with every operation rounded to x's dtype, in the order
    the module docstring states."""
    dtype = x.dtype
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    oh, ow = dy.shape[2:]
    (sh, sw), (ph, pw), (dh, dw_) = stride, pad, dilation
    big_h = max(h + ph, (oh - 1) * sh + dh * (kh - 1) + 1)
    big_w = max(wd + pw, (ow - 1) * sw + dw_ * (kw - 1) + 1)
    padded = np.zeros((n, c, big_h, big_w), dtype)
    padded[:, :, ph:ph + h, pw:pw + wd] = x
    dx_padded = np.zeros_like(padded)
    image_sums = np.zeros((n, c, kh, kw), dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            cols = slice(j * dw_, j * dw_ + (ow - 1) * sw + 1, sw)
            # One tap adds at most once to an element: a slice assignment keeps the order.
            dx_padded[:, :, rows, cols] += w[:, 0, i, j][None, :, None, None] * dy
            columns = np.zeros((n, c, ow), dtype)
            for r in range(oh):
                columns = columns + dy[:, :, r, :] * padded[:, :, r * sh + i * dh, cols]
            total = np.zeros((n, c), dtype)
            for q in range(ow):
                total = total + columns[:, :, q]
            image_sums[:, :, i, j] = total
    dw = np.zeros((c, kh, kw), dtype)
    for image in range(n):
        dw = dw + image_sums[image]
    return dx_padded[:, :, ph:ph + h, pw:pw + wd], dw[:, None]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bits_in_caffes_order(kernel, case, dtype):
    x, w, dy = make(case, dtype)
    dx, dw, db = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs_of(case))
    expected_dx, expected_dw = in_caffes_order(x, w, dy, *case[2:])
    assert_same_bits(dx, expected_dx)
    assert_same_bits(dw, expected_dw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float64_reference(case, dtype):
    x, w, dy = make(case, dtype, seed=1)
    dx, dw, db = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs_of(case))
    expected = caffe_conv2d_backward(x, w, dy, *case[2:], group=case[0][1])
    taps = case[1][0] * case[1][1]
    assert_scaled_close(dx, expected[0], taps, dtype)
    assert_scaled_close(dw, expected[1], dy.shape[0] * dy.shape[2] * dy.shape[3], dtype)
    assert_scaled_close(db, expected[2], dy.shape[0] * dy.shape[2] * dy.shape[3], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_on_any_thread_count_and_through_convnd(dtype):
    case = CASES[-1]
    x, w, dy = make(case, dtype, seed=2)
    previous = fastconv.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            results.append(fastconv.conv2d_caffe_backward(x, w, dy, **kwargs_of(case)))
    finally:
        fastconv.set_num_threads(previous)
    for result in results[1:]:
        for got, first in zip(result, results[0]):
            assert_same_bits(got, first)
    # The same layer as a 3-D one of depth 1.
    kwargs = kwargs_of(case)
    nd = fastconv.convnd_caffe_backward(
        x[:, :, None], w[:, :, None], dy[:, :, None], group=kwargs["group"],
        stride=(1,) + kwargs["stride"], pad=(0,) + kwargs["pad"],
        dilation=(1,) + kwargs["dilation"])
    for got, first in zip(nd, results[0]):
        assert_same_bits(got.reshape(first.shape), first)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[:4], ids=IDS[:4])
def test_deconvolution_is_the_backward_data(case, dtype):
    x, w, dy = make(case, dtype, seed=3)
    kwargs = kwargs_of(case)
    dx = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs)[0]
    # Deconvolution whose output is x's size; the crop is the part of x the windows reach.
    y = fastconv.deconv2d_caffe(dy, w, **kwargs)
    assert_same_bits(y, dx[:, :, :y.shape[2], :y.shape[3]])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the witness's inf * 0, as meant
@pytest.mark.parametrize("dtype", DTYPES)
def test_inf_gradient_meeting_the_padding_is_nan_in_dw(dtype):
    case = CASES[0]
    x, w, dy = make(case, dtype, seed=4)
    dy[0, 2, 0, 0] = np.inf   # the top-left output: taps of the first row and column read pad
    x_before, w_before, dy_before = x.copy(), w.copy(), dy.copy()
    dx, dw, db = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs_of(case))
    expected_dx, expected_dw = in_caffes_order(x, w, dy, *case[2:])
    assert np.isnan(dw[2, 0, 0, :]).all() and np.isnan(dw[2, 0, :, 0]).all()
    assert_same_bits(dw, expected_dw)
    assert_same_bits(dx, expected_dx)
    for array, before in ((x, x_before), (w, w_before), (dy, dy_before)):
        assert_same_bits(array, before)
