"""conv2d_caffe against the plain float64 reference in tests/reference, over a grid and
random parameters. Every grid mixes kh != kw, sh != sw, ph != pw: square cases hide swaps."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from reference.conv import caffe_conv
from reference.sizes import caffe_conv_out_size
from reference.tolerance import error_bound, max_violation

DTYPES = [np.float32, np.float64]


def run_case(rng, dtype, batch, channels, in_hw, out_channels, kernel, stride, pad, dilation,
             group, with_bias):
    x = rng.standard_normal((batch, channels, *in_hw)).astype(dtype)
    w = rng.standard_normal((out_channels, channels // group, *kernel)).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype) if with_bias else None
    y = fastconv.conv2d_caffe(x, w, b, stride=stride, pad=pad, dilation=dilation, group=group)
    expected = caffe_conv(x, w, b, stride, pad, dilation, group)

    def reference(xa, wa, ba):
        return caffe_conv(xa, wa, ba, stride, pad, dilation, group)

    assert y.dtype == dtype
    assert y.shape == expected.shape
    assert max_violation(y, expected, error_bound(x, w, b, dtype, reference)) <= 1.0


GRID = [
    # batch, C, (H, W), O, (kh, kw), (sh, sw), (ph, pw), (dh, dw), group, bias
    (1, 3, (17, 19), 4, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),       # 1x1 fast path
    (2, 8, (7, 6), 6, (1, 1), (1, 1), (0, 0), (1, 1), 2, False),        # 1x1 grouped
    (1, 3, (9, 9), 5, (1, 1), (2, 1), (0, 1), (1, 1), 1, True),         # 1x1 but strided/padded
    (1, 3, (10, 12), 4, (3, 2), (1, 2), (1, 0), (1, 1), 1, True),
    (3, 4, (11, 9), 6, (2, 3), (2, 3), (0, 2), (1, 1), 2, True),
    (2, 6, (13, 14), 6, (3, 3), (3, 2), (3, 1), (2, 3), 6, True),       # depthwise, pad >= kernel
    (1, 6, (12, 12), 12, (3, 3), (1, 1), (1, 1), (1, 1), 6, False),     # depthwise multiplier 2
    (1, 2, (16, 15), 3, (5, 4), (4, 3), (2, 3), (2, 1), 1, True),
    (1, 3, (23, 21), 8, (11, 11), (4, 4), (0, 0), (1, 1), 1, True),     # AlexNet conv1 style
    (2, 3, (20, 22), 4, (7, 5), (2, 2), (3, 2), (1, 1), 1, True),
    (1, 4, (9, 10), 4, (3, 3), (1, 1), (2, 2), (3, 2), 1, True),        # dilation
    (1, 3, (5, 5), 2, (6, 6), (4, 4), (0, 0), (1, 1), 1, True),         # truncation: 1x1 output
    (2, 2, (5, 7), 3, (6, 2), (4, 1), (0, 1), (1, 2), 1, False),        # truncation on h only
    (1, 4, (8, 8), 4, (1, 3), (1, 1), (0, 1), (1, 1), 4, True),
    (1, 1, (1, 1), 1, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    (2, 12, (9, 8), 9, (2, 2), (2, 2), (1, 1), (1, 1), 3, True),
    (1, 3, (4, 30), 2, (3, 1), (1, 7), (1, 0), (1, 1), 1, True),        # very wide, sw > kernel
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRID, ids=lambda c: "N{}C{}{}O{}k{}s{}p{}d{}g{}b{}".format(*c))
def test_grid(case, dtype):
    run_case(np.random.default_rng(hash(case) % 2**32), dtype, *case)


SWEEP_SIZE = 24
# Geometries with no output are excluded here; test_arguments checks that they raise.
SWEEP = [params for params in itertools.product([1, 2, 3, 5, 11], [1, 2, 4], [0, 1, 3], [1, 3])
         if caffe_conv_out_size(SWEEP_SIZE - 3, *params) >= 1]


@pytest.mark.parametrize("kernel, stride, pad, dilation", SWEEP)
def test_sweep_square_float32(kernel, stride, pad, dilation):
    size = SWEEP_SIZE
    run_case(np.random.default_rng(kernel * 100 + stride * 10 + pad), np.float32,
             2, 3, (size, size - 3), 4, (kernel, kernel), (stride, stride), (pad, pad),
             (dilation, dilation), 1, True)


@st.composite
def caffe_layers(draw):
    group = draw(st.integers(1, 3))
    channels = group * draw(st.integers(1, 3))
    out_channels = group * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    stride = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    pad = (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    sizes = []
    for axis in range(2):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        # Smallest input Caffe accepts: extent may exceed the padded input by < stride.
        smallest = max(1, span - 2 * pad[axis] - stride[axis] + 1)
        sizes.append(draw(st.integers(smallest, smallest + 12)))
    return dict(batch=draw(st.integers(1, 3)), channels=channels, in_hw=tuple(sizes),
                out_channels=out_channels, kernel=kernel, stride=stride, pad=pad,
                dilation=dilation, group=group, with_bias=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(layer=caffe_layers(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_random_layers(layer, dtype, seed):
    run_case(np.random.default_rng(seed), dtype, **layer)


def test_seed_layer_shape_and_values():
    """The issue's seed: 1x3x500x500, 96 filters 11x11, stride 4 -> (1, 96, 123, 123)."""
    rng = np.random.default_rng(7)
    x = rng.random((1, 3, 500, 500), dtype=np.float32)
    w = rng.random((96, 3, 11, 11), dtype=np.float32)
    b = rng.random(96, dtype=np.float32)
    y = fastconv.conv2d_caffe(x, w, b, stride=4)
    assert y.shape == (1, 96, 123, 123)
    # Check a sample of output channels against the reference (the full float64 reference
    # costs seconds; channels are independent computations).
    some = [0, 17, 95]
    expected = caffe_conv(x, w[some], b[some], (4, 4), (0, 0), (1, 1), 1)
    bound = error_bound(x, w[some], b[some], np.float32,
                        lambda xa, wa, ba: caffe_conv(xa, wa, ba, (4, 4), (0, 0), (1, 1), 1))
    assert max_violation(y[:, some], expected, bound) <= 1.0


def test_large_batch_workspace_bounded():
    """A batch much larger than one im2col tile still matches (tiles span image boundaries)."""
    rng = np.random.default_rng(3)
    run_case(rng, np.float32, 9, 3, (31, 29), 5, (5, 3), (2, 1), (1, 2), (1, 1), 1, True)


def test_nan_and_inf_propagate():
    x = np.ones((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 3, 3] = np.inf
    y = fastconv.conv2d_caffe(x, np.ones((1, 1, 2, 2), np.float32))
    assert np.isnan(y[0, 0, 0, 0]) and np.isinf(y[0, 0, 2, 2])
    assert np.isfinite(y[0, 0, 1, 1])
