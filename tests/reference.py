"""Plain-numpy float64 references for the tests, written independently of fastconv's engine.

Nothing here imports fastconv: these are the yardsticks the engine is measured against. They
favour obviousness over speed: explicit zero padding, one slice per kernel tap.
"""

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


def caffe_conv2d_backward(x, w, dy, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Caffe Convolution's (dx, dw, db) in float64, from the definition of the gradient:
    dx[n, c, i*s - p + k*d] += w[o, c, k] dy[n, o, i];  dw[o, c, k] = sum x[n, c, ...] dy[n, o, i]."""
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = dy.shape[2:]
    (sh, sw), (ph, pw), (dh, dw_) = stride, pad, dilation
    big_h = max(h + ph, (oh - 1) * sh + dh * (kh - 1) + 1)
    big_w = max(wd + pw, (ow - 1) * sw + dw_ * (kw - 1) + 1)
    padded = np.zeros((n, c, big_h, big_w))
    padded[:, :, ph:ph + h, pw:pw + wd] = x
    grad_padded = np.zeros_like(padded)
    dw = np.zeros_like(w)
    og = o // group
    for g in range(group):
        outs, chans = slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg)
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
                cols = slice(j * dw_, j * dw_ + (ow - 1) * sw + 1, sw)
                grad_padded[:, chans, rows, cols] += np.einsum(
                    "nopq,oc->ncpq", dy[:, outs], w[outs, :, i, j])
                dw[outs, :, i, j] = np.einsum(
                    "nopq,ncpq->oc", dy[:, outs], padded[:, chans, rows, cols])
    return grad_padded[:, :, ph:ph + h, pw:pw + wd], dw, dy.sum(axis=(0, 2, 3))


def caffe_deconv2d(x, w, b=None, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Caffe's Deconvolution forward in float64, as a scatter: every input pixel adds its
    weighted kernel into the output at i*s - p + k*d. Output size s*(in-1) + d*(k-1) + 1 - 2p.
    Weights are (C_in, num_output/group, kh, kw)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    full_h = sh * (h - 1) + dh * (kh - 1) + 1
    full_w = sw * (wd - 1) + dw * (kw - 1) + 1
    full = np.zeros((n, og * group, full_h, full_w))
    cg = c // group
    for g in range(group):
        chans, outs = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        for i in range(kh):
            for j in range(kw):
                full[:, outs, i * dh:i * dh + (h - 1) * sh + 1:sh,
                     j * dw:j * dw + (wd - 1) * sw + 1:sw] += np.einsum(
                    "nchw,co->nohw", x[:, chans], w[chans, :, i, j])
    y = full[:, :, ph:full_h - ph, pw:full_w - pw]
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    return y


def gemm(a, b):
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)


def gemm_error_bound(a, b):
    """Per-element bound on the rounding error of any order of summation, in the dtype of a."""
    k = a.shape[1]
    eps = np.finfo(a.dtype).eps
    return (k + 2) * eps * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))) + 1e-300


def assert_conv_close(y, reference, dtype):
    """Relative to the output's scale, as Caffe's own float32 agreement is stated."""
    scale = max(np.abs(reference).max(), 1e-30)
    tolerance = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    error = np.abs(np.asarray(y, np.float64) - reference).max() / scale
    assert error < tolerance, f"relative error {error:.3g} >= {tolerance}"
