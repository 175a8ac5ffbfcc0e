"""convnd_caffe / convnd_caffe_backward (1-D, 2-D, 3-D) against a plain-numpy float64 reference.

The reference (tests/reference/conv.py) is written from Caffe's definition, not from fastconv:
pad with zeros, then for each kernel tap take one strided slice and contract channels.
Tolerance relative to the output's scale: sum_tolerance(K, dtype) of
tests/reference/tolerance.py, K the products summed per output.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from reference.conv import caffe_conv
from reference.tolerance import scale_error, sum_tolerance


# Per rank: input spatial size, kernel, stride, pad, dilation -- unequal across axes on purpose.
CASES = {
    1: [((11,), (3,), (2,), (1,), (1,)), ((9,), (4,), (1,), (0,), (2,)),
        ((5,), (6,), (4,), (0,), (1,))],  # the last: truncation gives 1 output (Caffe)
    2: [((9, 8), (3, 2), (2, 1), (1, 2), (1, 2)), ((7, 10), (1, 3), (1, 3), (0, 1), (2, 1))],
    3: [((5, 6, 7), (3, 2, 1), (1, 2, 3), (1, 0, 1), (1, 2, 1)),
        ((4, 5, 6), (2, 3, 2), (2, 1, 2), (0, 1, 1), (2, 1, 1))],
}
GROUPS = [(4, 6, 1), (4, 6, 2), (4, 4, 4)]  # (C, num_output, group), incl. depthwise


def make(rng, rank, spatial, kernel, channels, outputs, group, batch=2, dtype=np.float64):
    x = rng.standard_normal((batch, channels, *spatial)).astype(dtype)
    w = rng.standard_normal((outputs, channels // group, *kernel)).astype(dtype)
    b = rng.standard_normal(outputs).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("channels,outputs,group", GROUPS)
def test_forward_matches_reference(rank, channels, outputs, group):
    rng = np.random.default_rng(rank * 10 + group)
    for spatial, kernel, stride, pad, dilation in CASES[rank]:
        x, w, b = make(rng, rank, spatial, kernel, channels, outputs, group)
        y = fastconv.convnd_caffe(x, w, b, stride=stride, pad=pad, dilation=dilation, group=group)
        expected = caffe_conv(x, w, b, stride, pad, dilation, group)
        assert y.shape == expected.shape, (spatial, kernel, stride, pad, dilation)
        terms = w[0].size + 1
        assert scale_error(y, expected) < sum_tolerance(terms, np.float64), (spatial, kernel)


@pytest.mark.parametrize("rank", [1, 3])
def test_forward_float32(rank):
    rng = np.random.default_rng(7)
    spatial, kernel, stride, pad, dilation = CASES[rank][0]
    x, w, b = make(rng, rank, spatial, kernel, 6, 4, 2, dtype=np.float32)
    y = fastconv.convnd_caffe(x, w, b, stride=stride, pad=pad, dilation=dilation, group=2)
    assert y.dtype == np.float32
    terms = 3 * math.prod(kernel)
    expected = caffe_conv(x, w, b, stride, pad, dilation, 2)
    assert scale_error(y, expected) < sum_tolerance(terms)


def test_rank2_equals_conv2d_caffe():
    rng = np.random.default_rng(3)
    x, w, b = make(rng, 2, (13, 11), (3, 5), 6, 9, 3)
    kwargs = dict(stride=(2, 3), pad=(2, 1), dilation=(1, 2), group=3)
    np.testing.assert_allclose(fastconv.convnd_caffe(x, w, b, **kwargs),
                               fastconv.conv2d_caffe(x, w, b, **kwargs), rtol=0, atol=1e-12)


def test_forward_crosses_workspace_tiles():
    """64 channels x 3x3x3 taps = 1728 column rows: the engine's bounded workspace holds fewer
    than the 8x8x8 output pixels, so the result is stitched from several pixel tiles."""
    rng = np.random.default_rng(21)
    x, w, b = make(rng, 3, (9, 10, 8), (3, 3, 3), 64, 3, 1, batch=1)
    y = fastconv.convnd_caffe(x, w, b, pad=(1, 0, 1))
    expected = caffe_conv(x, w, b, (1, 1, 1), (1, 0, 1), (1, 1, 1), 1)
    assert scale_error(y, expected) < sum_tolerance(w[0].size + 1, np.float64)


def numeric_gradient(f, array, h=1e-6):
    """Central differences of the scalar f() with respect to every element of ``array``."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + h
        plus = f()
        array[index] = saved - h
        minus = f()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * h)
    return grad


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_backward_finite_differences(rank):
    rng = np.random.default_rng(11 + rank)
    spatial, kernel, stride, pad, dilation = CASES[rank][0]
    spatial = tuple(min(s, 5) for s in spatial)
    x, w, b = make(rng, rank, spatial, kernel, 4, 2, 2, batch=1)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=2)
    dy = rng.standard_normal(fastconv.convnd_caffe(x, w, b, **kwargs).shape)

    def loss():
        return np.vdot(fastconv.convnd_caffe(x, w, b, **kwargs), dy)

    dx, dw, db = fastconv.convnd_caffe_backward(x, w, dy, **kwargs)
    # Central differences of a bilinear loss are exact up to rounding: ~1e-10 absolute.
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), atol=1e-7)
    np.testing.assert_allclose(dw, numeric_gradient(loss, w), atol=1e-7)
    np.testing.assert_allclose(db, numeric_gradient(loss, b), atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(rank=st.integers(1, 3), data=st.data())
def test_backward_adjoint_identity(rank, data):
    """<conv(x), dy> == <x, dx(dy)> == <w, dw(dy)> for the bias-free (bilinear) convolution."""
    draw = data.draw
    group = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    spatial = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 6))
                    for k, p, d in zip(kernel, pad, dilation))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x, w, _ = make(rng, rank, spatial, kernel, 2 * group, 2 * group, group)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    y = fastconv.convnd_caffe(x, w, **kwargs)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = fastconv.convnd_caffe_backward(x, w, dy, **kwargs)
    forward = np.vdot(y, dy)
    assert math.isclose(np.vdot(x, dx), forward, rel_tol=1e-10, abs_tol=1e-10), kwargs
    assert math.isclose(np.vdot(w, dw), forward, rel_tol=1e-10, abs_tol=1e-10), kwargs
    np.testing.assert_allclose(db, dy.sum(axis=(0, *range(2, dy.ndim))), atol=1e-12)


# 3-D layers on a single depth position (depth 1, kernel depth 1), the shape of a 2-D layer
# whose fast paths (images side by side, rows read in place from a padded copy, the shifted
# col2im) must not take them when the depth axis has a stride or padding: a depth stride on
# images side by side read image i * stride; depth padding gave planes of zeros read as the
# image. Widths that fill whole vectors (16, 32) and others; batch 3.
DEPTH_ONE = [  # (height, width), (kh, kw), stride, pad
    ((1, 1), (1, 1), (2, 1, 1), (0, 0, 0)),
    ((2, 5), (1, 2), (3, 1, 1), (0, 0, 1)),
    ((4, 16), (2, 1), (1, 1, 1), (1, 0, 0)),
    ((4, 32), (3, 3), (1, 1, 1), (1, 1, 1)),
    ((3, 24), (3, 3), (3, 1, 1), (1, 1, 1)),   # the one output plane reads only padding
    ((5, 48), (1, 1), (2, 1, 1), (0, 0, 0)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial,kernel,stride,pad", DEPTH_ONE)
def test_depth_one_with_depth_stride_or_padding(spatial, kernel, stride, pad, dtype):
    rng = np.random.default_rng(sum(spatial) + 3 * sum(stride) + 5 * sum(pad))
    x, w, b = make(rng, 3, (1, *spatial), (1, *kernel), 3, 4, 1, batch=3, dtype=dtype)
    y = fastconv.convnd_caffe(x, w, b, stride=stride, pad=pad)
    expected = caffe_conv(x, w, b, stride, pad)
    assert y.shape == expected.shape
    assert scale_error(y, expected) < sum_tolerance(w[0].size + 1, dtype)
    # Backward through the float64 reference's forward: <y(x), dy> = <x, dx> = <w, dw>.
    dy = rng.standard_normal(y.shape)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    dx, dw, db = fastconv.convnd_caffe_backward(x64, w64, dy, stride=stride, pad=pad)
    forward = np.vdot(caffe_conv(x64, w64, None, stride, pad), dy)
    assert math.isclose(np.vdot(x64, dx), forward, rel_tol=1e-10, abs_tol=1e-10)
    assert math.isclose(np.vdot(w64, dw), forward, rel_tol=1e-10, abs_tol=1e-10)
    if y.shape[2] == 1 and pad[0] > 0:   # the one output plane read only the depth padding
        assert not dx.any() and not dw.any()


def test_errors():
    x = np.zeros((1, 2, 5))
    w = np.zeros((3, 2, 2))
    with pytest.raises(ValueError, match="x must be 3-D .* or 5-D"):
        fastconv.convnd_caffe(np.zeros((1, 2)), w)
    with pytest.raises(ValueError, match="w must be 3-D"):
        fastconv.convnd_caffe(x, np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="stride=.*one per spatial axis"):
        fastconv.convnd_caffe(x, w, stride=(1, 2))
    with pytest.raises(ValueError, match="no output"):
        fastconv.convnd_caffe(x, np.zeros((3, 2, 9)))
    with pytest.raises(ValueError, match=r"dy has shape \(1, 3, 3\); expected \(1, 3, 4\)"):
        fastconv.convnd_caffe_backward(x, w, np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="dilation"):
        fastconv.convnd_caffe(np.zeros((1, 2, 5, 5, 5)), np.zeros((3, 2, 2, 2, 2)), dilation=0)


def test_inputs_untouched_and_readonly():
    rng = np.random.default_rng(5)
    x, w, b = make(rng, 3, (4, 4, 4), (2, 2, 2), 2, 2, 1)
    for array in (x, w, b):
        array.flags.writeable = False
    copies = [a.copy() for a in (x, w, b)]
    y = fastconv.convnd_caffe(x, w, b, pad=1)
    fastconv.convnd_caffe_backward(x, w, np.ones_like(y), pad=1)
    for array, copy in zip((x, w, b), copies):
        np.testing.assert_array_equal(array, copy)


def reference_weight_gradient(x, dy, kernel, stride, pad, dilation, group):
    """dW from Caffe's definition, in numpy (float64): per tap, the strided slice of the padded
    input that tap reads, contracted with dy over images and output positions."""
    rank = len(kernel)
    padded = np.pad(x, ((0, 0), (0, 0), *[(p, p) for p in pad])).astype(np.float64)
    out = dy.shape[2:]
    c_group, o_group = x.shape[1] // group, dy.shape[1] // group
    dw = np.zeros((dy.shape[1], c_group, *kernel))
    for tap in np.ndindex(*kernel):
        window = padded[(slice(None), slice(None)) + tuple(
            slice(t * d, t * d + s * (o - 1) + 1, s)
            for t, d, s, o in zip(tap, dilation, stride, out))]
        for g in range(group):
            dw[(slice(g * o_group, (g + 1) * o_group), slice(None)) + tap] = np.tensordot(
                dy[:, g * o_group:(g + 1) * o_group], window[:, g * c_group:(g + 1) * c_group],
                axes=([0] + list(range(2, 2 + rank)), [0] + list(range(2, 2 + rank))))
    return dw


# Weight gradients with enough output positions (>= 512 over the batch) and output channels
# filling the direct kernel's panels (48 or 64 float32, 24 or 32 float64 on AVX-512; 16 or 8 on
# AVX2): the engine computes them without a column matrix, on any rank.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial,kernel,stride,pad,dilation,channels,outputs,group", [
    ((6, 9, 12), (3, 2, 3), (1, 1, 1), (1, 0, 1), (1, 2, 1), 5, 48, 1),
    ((700,), (5,), (1,), (2,), (2,), 6, 64, 2),
    ((8, 30, 31), (1, 3, 3), (1, 2, 1), (0, 1, 1), (1, 1, 2), 4, 96, 1),
])
def test_weight_gradient_without_column_matrix(spatial, kernel, stride, pad, dilation, channels,
                                               outputs, group, dtype):
    rng = np.random.default_rng(5)
    x, w, _ = make(rng, len(kernel), spatial, kernel, channels, outputs, group, dtype=dtype)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    y = fastconv.convnd_caffe(x, w, **kwargs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    _, dw, _ = fastconv.convnd_caffe_backward(x, w, dy, **kwargs)
    expected = reference_weight_gradient(x, dy, kernel, stride, pad, dilation, group)
    terms = x.shape[0] * int(np.prod(y.shape[2:]))
    assert scale_error(dw, expected) <= sum_tolerance(terms, dtype)
