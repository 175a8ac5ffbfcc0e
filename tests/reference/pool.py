"""Caffe's Pooling forward and backward by explicit windows (pooling_layer.cpp), float64."""
import numpy as np

from .sizes import caffe_pool_out_size


def caffe_windows(size, kernel, stride, pad, layer_padded):
    """Per output index: (first, last+1) of the window clipped to the input, and the AVE
    divisor's extent (the window clipped to in + pad: padding cells inside it count)."""
    windows = []
    for index in range(caffe_pool_out_size(size, kernel, stride, pad, layer_padded)):
        start = index * stride - pad
        end_for_divisor = min(start + kernel, size + pad)
        windows.append((max(start, 0), min(start + kernel, size), end_for_divisor - start))
    return windows


def caffe_pool(x, kernel, stride, pad, method, dy=None):
    """Forward (dy None) or backward of Caffe's Pooling; ``method`` 'max' or 'ave'. MAX takes
    the first maximum in row-major order and routes its gradient there."""
    n, c, h, w = np.shape(x)
    x = np.asarray(x, np.float64)
    padded = any(pad)
    rows = caffe_windows(h, kernel[0], stride[0], pad[0], padded)
    cols = caffe_windows(w, kernel[1], stride[1], pad[1], padded)
    y = np.zeros((n, c, len(rows), len(cols)))
    dx = np.zeros(x.shape)
    for i, (h0, h1, span_h) in enumerate(rows):
        for j, (w0, w1, span_w) in enumerate(cols):
            for a in range(n):
                for b in range(c):
                    window = x[a, b, h0:h1, w0:w1]
                    if method == "max":
                        first = np.argmax(window)  # argmax returns the first maximum
                        y[a, b, i, j] = window.flat[first]
                        if dy is not None:
                            r, s = np.unravel_index(first, window.shape)
                            dx[a, b, h0 + r, w0 + s] += dy[a, b, i, j]
                    else:
                        y[a, b, i, j] = window.sum() / (span_h * span_w)
                        if dy is not None:
                            dx[a, b, h0:h1, w0:w1] += dy[a, b, i, j] / (span_h * span_w)
    return y if dy is None else dx


FLT_MAX = float(np.finfo(np.float32).max)


def caffe_pool2d(x, kernel, stride=(1, 1), pad=(0, 0), method="max", global_pooling=False,
                 clip=True):
    """Caffe's Pooling forward with its comparison rule made explicit: MAX starts from -FLT_MAX
    and keeps a value only when ``value > best``, so NaN never wins and an all-NaN window gives
    -FLT_MAX. ``clip=False`` leaves out Caffe's last-window clip (a port's mistake)."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    if global_pooling:
        kernel, stride, pad = (h, w), (1, 1), (0, 0)
    padded = clip and any(pad)
    rows = caffe_windows(h, kernel[0], stride[0], pad[0], padded)
    cols = caffe_windows(w, kernel[1], stride[1], pad[1], padded)
    y = np.empty((n, c, len(rows), len(cols)))
    for i, (h0, h1, span_h) in enumerate(rows):
        for j, (w0, w1, span_w) in enumerate(cols):
            if method == "max":
                best = np.full((n, c), -FLT_MAX)
                for row in range(h0, h1):
                    for col in range(w0, w1):
                        best = np.where(x[:, :, row, col] > best, x[:, :, row, col], best)
                y[:, :, i, j] = best
            else:
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / (span_h * span_w)
    return y


def caffe_pool2d_bits(x, kernel, stride, pad, method):
    """Caffe's forward in x's own dtype, each window in Caffe's order: MAX from -FLT_MAX with
    ``value > best``, AVE one running sum from 0 in row-major order, then the division. The
    result's bits are Caffe's (IEEE additions and comparisons in that order)."""
    dtype = x.dtype.type
    rows = caffe_windows(x.shape[2], kernel[0], stride[0], pad[0], any(pad))
    cols = caffe_windows(x.shape[3], kernel[1], stride[1], pad[1], any(pad))
    y = np.empty(x.shape[:2] + (len(rows), len(cols)), x.dtype)
    for i, (h0, h1, span_h) in enumerate(rows):
        for j, (w0, w1, span_w) in enumerate(cols):
            value = np.full(x.shape[:2], dtype(-np.finfo(np.float32).max if method == "max"
                                               else 0), x.dtype)
            for row in range(h0, h1):
                for col in range(w0, w1):
                    tap = x[:, :, row, col]
                    value = np.where(tap > value, tap, value) if method == "max" else value + tap
            y[:, :, i, j] = value if method == "max" else value / dtype(span_h * span_w)
    return y


def caffe_max_pool2d_backward_bits(x, dy, kernel, stride, pad):
    """Caffe's MAX backward in x's dtype: output by output in row-major order, dy added onto
    its window's first maximum (from -FLT_MAX, strictly greater wins; the window's first cell
    where none does), so each element gets its additions in Caffe's order."""
    n, c, h, w = x.shape
    rows = caffe_windows(h, kernel[0], stride[0], pad[0], any(pad))
    cols = caffe_windows(w, kernel[1], stride[1], pad[1], any(pad))
    dx = np.zeros((n * c, h * w), x.dtype)
    planes = x.reshape(n * c, h, w)
    grads = dy.reshape(n * c, len(rows), len(cols))
    everyone = np.arange(n * c)
    for i, (h0, h1, _) in enumerate(rows):
        for j, (w0, w1, _) in enumerate(cols):
            best = np.full(n * c, -np.finfo(np.float32).max, x.dtype)
            at = np.full(n * c, h0 * w + w0)
            for row in range(h0, h1):
                for col in range(w0, w1):
                    wins = planes[:, row, col] > best
                    best = np.where(wins, planes[:, row, col], best)
                    at = np.where(wins, row * w + col, at)
            dx[everyone, at] += grads[:, i, j]   # one element per plane: no repeats
    return dx.reshape(x.shape)


def caffe_ave_pool2d_backward_bits(dy, x_shape, kernel, stride, pad, dtype):
    """Caffe's AVE backward in ``dtype``: output by output in row-major order, top / pool_size
    (the window clipped to in + pad) added onto every input cell of the window (clipped to the
    input), so each element gets its additions in Caffe's order."""
    n, c, h, w = x_shape
    rows = caffe_windows(h, kernel[0], stride[0], pad[0], any(pad))
    cols = caffe_windows(w, kernel[1], stride[1], pad[1], any(pad))
    dx = np.zeros((n, c, h, w), dtype)
    with np.errstate(invalid="ignore"):   # inf + -inf is NaN, as in Caffe
        for i, (h0, h1, span_h) in enumerate(rows):
            for j, (w0, w1, span_w) in enumerate(cols):
                share = (dy[:, :, i, j] / dtype(span_h * span_w)).astype(dtype)
                for row in range(h0, h1):
                    for col in range(w0, w1):
                        dx[:, :, row, col] += share
    return dx
