"""Plain-numpy float64 references for the tests, written independently of fastconv's engine.

Nothing here imports fastconv: these are the yardsticks the engine is measured against. They
favour obviousness over speed: explicit zero padding, one slice per kernel tap.
"""
import math

import numpy as np


def caffe_output_size(size, kernel, stride, pad, dilation):
    # Caffe computes this in C integers; int() truncates toward zero like C's division.
    span = dilation * (kernel - 1) + 1
    return int((size + 2 * pad - span) / stride) + 1


def conv2d_nchw(x, w, b=None, stride=(1, 1), pad_before=(0, 0), out_size=None,
                dilation=(1, 1), group=1):
    """Cross-correlation of NCHW x with OIHW w, float64, zero padding ``pad_before`` above/left.

    ``out_size`` is (OH, OW); taps beyond the input (below/right) read zero, however far.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = out_size
    sh, sw = stride
    dh, dw = dilation
    ph, pw = pad_before
    # Pad generously on every side so every tap of every output lands inside the array.
    need_h = max(ph + (oh - 1) * sh + dh * (kh - 1) + 1 - (h + ph), 0)
    need_w = max(pw + (ow - 1) * sw + dw * (kw - 1) + 1 - (wd + pw), 0)
    padded = np.zeros((n, c, h + ph + need_h, wd + pw + need_w))
    padded[:, :, ph:ph + h, pw:pw + wd] = x
    y = np.zeros((n, o, oh, ow))
    outputs_per_group = o // group
    for out_channel in range(o):
        g = out_channel // outputs_per_group
        channels = slice(g * cg, (g + 1) * cg)
        for i in range(kh):
            for j in range(kw):
                window = padded[:, channels,
                                i * dh: i * dh + (oh - 1) * sh + 1: sh,
                                j * dw: j * dw + (ow - 1) * sw + 1: sw]
                y[:, out_channel] += np.tensordot(window, w[out_channel, :, i, j], axes=([1], [0]))
    if b is not None:
        y += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return y


def caffe_conv2d(x, w, b=None, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Caffe's Convolution forward, float64: symmetric pad, truncating output size."""
    _, _, h, wd = np.shape(x)
    _, _, kh, kw = np.shape(w)
    out = (caffe_output_size(h, kh, stride[0], pad[0], dilation[0]),
           caffe_output_size(wd, kw, stride[1], pad[1], dilation[1]))
    return conv2d_nchw(x, w, b, stride, pad, out, dilation, group)


def error_bound(x, w, b, dtype, reference_fn):
    """Per-element bound on the rounding error of a ``dtype`` dot product of K terms + bias.

    The classic bound |fl(sum) - sum| <= gamma_K * sum|x_i w_i| with gamma_K ~ K * eps holds for
    any summation order, so it covers fastconv's blocking and oneDNN's alike; computing it with
    |x| and |w| through the same reference gives it element by element.
    """
    kernel_dim = int(np.prod(np.shape(w)[1:]))
    eps = np.finfo(dtype).eps
    magnitude = reference_fn(np.abs(x), np.abs(w), None if b is None else np.abs(b))
    # Factor 2: the float64 reference carries its own rounding error, of the same order when
    # dtype is float64.
    return 2 * (kernel_dim + 2) * eps * magnitude + np.finfo(dtype).tiny


def max_violation(actual, expected, bound):
    """max(|actual - expected| / bound): <= 1 means within the bound everywhere."""
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected) / bound))
