"""Caffe's layers as numpy functions: NCHW data and Caffe's weight blobs in, new arrays out.

Convolution forward (2-D fast path and 1-D to 3-D) and backward, Deconvolution forward and
backward, Pooling forward and backward, InnerProduct, ReLU, BatchNorm, Scale, Eltwise and LRN
forward. Every function checks its arguments in ``fastconv._params`` first, computes in float32
or float64 (numpy's promotion of the inputs; see ``compute_dtype``), never modifies its inputs
and returns new arrays (ReLU, BatchNorm, Scale and Eltwise may write into ``out``, which may be
x itself). Gradients are those of one call: Caffe accumulates parameter gradients across
iterations until cleared, fastconv does not.
"""
from __future__ import annotations

import numpy as np

from . import _engine
from ._params.caffe_conv import (
    caffe_conv2d_geometry,
    caffe_convnd_geometry,
    caffe_deconvnd_geometry,
    spatial_rank,
)
from ._params.channel_affine import caffe_batch_norm_view, caffe_scale_view
from ._params.common import (
    as_array,
    check_gradient_shape,
    check_out,
    compute_dtype,
)
from ._params.eltwise import caffe_eltwise_params
from ._params.inner_product import caffe_inner_product_shape
from ._params.lrn import caffe_lrn_params
from ._params.neuron import caffe_math_function, caffe_relu_params
from ._params.pooling import caffe_pool2d_geometry, pool_method

__all__ = [
    "conv2d_caffe",
    "conv2d_caffe_backward",
    "convnd_caffe",
    "convnd_caffe_backward",
    "deconv2d_caffe",
    "deconv2d_caffe_backward",
    "eltwise_caffe",
    "batch_norm_caffe",
    "inner_product_caffe",
    "lrn_caffe",
    "math_caffe",
    "relu_caffe",
    "scale_caffe",
    "pool2d_caffe",
    "pool2d_caffe_backward",
]


def conv2d_caffe(x, w, b=None, *, stride=1, pad=0, dilation=1, group=1, out=None):
    """Caffe's Convolution layer, forward.

    Parameters
    ----------
    x : array (N, C, H, W)
        Caffe's bottom blob (NCHW).
    w : array (num_output, C/group, kernel_h, kernel_w)
        Caffe's weight blob (OIHW). ``kernel_h``/``kernel_w`` come from its shape.
    b : array (num_output,) or None
        Caffe's bias blob; None is ``bias_term: false``.
    stride, pad, dilation : int or (h, w) pair
        Caffe's ``stride`` | ``stride_h``/``stride_w`` (default 1), ``pad`` | ``pad_h``/``pad_w``
        (default 0) and ``dilation`` (default 1, may differ per axis). Real Caffe 1.0 reads
        a lone ``pad_h`` as ``(pad_h, 0)``: pass that pair. A lone ``stride_h`` or
        ``kernel_h`` crashes Caffe (below), so there is nothing to reproduce.
    group : int
        Caffe's ``group``: channels ``[g*C/G, (g+1)*C/G)`` feed outputs
        ``[g*O/G, (g+1)*O/G)``.
    out : array or None
        Where to write y (then returned): a writeable C-contiguous array of y's shape and the
        computation dtype, apart from x, w and b (a net's existing top blob: no new array).

    Returns
    -------
    y : array (N, num_output, OH, OW)
        In the computation dtype (float32 unless any input is float64; see the README). Per
        spatial axis, with ``extent = dilation*(kernel-1) + 1``::

            OH = (H + 2*pad_h - extent_h) / stride_h + 1

        computed with C's truncating division, as Caffe does: when the extent exceeds the padded
        input by less than the stride this is 1 (floor would give 0) and the taps that fall
        outside read zero. Padding is symmetric zeros; the last rows/columns of the padded input
        go unused when the stride does not divide evenly. Cross-correlation: no kernel flip.

    Raises
    ------
    ValueError, TypeError
        For any malformed call, naming the argument and the Caffe parameter. Calls real Caffe
        would crash on (``stride_h`` without ``stride_w`` leaves the other 0 and dies with
        SIGFPE; an output size below 1 fails a CHECK; ``dilation: 0`` is silently accepted)
        raise here instead.
    """
    key = _engine.plan_key("caffe", x, w, b, stride, pad, dilation, group)
    if key is not None:
        y = _engine.run_cached_plan(key, x, w, b, out)
        if y is not None:
            return y
    x = as_array(x, "x")
    w = as_array(w, "w")
    b = None if b is None else as_array(b, "b")
    geometry = caffe_conv2d_geometry(
        x.shape, w.shape, None if b is None else b.shape, stride, pad, dilation, group
    )
    dtype = compute_dtype(("x", x), ("w", w), ("b", b))
    check_out(out, geometry.output_shape, dtype, (x, w, b), "an input", in_place=False)
    if key is not None:
        _engine.cache_plan(key, geometry, dtype)
    return _engine.forward(geometry, x, w, b, dtype, out=out)


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
    return _engine.conv_forward(geometry, x, w, b, dtype)


def convnd_caffe_backward(x, w, dy, *, stride=1, pad=0, dilation=1, group=1, bias=True):
    """Gradients of :func:`convnd_caffe` for the output gradient ``dy`` -> ``(dx, dw, db)``.

    dx has the shape of x, dw of w (summed over the batch), db (num_output,) is dy summed over
    the batch and every spatial position, or None when ``bias=False`` (``bias_term: false``).
    Computed as Caffe does: im2col + GEMM for dw, GEMM + col2im for dx.
    """
    geometry, (x, w, dy), dtype = _checked_backward(
        caffe_convnd_geometry, x, w, dy, stride, pad, dilation, group, bias, rank=None)
    check_gradient_shape(dy.shape, geometry.output_shape, "dy", "the convolution's output")
    return _engine.conv_backward(geometry, x, w, dy, dtype, want_db=bias)


def conv2d_caffe_backward(x, w, dy, *, stride=1, pad=0, dilation=1, group=1, bias=True):
    """Gradients of :func:`fastconv.conv2d_caffe` -> ``(dx, dw, db)``.

    x (N, C, H, W), w (num_output, C/group, kernel_h, kernel_w), dy (N, num_output, OH, OW) with
    OH, OW as in ``conv2d_caffe``. Returns dx (N, C, H, W); dw like w, summed over the batch; db
    (num_output,), or None when ``bias=False``. One call's gradients, not accumulated.
    """
    geometry, (x, w, dy), dtype = _checked_backward(
        caffe_convnd_geometry, x, w, dy, stride, pad, dilation, group, bias, rank=2)
    check_gradient_shape(dy.shape, geometry.output_shape, "dy", "conv2d_caffe's output")
    return _engine.conv_backward(geometry, x, w, dy, dtype, want_db=bias)


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
    return _engine.deconv_forward(geometry, x, w, b, dtype)


def deconv2d_caffe_backward(x, w, dy, *, stride=1, pad=0, dilation=1, group=1, bias=True):
    """Gradients of :func:`deconv2d_caffe` -> ``(dx, dw, db)``; db None when ``bias=False``.

    dy has deconv2d_caffe's output shape. dx is the Convolution forward of dy with w (no bias);
    dw (like w) is summed over the batch; db is dy summed over batch and space.
    """
    geometry, (x, w, dy), dtype = _checked_backward(
        caffe_deconvnd_geometry, x, w, dy, stride, pad, dilation, group, bias, rank=2)
    check_gradient_shape(dy.shape, geometry.input_shape, "dy", "deconv2d_caffe's output")
    return _engine.deconv_backward(geometry, x, w, dy, dtype, bias)


# ---------------------------------------------------------------------------------------------
# Pooling


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
    :func:`fastconv.pool2d_keras` and ``tests/semantics/test_pooling.py`` for porting.
    """
    x = as_array(x, "x")
    method = pool_method(method)
    geometry = caffe_pool2d_geometry(x.shape, kernel_size, stride, pad, global_pooling)
    return _engine.pool(geometry, method, x, compute_dtype(("x", x)))


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
    return _engine.pool_backward(geometry, method, x, dy, compute_dtype(("x", x), ("dy", dy)))


# ---------------------------------------------------------------------------------------------
# InnerProduct


def inner_product_caffe(x, w, b=None, *, axis=1, transpose=False):
    """Caffe's InnerProduct layer, forward: ``y = x W^T + b`` over the axes from ``axis`` on.

    Parameters
    ----------
    x : array (N, ...)
        Caffe's bottom blob; the axes before ``axis`` are rows, those from it on are flattened in
        C order into K inputs (NCHW order: a Keras model flattening NHWC data orders them
        differently, the usual porting mistake before a Dense layer).
    w : array (num_output, K), or (K, num_output) with ``transpose``
        Caffe's weight blob.
    b : array (num_output,) or None
        Caffe's bias blob; None is ``bias_term: false``.
    axis : int
        Caffe's ``inner_product_param.axis`` (default 1; negative counts from the end).
    transpose : bool
        Caffe's ``inner_product_param.transpose``.

    Returns
    -------
    y : array (x.shape[:axis] + (num_output,))
        In the computation dtype (float32 unless any input is float64). Each output is one dot
        product of K terms from the engine (the vector's lanes along K, then added in a fixed
        order) plus the bias: the same bits for a row alone or in any batch, with any thread
        count.
    """
    arrays = _arrays(x=x, w=w, b=b)
    x, w, b = arrays["x"], arrays["w"], arrays["b"]
    shape = caffe_inner_product_shape(x.shape, w.shape, _shape(b), axis, transpose)
    dtype = compute_dtype(("x", x), ("w", w), ("b", b))
    return _engine.inner_product(shape, x, w, b, dtype)


# ---------------------------------------------------------------------------------------------
# ReLU


def relu_caffe(x, *, negative_slope=0.0, out=None):
    """Caffe's ReLU layer, forward: ``max(x, 0) + negative_slope * min(x, 0)`` element by
    element, exactly as Caffe's C++ computes it (``-0`` stays ``-0``, NaN stays NaN, ``-inf``
    with a zero slope gives NaN, from ``0 * -inf``), in the computation dtype.

    ``negative_slope`` is Caffe's ``relu_param.negative_slope`` (rounded to the dtype, as Caffe
    holds it). ``out``, when given, receives the result: a C-contiguous array of x's shape in
    the computation dtype, which may be x itself (Caffe's in-place ReLU).
    """
    x = as_array(x, "x")
    dtype = compute_dtype(("x", x))
    negative_slope = caffe_relu_params(x, negative_slope, out, dtype)
    return _engine.relu(x, negative_slope, dtype, out)


# ---------------------------------------------------------------------------------------------
# BatchNorm and Scale


def batch_norm_caffe(x, mean, variance, scale_factor=1.0, *, eps=1e-5, out=None):
    """Caffe's BatchNorm layer, forward with its stored statistics (``use_global_stats``, the
    TEST phase's default): ``mean``, ``variance`` and ``scale_factor`` are the layer's three
    blobs as a .caffemodel holds them (running sums and the factor they were scaled by).

    Per channel (axis 1; a 1-D x is one channel), as Caffe computes it, every operation rounded
    in the computation dtype: ``factor = 0 if scale_factor == 0 else 1 / scale_factor``,
    ``deviation = sqrt(variance * factor + eps)``, then ``(x - mean * factor) / deviation``,
    the subtraction and the division each rounded (one C pass over x). ``eps`` is
    batch_norm_param.eps. ``out`` as in ``relu_caffe`` (BatchNorm runs in place in most nets).
    """
    x = as_array(x, "x")
    mean, variance = as_array(mean, "mean"), as_array(variance, "variance")
    scale_factor = as_array(scale_factor, "scale_factor")
    eps, view = caffe_batch_norm_view(x.shape, mean.shape, variance.shape, scale_factor.shape,
                                      eps)
    dtype = compute_dtype(("x", x), ("mean", mean), ("variance", variance))
    check_out(out, x.shape, dtype, (x,), "x", in_place=True)
    stored = dtype.type(scale_factor.reshape(-1)[0])
    factor = dtype.type(0) if stored == 0 else dtype.type(1) / stored
    with np.errstate(invalid="ignore"):   # inf * 0 or sqrt of a negative: NaN, as in Caffe
        deviation = np.sqrt(variance.astype(dtype) * factor + dtype.type(eps))
        mean = mean.astype(dtype) * factor
    return _engine.channel_normalize(x, view, mean, deviation, dtype, out)


def scale_caffe(x, scale, bias=None, *, axis=1, out=None):
    """Caffe's Scale layer, forward: ``x * scale``, plus ``bias`` when given (scale_param's
    bias_term), the product rounded before the sum, in the computation dtype.

    ``scale`` (the layer's first blob, or its second bottom) covers the axes ``axis`` ..
    ``axis + scale.ndim`` of x and is broadcast over the others; a scalar scale ignores
    ``axis``, as in Caffe. ``bias`` has scale's shape. ``out`` as in ``relu_caffe``.
    """
    x = as_array(x, "x")
    scale = as_array(scale, "scale")
    bias = None if bias is None else as_array(bias, "bias")
    view = caffe_scale_view(x.shape, scale.shape, None if bias is None else bias.shape, axis)
    dtype = compute_dtype(("x", x), ("scale", scale), ("bias", bias))
    check_out(out, x.shape, dtype, (x,), "x", in_place=True)
    return _engine.channel_scale(x, view, scale, bias, dtype, out)


def eltwise_caffe(*bottoms, operation="SUM", coeff=None, out=None):
    """Caffe's Eltwise layer, forward, on two or more arrays of one shape, in the computation
    dtype of all of them.

    ``SUM``: Caffe's ``top = 0``, then ``top += coeff[i] * bottom[i]`` for each bottom in
    order (the product rounded, then the sum, as its axpy under the reference BLAS; a sum of
    zeros is +0; a zero coefficient skips its bottom, inf and NaN included, as the BLAS axpy
    returns at once), in one C pass; ``coeff`` (eltwise_param.coeff) defaults to 1 for each.
    ``PROD``: the product in bottom order. ``MAX``: bottom 0 where it is strictly greater than
    bottom 1, else bottom 1, and each later bottom where strictly greater than the result
    (NaN never replaces, as in Caffe's comparisons). ``out`` as in ``relu_caffe``, and may be
    any of the bottoms.
    """
    bottoms = [as_array(bottom, f"bottom {index}") for index, bottom in enumerate(bottoms)]
    operation, coeff = caffe_eltwise_params([b.shape for b in bottoms], operation, coeff)
    dtype = compute_dtype(*((f"bottom {i}", b) for i, b in enumerate(bottoms)))
    check_out(out, bottoms[0].shape, dtype, bottoms, "a bottom", in_place=True)
    if operation == "SUM":
        # A zero coefficient skips its bottom, as the BLAS axpy returns at once for a zero
        # alpha: an inf or NaN there does not reach the top.
        kept = [index for index, value in enumerate(coeff) if value != 0]
        if not kept:
            top = np.zeros(bottoms[0].shape, dtype) if out is None else out
            top[...] = 0
            return top
        return _engine.eltwise_sum([bottoms[i] for i in kept],
                                   np.array([coeff[i] for i in kept], dtype), dtype, out)
    # PROD and MAX in numpy, into a new array first: out may be a bottom still to be read.
    bottoms = [bottom.astype(dtype, copy=False) for bottom in bottoms]
    if operation == "PROD":
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):   # inf, 0, NaN: Caffe's
            top = bottoms[0] * bottoms[1]
            for bottom in bottoms[2:]:
                top *= bottom
    else:
        top = np.where(np.greater(bottoms[0], bottoms[1]), bottoms[0], bottoms[1])
        for bottom in bottoms[2:]:
            top = np.where(np.greater(bottom, top), bottom, top)
    if out is None:
        return top
    out[...] = top
    return out


# ---------------------------------------------------------------------------------------------
# Element math (the C library's functions, as Caffe calls them)


def math_caffe(x, function, *, exponent=None):
    """Caffe's element math as its code computes it: the C library's ``function`` ("exp",
    "log", "tanh", or "pow" to ``exponent``) of every element of x, in the computation dtype:
    expf, logf, tanhf, powf for float32 (Caffe's caffe_exp, caffe_log, caffe_powx and
    std::tanh on a float call these), exp, log, tanh, pow for float64. numpy's float32
    functions, and its float64 ones rounded to float32, differ from them by an ulp here and
    there (glibc's powf(x, -0.75f) rounds one positive float in 1,600 the other way from the
    exact power). The
    Net's Exp, Log, Power, TanH, ELU, BNLL, Sigmoid and Softmax layers are built on it."""
    x = as_array(x, "x")
    exponent = caffe_math_function(function, exponent)
    return _engine.libm(function, x, compute_dtype(("x", x)), exponent)


# ---------------------------------------------------------------------------------------------
# LRN


def lrn_caffe(x, *, local_size=5, alpha=1.0, beta=0.75, k=1.0, norm_region="ACROSS_CHANNELS"):
    """Caffe's LRN layer, forward, on NCHW ``x``; the parameters are lrn_param's, with its
    defaults, each held in the computation dtype as Caffe holds them.

    ``ACROSS_CHANNELS``: ``x * scale^-beta`` with ``scale = k + alpha/local_size * (the sum of
    x² over the local_size channels centred on each, zeros outside)``, the sum kept as Caffe's
    running window (the first channel's terms added in order, then each channel's sum from the
    previous one, plus the entering term, minus the leaving one), in C. The power is the C
    library's powf (float32) or pow (float64), as Caffe's: for float32 with beta 0.75 its
    result from ``1 / (sqrt(scale) * sqrt(sqrt(scale)))`` in double, fused with the window,
    with glibc's powf itself wherever that rounds near a midpoint (checked over every float).
    ``WITHIN_CHANNEL``: Caffe's composition x² (by powf) -> AVE pooling (local_size, stride
    1, pad (local_size-1)/2) -> ``(1 + alpha * pooled)^-beta`` -> times x; ``k`` is not used
    there, as in Caffe.
    """
    x = as_array(x, "x")
    local_size, alpha, beta, k, norm_region = caffe_lrn_params(
        x.shape, local_size, alpha, beta, k, norm_region)
    dtype = compute_dtype(("x", x))
    x = x.astype(dtype, copy=False)
    if x.size == 0:   # no element to normalise (nor a window to pool)
        return np.empty(x.shape, dtype)
    one, alpha_d, beta_d = dtype.type(1), dtype.type(alpha), dtype.type(beta)
    if norm_region == "ACROSS_CHANNELS":
        alpha_over_size = alpha_d / dtype.type(local_size)
        if dtype == np.float32 and beta_d == np.float32(0.75):
            # AlexNet's, CaffeNet's and GoogLeNet's beta: the power in C, fused with the window.
            return _engine.lrn_window(x, local_size, alpha_over_size, dtype.type(k), dtype,
                                      three_quarter_power=True)
        scale = _engine.lrn_window(x, local_size, alpha_over_size, dtype.type(k), dtype)
        return _engine.libm("pow", scale, dtype, -beta_d) * x
    # Caffe squares by a PowerLayer (powf(x, 2), which is not always x * x rounded).
    squares = _engine.libm("pow", x, dtype, 2)
    pooled = pool2d_caffe(squares, local_size, stride=1, pad=(local_size - 1) // 2, method="ave")
    scaled = pooled * alpha_d if alpha_d != 1 else pooled
    return x * _engine.libm("pow", scaled + one, dtype, -beta_d)
