"""Convolution references: N-D cross-correlation, Caffe's Convolution forward and backward."""
import itertools

import numpy as np

from .sizes import caffe_conv_out_size


def conv_nd(x, w, b, stride, pad_before, out_size, dilation, group=1):
    """Cross-correlation of (N, C, *S) x with (O, C/group, *K) w in float64, with ``pad_before``
    zeros before each spatial axis and ``out_size`` outputs per axis; taps beyond the input
    (after it) read zero, however far."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    rank = x.ndim - 2
    kernel = w.shape[2:]
    # Enough zeros after each axis for the farthest tap of the last output.
    after = [max(pad_before[a] + (out_size[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1)
                 + 1 - (x.shape[2 + a] + pad_before[a]), 0) for a in range(rank)]
    padded = np.pad(x, [(0, 0), (0, 0)] + [(pad_before[a], after[a]) for a in range(rank)])
    n = x.shape[0]
    o, cg = w.shape[:2]
    og = o // group
    y = np.zeros((n, o, *out_size))
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(tap[a] * dilation[a],
                             tap[a] * dilation[a] + (out_size[a] - 1) * stride[a] + 1, stride[a])
                       for a in range(rank))
        for g in range(group):
            patch = padded[(slice(None), slice(g * cg, (g + 1) * cg)) + window]
            weights = w[(slice(g * og, (g + 1) * og), slice(None)) + tap]
            y[:, g * og:(g + 1) * og] += np.moveaxis(
                np.tensordot(patch, weights, axes=([1], [1])), -1, 1)
    if b is not None:
        y += np.asarray(b, np.float64).reshape((-1,) + (1,) * rank)
    return y


def caffe_conv(x, w, b=None, stride=None, pad=None, dilation=None, group=1):
    """Caffe's Convolution forward, any rank, float64: symmetric pad, truncating output size.
    ``stride``/``pad``/``dilation`` are one value per spatial axis (default 1, 0, 1)."""
    rank = np.ndim(x) - 2
    stride = stride or (1,) * rank
    pad = pad or (0,) * rank
    dilation = dilation or (1,) * rank
    out = tuple(caffe_conv_out_size(np.shape(x)[2 + a], np.shape(w)[2 + a], stride[a], pad[a],
                                    dilation[a]) for a in range(rank))
    return conv_nd(x, w, b, stride, pad, out, dilation, group)


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


def gemm(a, b):
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)
