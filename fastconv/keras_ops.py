"""Keras's layers as numpy functions, without Keras: ``Conv2D``, ``Conv2DTranspose`` and
``MaxPooling2D``/``AveragePooling2D`` with TensorFlow's arithmetic, computed by fastconv's core.

NHWC (``channels_last``) or NCHW (``channels_first``) data, Keras's HWIO kernels. Like
``fastconv.caffe_ops``, every function checks its arguments first, computes in float32 or
float64 and never modifies its inputs.
"""
from __future__ import annotations

import numpy as np

from . import _engine
from ._params.common import as_array, compute_dtype
from ._params.keras_conv import keras_conv2d_geometry, keras_conv2d_transpose_geometry
from ._params.pooling import keras_pool2d_geometry, pool_method

__all__ = ["conv2d_keras", "conv2d_transpose_keras", "pool2d_keras"]


def conv2d_keras(x, kernel, bias=None, *, strides=1, padding="valid", dilation_rate=1, groups=1,
                 data_format="channels_last"):
    """Keras ``Conv2D`` forward (TensorFlow's arithmetic), without Keras.

    Parameters
    ----------
    x : array
        (N, H, W, C) for ``data_format="channels_last"`` (Keras's default), (N, C, H, W) for
        ``"channels_first"``.
    kernel : array (kernel_h, kernel_w, C/groups, filters)
        Keras's HWIO kernel, for both data formats.
    bias : array (filters,) or None
    strides, dilation_rate : int or (h, w) pair
    padding : "valid" or "same"
        ``"valid"``: no padding, ``out = floor((in - extent) / stride) + 1``.
        ``"same"``: ``out = ceil(in / stride)``; the total padding
        ``max((out-1)*stride + extent - in, 0)`` is split with the odd cell at the
        bottom/right, which is where TensorFlow differs from Caffe's symmetric ``pad``.
        ``extent = dilation_rate*(kernel-1) + 1``.
    groups : int
        Channel groups, split into contiguous blocks as in Caffe.

    Returns
    -------
    y : array in the layout of ``x``, with ``filters`` channels.
    """
    # Repeated NHWC calls take the plan cache (as conv2d_caffe's do): channels last is the
    # layout that reaches the engine as it is.
    key = None
    if data_format == "channels_last":
        key = _engine.plan_key("keras", x, kernel, bias, strides, padding, dilation_rate, groups)
        if key is not None:
            y = _engine.run_cached_plan(key, x, kernel, bias)
            if y is not None:
                return y
    x = as_array(x, "x")
    kernel = as_array(kernel, "kernel")
    bias = None if bias is None else as_array(bias, "bias")
    geometry = keras_conv2d_geometry(
        x.shape, kernel.shape, None if bias is None else bias.shape,
        strides, padding, dilation_rate, groups, data_format,
    )
    dtype = compute_dtype(("x", x), ("kernel", kernel), ("bias", bias))
    # NHWC data and the HWIO kernel go to the engine as they are (it packs from them and writes
    # NHWC): same bits as the NCHW path, no whole-tensor copies.
    if data_format == "channels_last":
        if key is not None:
            _engine.cache_plan(key, geometry, dtype)
        return _engine.forward(geometry, x, kernel, bias, dtype, channels_last=True)
    return _engine.forward(geometry, x, kernel.transpose(3, 2, 0, 1), bias, dtype)


def conv2d_transpose_keras(x, kernel, bias=None, *, strides=1, padding="valid",
                           output_padding=None, dilation_rate=1, data_format="channels_last"):
    """Keras ``Conv2DTranspose`` forward (TensorFlow's ``conv2d_transpose``), without Keras.

    kernel (kernel_h, kernel_w, filters, C_in); bias (filters,) or None. Output length per axis,
    with ``extent = dilation_rate*(kernel-1) + 1`` (Keras 3's
    ``compute_conv_transpose_output_shape``):

    - ``output_padding=None``: "valid" ``(in-1)*strides + max(extent, strides)``, "same"
      ``in*strides``;
    - otherwise (``0 <= output_padding < strides``): "valid"
      ``(in-1)*strides + extent + output_padding``, "same"
      ``(in-1)*strides + extent % 2 + output_padding``.

    The result is the input gradient of a ``Conv2D`` with this kernel, that padding and an
    input of the output's size (TensorFlow's "same" split: the odd padding cell at the
    bottom/right); equivalently Caffe's Deconvolution with weights
    ``kernel.transpose(3, 2, 0, 1)`` cropped as TensorFlow pads.

    Keras refuses ``strides > 1`` together with ``dilation_rate > 1``, and TensorFlow's CPU
    kernel any ``dilation_rate > 1``; fastconv computes those well-defined cases too (checked
    against PyTorch's ``conv_transpose2d`` through ``deconv2d_caffe``). Raises ValueError where
    TensorFlow rejects the call: an even kernel with ``padding="same"`` and
    ``output_padding=0`` gives an output whose forward convolution does not map back to x.
    """
    x = as_array(x, "x")
    kernel = as_array(kernel, "kernel")
    bias = None if bias is None else as_array(bias, "bias")
    geometry = keras_conv2d_transpose_geometry(
        x.shape, kernel.shape, None if bias is None else bias.shape, strides, padding,
        output_padding, dilation_rate, data_format,
    )
    dtype = compute_dtype(("x", x), ("kernel", kernel), ("bias", bias))
    channels_last = data_format == "channels_last"
    x_nchw = x.transpose(0, 3, 1, 2) if channels_last else x
    y = _engine.deconv_forward(geometry, x_nchw, kernel.transpose(3, 2, 0, 1), bias, dtype)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)) if channels_last else y


def pool2d_keras(x, pool_size, strides=None, padding="valid", method="max",
                 data_format="channels_last"):
    """Keras ``MaxPooling2D`` / ``AveragePooling2D`` forward, without Keras.

    ``strides`` defaults to ``pool_size``. Output per axis: "valid"
    ``floor((in - pool_size) / strides) + 1``; "same" ``ceil(in / strides)`` with the odd
    padding cell at the bottom/right. Padding never counts: MAX ignores it and AVE divides by the
    number of input cells in the window. Caffe's Pooling rounds up instead (3x3/2 on 112 gives
    Caffe 56, Keras "valid" 55); port a Caffe pooling faithfully with :func:`pool2d_caffe`.
    """
    x = as_array(x, "x")
    method = pool_method(method, "Keras MaxPooling2D | AveragePooling2D")
    geometry = keras_pool2d_geometry(x.shape, pool_size, strides, padding, data_format)
    dtype = compute_dtype(("x", x))
    channels_last = data_format == "channels_last"
    y = _engine.pool(geometry, method, x.transpose(0, 3, 1, 2) if channels_last else x, dtype)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)) if channels_last else y
