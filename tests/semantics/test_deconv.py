"""deconv2d_caffe / deconv2d_caffe_backward: Caffe's Deconvolution.

Checked against a plain-numpy float64 scatter (tests/reference/deconv.py), against PyTorch's
conv_transpose2d in float64 where PyTorch is installed (an independent engine whose weight layout
(C_in, num_output/group, kh, kw) and output size stride*(in-1) + dilation*(k-1) + 1 - 2*pad are
Caffe's), against fastconv's own Convolution backward-data (Deconvolution is its adjoint), and
by central finite differences. Tolerance relative to the output's scale: sum_tolerance(K, dtype)
of tests/reference/tolerance.py, K the products summed per element (at most).
"""
import numpy as np
import pytest
from reference.conv import caffe_conv, caffe_conv2d_backward
from reference.deconv import caffe_deconv2d
from reference.sizes import caffe_deconv_out_size
from reference.tolerance import scale_error, sum_tolerance

import fastconv

try:  # PyTorch is a second, independent peer where installed; numpy's reference always runs.
    import torch
except ImportError:
    torch = None

# (H, W, kh, kw, stride, pad, dilation): kh != kw, sh != sw, ph != pw, dilation.
GEOMETRIES = [
    (4, 5, 3, 2, (2, 1), (1, 0), (1, 2)),
    (3, 3, 4, 4, (2, 2), (1, 1), (1, 1)),  # the classic 2x upsampling deconvolution
    (5, 2, 1, 3, (3, 2), (0, 1), (2, 1)),
]
GROUPS = [(4, 6, 1), (4, 6, 2), (6, 6, 6)]  # (C_in, num_output, group)


def make(rng, h, wd, kh, kw, channels, outputs, group, batch=2, dtype=np.float64):
    x = rng.standard_normal((batch, channels, h, wd)).astype(dtype)
    w = rng.standard_normal((channels, outputs // group, kh, kw)).astype(dtype)
    b = rng.standard_normal(outputs).astype(dtype)
    return x, w, b


def torch_deconv(x, w, b, stride, pad, dilation, group, dy=None):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=stride, padding=pad,
                                             dilation=dilation, groups=group)
    if dy is None:
        return y.detach().numpy()
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def numpy_deconv(x, w, b, stride, pad, dilation, group, dy=None):
    """The float64 numpy reference: forward, or (dx, dw, db) for the output gradient dy.
    Deconvolution's input gradient is a Convolution forward of dy with the same blob; its
    weight gradient is that Convolution's weight gradient with dy as input and x as output
    gradient."""
    if dy is None:
        return caffe_deconv2d(x, w, b, stride, pad, dilation, group)
    dx = caffe_conv(dy, w, None, stride, pad, dilation, group)
    _, dw, _ = caffe_conv2d_backward(dy, w, x, stride, pad, dilation, group)
    return dx, dw, np.asarray(dy, np.float64).sum(axis=(0, 2, 3))


def references(x, w, b, stride, pad, dilation, group, dy=None):
    found = [numpy_deconv(x, w, b, stride, pad, dilation, group, dy)]
    if torch is not None:
        found.append(torch_deconv(x, w, b, stride, pad, dilation, group, dy))
    return found


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("channels,outputs,group", GROUPS)
def test_forward_and_backward_match_references(geometry, channels, outputs, group):
    h, wd, kh, kw, stride, pad, dilation = geometry
    rng = np.random.default_rng(hash((geometry, group)) % 2**32)
    x, w, b = make(rng, h, wd, kh, kw, channels, outputs, group)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    y = fastconv.deconv2d_caffe(x, w, b, **kwargs)
    expected_shape = tuple(caffe_deconv_out_size(*axis) for axis in
                           zip((h, wd), (kh, kw), stride, pad, dilation))
    assert y.shape == (2, outputs, *expected_shape)
    # Each output sums at most C_in*kh*kw products; each gradient at most x.size + dy.size.
    for expected in references(x, w, b, stride, pad, dilation, group):
        assert scale_error(y, expected) < sum_tolerance(x[0].size, np.float64)
    dy = rng.standard_normal(y.shape)
    got = fastconv.deconv2d_caffe_backward(x, w, dy, **kwargs)
    for expected in references(x, w, b, stride, pad, dilation, group, dy=dy):
        for name, actual, wanted in zip(("dx", "dw", "db"), got, expected):
            assert actual.shape == wanted.shape, name
            assert scale_error(actual, wanted) < sum_tolerance(x.size + dy.size, np.float64), name


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_forward_is_convolution_backward_data(geometry):
    """Deconvolution(x) == Convolution backward-data of dy=x with the same weight blob, the
    Convolution's input being the Deconvolution's output size."""
    h, wd, kh, kw, stride, pad, dilation = geometry
    rng = np.random.default_rng(9)
    x, w, _ = make(rng, h, wd, kh, kw, 4, 6, 2)
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=2)
    y = fastconv.deconv2d_caffe(x, w, **kwargs)
    conv_input = np.zeros((x.shape[0], 6, *y.shape[2:]))
    dx, _, _ = fastconv.conv2d_caffe_backward(conv_input, w, x, **kwargs)
    np.testing.assert_allclose(y, dx, rtol=0, atol=1e-13)
    # ...and its input gradient is that Convolution's forward.
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(fastconv.deconv2d_caffe_backward(x, w, dy, **kwargs)[0],
                               fastconv.conv2d_caffe(dy, w, **kwargs), rtol=0, atol=1e-12)


def test_float32():
    rng = np.random.default_rng(10)
    x, w, b = make(rng, 7, 6, 4, 3, 8, 4, 1, dtype=np.float32)
    y = fastconv.deconv2d_caffe(x, w, b, stride=(2, 3), pad=(1, 0))
    assert y.dtype == np.float32
    expected = numpy_deconv(x, w, b, (2, 3), (1, 0), (1, 1), 1)
    assert scale_error(y, expected) < sum_tolerance(8 * 4 * 3)


def test_finite_differences():
    rng = np.random.default_rng(12)
    x, w, b = make(rng, 3, 2, 3, 2, 2, 4, 2, batch=1)
    kwargs = dict(stride=(2, 1), pad=(1, 0), dilation=(1, 2), group=2)
    dy = rng.standard_normal(fastconv.deconv2d_caffe(x, w, b, **kwargs).shape)
    dx, dw, db = fastconv.deconv2d_caffe_backward(x, w, dy, **kwargs)
    for array, analytic in ((x, dx), (w, dw), (b, db)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + 1e-6
            plus = np.vdot(fastconv.deconv2d_caffe(x, w, b, **kwargs), dy)
            array[index] = saved - 1e-6
            minus = np.vdot(fastconv.deconv2d_caffe(x, w, b, **kwargs), dy)
            array[index] = saved
            numeric[index] = (plus - minus) / 2e-6
        np.testing.assert_allclose(analytic, numeric, atol=1e-7)


def test_bias_false_and_inputs_untouched():
    rng = np.random.default_rng(13)
    x, w, b = make(rng, 4, 4, 2, 2, 3, 3, 1)
    copies = [a.copy() for a in (x, w, b)]
    y = fastconv.deconv2d_caffe(x, w, b, stride=2)
    dx, dw, db = fastconv.deconv2d_caffe_backward(x, w, np.ones_like(y), stride=2, bias=False)
    assert db is None and dx.shape == x.shape and dw.shape == w.shape
    for array, copy in zip((x, w, b), copies):
        np.testing.assert_array_equal(array, copy)


def test_errors():
    x = np.zeros((1, 4, 3, 3))
    with pytest.raises(ValueError, match="no output"):
        fastconv.deconv2d_caffe(x, np.zeros((4, 2, 2, 2)), pad=2)  # 1*(3-1) + 2 - 4 = 0
    with pytest.raises(ValueError, match=r"w.shape\[0\]=2 must equal the input channels C_in=4"):
        fastconv.deconv2d_caffe(x, np.zeros((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="group=3 does not divide"):
        fastconv.deconv2d_caffe(x, np.zeros((4, 1, 3, 3)), group=3)
    with pytest.raises(ValueError, match=r"b must have shape \(num_output,\) = \(4,\)"):
        fastconv.deconv2d_caffe(x, np.zeros((4, 2, 3, 3)), np.zeros(2), group=2)
    with pytest.raises(ValueError, match=r"dy has shape \(1, 2, 3, 3\); expected \(1, 2, 5, 5\)"):
        fastconv.deconv2d_caffe_backward(x, np.zeros((4, 2, 3, 3)), np.zeros((1, 2, 3, 3)))
