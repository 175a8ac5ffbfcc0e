"""conv2d_caffe_backward: Caffe Convolution's (dx, dw, db) for one call.

Checked against (1) a plain-numpy float64 scatter written from the definition of the gradient
(tests/reference/conv.py), (2) PyTorch's autograd in float64 where PyTorch is installed (an
independent engine with Caffe's layouts),
(3) central finite differences of fastconv's forward, and (4) the adjoint identity.
Tolerance relative to the gradient's scale: sum_tolerance(K, dtype) of tests/reference/tolerance.py,
K the number of terms summed per element (dx: num_output/group*kh*kw, dw and db: N*OH*OW).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference.conv import caffe_conv2d_backward
from reference.sizes import caffe_conv_out_size
from reference.tolerance import scale_error, sum_tolerance

import fastconv

try:  # PyTorch is a second, independent peer where installed; numpy's reference always runs.
    import torch
except ImportError:
    torch = None


def torch_backward(x, w, dy, stride, pad, dilation, group):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros(w.shape[0], dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad, dilation=dilation,
                                   groups=group)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def gradient_terms(w, dy):
    """Upper bounds on the products summed per element of dx (num_output*kh*kw: fewer with
    groups), dw and db (N*OH*OW)."""
    batch, _, oh, ow = dy.shape
    return w.shape[0] * w.shape[2] * w.shape[3], batch * oh * ow, batch * oh * ow


# (H, W, kh, kw, stride, pad, dilation): kh != kw, sh != sw, ph != pw, dilation on one axis.
GEOMETRIES = [
    (9, 8, 3, 2, (2, 1), (1, 2), (1, 2)),
    (10, 7, 1, 3, (1, 3), (0, 1), (2, 1)),
    (11, 11, 5, 5, (4, 4), (2, 2), (1, 1)),
    (6, 9, 2, 4, (3, 2), (1, 0), (2, 2)),
]
GROUPS = [(4, 6, 1), (4, 6, 2), (6, 6, 6)]  # (C, num_output, group); the last is depthwise


def make(rng, h, wd, kh, kw, channels, outputs, group, stride, pad, dilation, batch=2,
         dtype=np.float64):
    x = rng.standard_normal((batch, channels, h, wd)).astype(dtype)
    w = rng.standard_normal((outputs, channels // group, kh, kw)).astype(dtype)
    oh = caffe_conv_out_size(h, kh, stride[0], pad[0], dilation[0])
    ow = caffe_conv_out_size(wd, kw, stride[1], pad[1], dilation[1])
    dy = rng.standard_normal((batch, outputs, oh, ow)).astype(dtype)
    return x, w, dy


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("channels,outputs,group", GROUPS)
def test_matches_numpy_and_torch(geometry, channels, outputs, group):
    h, wd, kh, kw, stride, pad, dilation = geometry
    rng = np.random.default_rng(hash((geometry, group)) % 2**32)
    x, w, dy = make(rng, h, wd, kh, kw, channels, outputs, group, stride, pad, dilation)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    got = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs)
    references = [caffe_conv2d_backward(x, w, dy, stride, pad, dilation, group)]
    if torch is not None:
        references.append(torch_backward(x, w, dy, stride, pad, dilation, group))
    for expected in references:
        terms = gradient_terms(w, dy)
        for name, actual, wanted, count in zip(("dx", "dw", "db"), got, expected, terms):
            assert actual.shape == wanted.shape, name
            assert scale_error(actual, wanted) < sum_tolerance(count, np.float64), (name, group)


def test_truncating_output_size():
    """Input 5, kernel 6, stride 4 (Caffe: one output whose out-of-range taps read zero): the
    taps past the input receive no gradient. Torch refuses this geometry, numpy does not."""
    rng = np.random.default_rng(1)
    x, w, dy = make(rng, 5, 5, 6, 6, 2, 3, 1, (4, 4), (0, 0), (1, 1))
    assert dy.shape[2:] == (1, 1)
    got = fastconv.conv2d_caffe_backward(x, w, dy, stride=4)
    expected = caffe_conv2d_backward(x, w, dy, (4, 4), (0, 0), (1, 1), 1)
    for actual, wanted, terms in zip(got, expected, gradient_terms(w, dy)):
        assert scale_error(actual, wanted) < sum_tolerance(terms, np.float64)


def test_float32_and_many_tiles():
    """float32, with a column matrix wider than the engine's bounded workspace, so the pixel
    tiles' seams are crossed (C*kh*kw = 2048 rows, 24x24 outputs)."""
    rng = np.random.default_rng(2)
    stride, pad, dilation = (1, 1), (1, 2), (1, 1)
    x, w, dy = make(rng, 24, 22, 4, 4, 128, 8, 1, stride, pad, dilation, batch=2,
                    dtype=np.float32)
    dx, dw, db = fastconv.conv2d_caffe_backward(x, w, dy, stride=stride, pad=pad)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    ex, ew, eb = caffe_conv2d_backward(x, w, dy, stride, pad, dilation, 1)
    for actual, wanted, terms in zip((dx, dw, db), (ex, ew, eb), gradient_terms(w, dy)):
        assert scale_error(actual, wanted) < sum_tolerance(terms)


def test_finite_differences():
    rng = np.random.default_rng(4)
    stride, pad, dilation = (2, 1), (1, 2), (1, 2)
    x, w, dy = make(rng, 5, 6, 3, 2, 4, 2, 2, stride, pad, dilation, batch=1)
    b = rng.standard_normal(2)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=2)
    dx, dw, db = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs)
    for array, analytic in ((x, dx), (w, dw), (b, db)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            values = []
            for step in (1e-6, -1e-6):
                array[index] = saved + step
                values.append(np.vdot(fastconv.conv2d_caffe(x, w, b, **kwargs), dy))
            array[index] = saved
            numeric[index] = (values[0] - values[1]) / 2e-6
        # The loss is linear in each argument: differences are exact up to rounding (~1e-9).
        np.testing.assert_allclose(analytic, numeric, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_adjoint_identity(data):
    draw = data.draw
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    group = draw(st.sampled_from([1, 2, 3]))
    low_h = max(1, dilation[0] * (kh - 1) + 1 - 2 * pad[0])
    low_w = max(1, dilation[1] * (kw - 1) + 1 - 2 * pad[1])
    h, wd = draw(st.integers(low_h, low_h + 6)), draw(st.integers(low_w, low_w + 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x, w, dy = make(rng, h, wd, kh, kw, group, 2 * group, group, stride, pad, dilation)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    y = fastconv.conv2d_caffe(x, w, **kwargs)
    dx, dw, _ = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs)
    forward = np.vdot(y, dy)
    assert math.isclose(np.vdot(x, dx), forward, rel_tol=1e-10, abs_tol=1e-10), kwargs
    assert math.isclose(np.vdot(w, dw), forward, rel_tol=1e-10, abs_tol=1e-10), kwargs


def test_bias_false_and_inputs_untouched():
    rng = np.random.default_rng(6)
    x, w, dy = make(rng, 7, 7, 3, 3, 2, 2, 1, (1, 1), (1, 1), (1, 1))
    copies = [a.copy() for a in (x, w, dy)]
    for array in (x, w, dy):
        array.flags.writeable = False
    dx, dw, db = fastconv.conv2d_caffe_backward(x, w, dy, pad=1, bias=False)
    assert db is None and dx.shape == x.shape and dw.shape == w.shape
    for array, copy in zip((x, w, dy), copies):
        np.testing.assert_array_equal(array, copy)
    # Two calls give the same gradients: nothing accumulates across calls (unlike Caffe's diffs).
    np.testing.assert_array_equal(fastconv.conv2d_caffe_backward(x, w, dy, pad=1)[1], dw)


def test_mixed_dtypes_promote():
    rng = np.random.default_rng(8)
    x, w, dy = make(rng, 5, 5, 3, 3, 2, 2, 1, (1, 1), (0, 0), (1, 1), dtype=np.float32)
    assert fastconv.conv2d_caffe_backward(x, w.astype(np.float64), dy)[0].dtype == np.float64


def test_errors():
    x, w = np.zeros((2, 4, 8, 8)), np.zeros((6, 2, 3, 3))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 6, 8, 8\); expected \(2, 6, 6, 6\)"):
        fastconv.conv2d_caffe_backward(x, w, np.zeros((2, 6, 8, 8)), group=2)
    with pytest.raises(ValueError, match="group=4 does not divide num_output=6"):
        fastconv.conv2d_caffe_backward(x, w, np.zeros((2, 6, 6, 6)), group=4)
    with pytest.raises(ValueError, match="stride"):
        fastconv.conv2d_caffe_backward(x, w, np.zeros((2, 6, 6, 6)), stride=(1, 0), group=2)
    with pytest.raises(TypeError, match="bias"):
        fastconv.conv2d_caffe_backward(x, w, np.zeros((2, 6, 6, 6)), group=2, bias=None)
    with pytest.raises(TypeError, match="dy has dtype complex"):
        fastconv.conv2d_caffe_backward(x, w, np.zeros((2, 6, 6, 6), complex), group=2)
    with pytest.raises(ValueError, match="HWIO"):
        fastconv.conv2d_caffe_backward(x, np.zeros((3, 3, 4, 6)), np.zeros((2, 6, 6, 6)))
