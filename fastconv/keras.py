"""Keras-layout convolution: ``keras.layers.Conv2D`` semantics computed by fastconv's core.

Importing this module never imports TensorFlow or Keras.
"""
from __future__ import annotations

import numpy as np

from ._params import as_array, compute_dtype, keras_conv2d_geometry
from .caffe import _forward


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
    x = as_array(x, "x")
    kernel = as_array(kernel, "kernel")
    bias = None if bias is None else as_array(bias, "bias")
    geometry = keras_conv2d_geometry(
        x.shape, kernel.shape, None if bias is None else bias.shape,
        strides, padding, dilation_rate, groups, data_format,
    )
    dtype = compute_dtype(("x", x), ("kernel", kernel), ("bias", bias))
    channels_last = data_format == "channels_last"
    x_nchw = x.transpose(0, 3, 1, 2) if channels_last else x
    y = _forward(geometry, x_nchw, kernel.transpose(3, 2, 0, 1), bias, dtype)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)) if channels_last else y
