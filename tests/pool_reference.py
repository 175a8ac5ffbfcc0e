"""Caffe 1.0's Pooling forward in plain numpy float64, written from Caffe's
``PoolingLayer::Forward_cpu`` independently of fastconv (which it does not import)."""
import math

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)


def caffe_pool2d(x, kernel, stride=(1, 1), pad=(0, 0), method="max", global_pooling=False,
                 clip=True):
    """``clip=False`` leaves out Caffe's last-window clip (a port's mistake)."""
    x = np.asarray(x, np.float64)
    n, c, height, width = x.shape
    if global_pooling:
        kernel, stride, pad = (height, width), (1, 1), (0, 0)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    out = []
    for size, k, s, p in ((height, kh, sh, ph), (width, kw, sw, pw)):
        pooled = int(math.ceil((size + 2 * p - k) / s)) + 1
        if clip and (ph or pw) and (pooled - 1) * s >= size + p:   # Caffe tests the layer's pad once
            pooled -= 1
        out.append(pooled)
    y = np.empty((n, c, out[0], out[1]))
    for i in range(out[0]):
        for j in range(out[1]):
            hstart, wstart = i * sh - ph, j * sw - pw
            hend, wend = min(hstart + kh, height + ph), min(wstart + kw, width + pw)
            pool_size = (hend - hstart) * (wend - wstart)
            hstart, wstart = max(hstart, 0), max(wstart, 0)
            hend, wend = min(hend, height), min(wend, width)
            if method == "max":
                best = np.full((n, c), -FLT_MAX)
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        best = np.where(x[:, :, h, w] > best, x[:, :, h, w], best)
                y[:, :, i, j] = best
            else:
                y[:, :, i, j] = x[:, :, hstart:hend, wstart:wend].sum(axis=(2, 3)) / pool_size
    return y
