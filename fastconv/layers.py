"""Caffe's convolution family beyond the forward 2-D convolution: Convolution backward (2-D and
N-D), Deconvolution, Pooling, N-D Convolution. NCHW data and Caffe's weight blobs throughout.

Every function checks its arguments in ``fastconv._params`` first, computes in float32 or
float64 (numpy's promotion of the inputs; see ``compute_dtype``), never modifies its inputs and
returns new arrays. Gradients are those of one call: Caffe accumulates parameter gradients
across iterations until cleared, fastconv does not.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._params import (
    as_array,
    caffe_convnd_geometry,
    caffe_deconvnd_geometry,
    caffe_pool2d_geometry,
    check_gradient_shape,
    compute_dtype,
    pool_method,
    spatial_rank,
    to_kernel_input,
)


# ---------------------------------------------------------------------------------------------
# Engine calls on checked geometries (shared with fastconv.keras)


def _flat(array, dtype):
    """The flat C-contiguous buffer the core reads; an empty one stands for None (no bias)."""
    return np.empty(0, dtype) if array is None else to_kernel_input(array, dtype).reshape(-1)


def _conv_forward(geometry, x, w, b, dtype):
    y = np.empty(geometry.output_shape, dtype=dtype)
    _core.convnd_forward(geometry, _flat(x, dtype), _flat(w, dtype), _flat(b, dtype),
                         y.reshape(-1))
    return y


def _conv_backward(geometry, x, w, dy, dtype, *, want_dx=True, want_dw=True, want_db=True):
    """(dx, dw, db) of the convolution ``geometry`` describes; unwanted ones are None."""
    dx = np.empty(geometry.input_shape, dtype=dtype) if want_dx else None
    dw = np.empty(geometry.weight_shape, dtype=dtype) if want_dw else None
    db = np.empty(geometry.out_channels, dtype=dtype) if want_db else None
    # An empty buffer tells the core "not wanted" (its pointer is NULL); None would not do, as
    # Cython picks the float/double specialisation from the buffers' dtypes.
    absent = _flat(None, dtype)
    _core.convnd_backward(
        geometry, _flat(x if want_dw else None, dtype), _flat(w, dtype), _flat(dy, dtype),
        absent if dx is None else dx.reshape(-1), absent if dw is None else dw.reshape(-1),
        absent if db is None else db,
    )
    return dx, dw, db


def _deconv_forward(geometry, x, w, b, dtype):
    """Deconvolution = backward-data of the convolution ``geometry`` describes, plus the bias."""
    y, _, _ = _conv_backward(geometry, None, w, x, dtype, want_dw=False, want_db=False)
    if b is not None:
        y += np.asarray(b, dtype=dtype).reshape((-1,) + (1,) * geometry.rank)
    return y


def _deconv_backward(geometry, x, w, dy, dtype, bias):
    """Deconvolution's gradients: its dx is the convolution's forward of dy, its dw the
    convolution's weight gradient with the roles of input and output gradient exchanged."""
    dx = _conv_forward(geometry, dy, w, None, dtype)
    _, dw, _ = _conv_backward(geometry, dy, w, x, dtype, want_dx=False, want_db=False)
    db = to_kernel_input(dy, dtype).sum(axis=(0, *range(2, dy.ndim))) if bias else None
    return dx, dw, db


def _arrays(**named):
    return {name: None if value is None else as_array(value, name) for name, value in named.items()}


def _shape(array):
    return None if array is None else array.shape


# ---------------------------------------------------------------------------------------------
# Convolution


def convnd_caffe(x, w, b=None, *, stride=1, pad=0, dilation=1, group=1):
    """Caffe's Convolution layer, forward, on 1-D, 2-D or 3-D data.

    x (N, C, *spatial) with 1 to 3 spatial axes; w (num_output, C/group, *kernel); b
    (num_output,) or None. ``stride``, ``pad`` and ``dilation`` are an int or one value per
    spatial axis. Output (N, num_output, *out) with, per axis,
    ``out = (in + 2*pad - (dilation*(kernel-1) + 1)) / stride + 1`` in C's truncating division,
    exactly as :func:`fastconv.conv2d_caffe` (which remains the fast 2-D path).
    """
    arrays = _arrays(x=x, w=w, b=b)
    x, w, b = arrays["x"], arrays["w"], arrays["b"]
    geometry = caffe_convnd_geometry(x.shape, w.shape, _shape(b), stride, pad, dilation, group,
                                     rank=spatial_rank(x.shape))
    dtype = compute_dtype(("x", x), ("w", w), ("b", b))
    return _conv_forward(geometry, x, w, b, dtype)


def convnd_caffe_backward(x, w, dy, *, stride=1, pad=0, dilation=1, group=1, bias=True):
    """Gradients of :func:`convnd_caffe` for the output gradient ``dy`` -> ``(dx, dw, db)``.

    dx has the shape of x, dw of w (summed over the batch), db (num_output,) is dy summed over
    the batch and every spatial position, or None when ``bias=False`` (``bias_term: false``).
    Computed as Caffe does: im2col + GEMM for dw, GEMM + col2im for dx.
    """
    geometry, (x, w, dy), dtype = _checked_backward(
        caffe_convnd_geometry, x, w, dy, stride, pad, dilation, group, bias, rank=None)
    check_gradient_shape(dy.shape, geometry.output_shape, "dy", "the convolution's output")
    return _conv_backward(geometry, x, w, dy, dtype, want_db=bias)


def conv2d_caffe_backward(x, w, dy, *, stride=1, pad=0, dilation=1, group=1, bias=True):
    """Gradients of :func:`fastconv.conv2d_caffe` -> ``(dx, dw, db)``.

    x (N, C, H, W), w (num_output, C/group, kernel_h, kernel_w), dy (N, num_output, OH, OW) with
    OH, OW as in ``conv2d_caffe``. Returns dx (N, C, H, W); dw like w, summed over the batch; db
    (num_output,), or None when ``bias=False``. One call's gradients, not accumulated.
    """
    geometry, (x, w, dy), dtype = _checked_backward(
        caffe_convnd_geometry, x, w, dy, stride, pad, dilation, group, bias, rank=2)
    check_gradient_shape(dy.shape, geometry.output_shape, "dy", "conv2d_caffe's output")
    return _conv_backward(geometry, x, w, dy, dtype, want_db=bias)


def _checked_backward(infer_geometry, x, w, dy, stride, pad, dilation, group, bias, rank):
    """Arrays, geometry and dtype of a backward call; ``rank`` None means x's own rank."""
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"bias={bias!r} must be True or False (Caffe bias_term)")
    x, w, dy = as_array(x, "x"), as_array(w, "w"), as_array(dy, "dy")
    geometry = infer_geometry(x.shape, w.shape, None, stride, pad, dilation, group,
                              rank=spatial_rank(x.shape) if rank is None else rank)
    return geometry, (x, w, dy), compute_dtype(("x", x), ("w", w), ("dy", dy))


# ---------------------------------------------------------------------------------------------
# Deconvolution


def deconv2d_caffe(x, w, b=None, *, stride=1, pad=0, dilation=1, group=1):
    """Caffe's Deconvolution layer, forward: the adjoint (backward-data) of Convolution.

    x (N, C_in, H, W); w (C_in, num_output/group, kernel_h, kernel_w), Caffe's Deconvolution
    blob; b (num_output,) or None. Output (N, num_output, OH, OW) with, per axis,
    ``OH = stride*(H - 1) + dilation*(kernel - 1) + 1 - 2*pad`` (an error if < 1). It equals
    ``conv2d_caffe_backward``'s dx for a Convolution with these weights whose input is OHxOW.
    """
    arrays = _arrays(x=x, w=w, b=b)
    x, w, b = arrays["x"], arrays["w"], arrays["b"]
    geometry = caffe_deconvnd_geometry(x.shape, w.shape, _shape(b), stride, pad, dilation, group,
                                       rank=2)
    dtype = compute_dtype(("x", x), ("w", w), ("b", b))
    return _deconv_forward(geometry, x, w, b, dtype)


def deconv2d_caffe_backward(x, w, dy, *, stride=1, pad=0, dilation=1, group=1, bias=True):
    """Gradients of :func:`deconv2d_caffe` -> ``(dx, dw, db)``; db None when ``bias=False``.

    dy has deconv2d_caffe's output shape. dx is the Convolution forward of dy with w (no bias);
    dw (like w) is summed over the batch; db is dy summed over batch and space.
    """
    geometry, (x, w, dy), dtype = _checked_backward(
        caffe_deconvnd_geometry, x, w, dy, stride, pad, dilation, group, bias, rank=2)
    check_gradient_shape(dy.shape, geometry.input_shape, "dy", "deconv2d_caffe's output")
    return _deconv_backward(geometry, x, w, dy, dtype, bias)


# ---------------------------------------------------------------------------------------------
# Pooling


def _pool(geometry, method, x, dtype):
    y = np.empty(geometry.output_shape, dtype=dtype)
    _core.pool2d_forward(geometry, method, _flat(x, dtype), y.reshape(-1))
    return y


def _pool_backward(geometry, method, x, dy, dtype):
    dx = np.empty(x.shape, dtype=dtype)
    _core.pool2d_backward(geometry, method, _flat(x, dtype), _flat(dy, dtype), dx.reshape(-1))
    return dx


def pool2d_caffe(x, kernel_size, *, stride=1, pad=0, method="max", global_pooling=False):
    """Caffe's Pooling layer, forward, on NCHW data.

    ``kernel_size``, ``stride`` (Caffe's default 1, not the kernel size) and ``pad`` are an int
    or an (h, w) pair; ``method`` is "max" or "ave". Output per axis::

        out = ceil((in + 2*pad - kernel) / stride) + 1
        if (pad_h or pad_w) and (out - 1)*stride >= in + pad: out -= 1

    (Caffe tests for padding once per layer, so pad_h > 0 clips the width too.)

    MAX ignores padding and keeps the first maximum (row-major) on ties. AVE sums the window's
    input cells and divides by the window clipped to ``in + pad``: padding cells inside that
    range count. ``global_pooling=True`` pools each whole map to 1x1 (pass ``kernel_size=None``;
    pad and stride must stay at their defaults). Keras floors instead: see
    :func:`fastconv.pool2d_keras` and ``tests/test_pooling.py`` for porting.
    """
    x = as_array(x, "x")
    method = pool_method(method)
    geometry = caffe_pool2d_geometry(x.shape, kernel_size, stride, pad, global_pooling)
    return _pool(geometry, method, x, compute_dtype(("x", x)))


def pool2d_caffe_backward(x, dy, kernel_size, *, stride=1, pad=0, method="max",
                          global_pooling=False):
    """Gradient of :func:`pool2d_caffe` with respect to x, for the output gradient ``dy``.

    MAX routes each dy to its window's first maximum (Caffe's mask); AVE spreads dy/divisor
    over the window's input cells. Returns dx with x's shape.
    """
    x = as_array(x, "x")
    dy = as_array(dy, "dy")
    method = pool_method(method)
    geometry = caffe_pool2d_geometry(x.shape, kernel_size, stride, pad, global_pooling)
    check_gradient_shape(dy.shape, geometry.output_shape, "dy", "pool2d_caffe's output")
    return _pool_backward(geometry, method, x, dy, compute_dtype(("x", x), ("dy", dy)))
