"""Hypothesis strategies for valid Caffe and Keras convolutions (the only module importing
hypothesis).

``caffe_conv_cases()`` draws ``(x, w, b, params)`` for ``conv2d_caffe(x, w, b, **params)`` /
``assert_conv_close(actual, x, w, b, **params)``; ``keras_conv_cases()`` the same for
``layout='keras'``. Every draw is a call Caffe (or Keras) accepts: groups divide both channel
counts, and the input is large enough for at least one output under Caffe's truncating
division (so the truncation case is drawn too) or Keras's floor. Arrays are integer-valued and
exact in float32 by default (``exact=True``: compare with ``exact=True``); ``exact=False``
draws standard normal float32 data. Non-square kernels, strides, pads and dilations come up
as often as square ones.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .exact import exact_conv_inputs


def _pairs(low, high):
    return st.tuples(st.integers(low, high), st.integers(low, high))


def _size_above(smallest, max_size):
    """Sizes from ``smallest`` up, with the edge cases (the smallest two) drawn often."""
    return st.one_of(st.sampled_from([smallest, smallest + 1]),
                     st.integers(smallest, smallest + max_size))


def _with_arrays(draw, spec, kernel_key, layout, exact):
    """Replace a params dict's shapes by drawn arrays: ``(x, w, b, conv keywords)``."""
    x_shape, w_shape, bias = spec.pop("x_shape"), spec.pop(kernel_key), spec.pop("bias")
    seed = draw(st.integers(0, 2 ** 32 - 1))
    if exact:
        return (*exact_conv_inputs(x_shape, w_shape, layout=layout, bias=bias, seed=seed), spec)
    rng = np.random.default_rng(seed)
    out_channels = w_shape[0] if layout == "caffe" else w_shape[3]
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    return x, w, rng.standard_normal(out_channels).astype(np.float32) if bias else None, spec


def _channels(draw, max_channels, max_group):
    group = draw(st.integers(1, max_group))
    in_per_group = draw(st.integers(1, max(1, max_channels // group)))
    out_per_group = draw(st.integers(1, max(1, max_channels // group)))
    return group, in_per_group * group, out_per_group * group


@st.composite
def caffe_conv_params(draw, *, max_size=12, max_kernel=5, max_stride=3, max_dilation=2,
                      max_channels=6, max_group=3, max_batch=2):
    """A dict: ``x_shape`` (NCHW), ``w_shape`` (OIHW), ``bias`` and the conv2d_caffe keywords
    ``stride``, ``pad``, ``dilation``, ``group``."""
    group, channels, out_channels = _channels(draw, max_channels, max_group)
    kernel = draw(_pairs(1, max_kernel))
    stride = draw(_pairs(1, max_stride))
    dilation = draw(_pairs(1, max_dilation))
    pad = draw(st.one_of(st.just((0, 0)), _pairs(0, max_kernel - 1)))
    size = []
    for axis in (0, 1):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        # Caffe makes >= 1 output when in + 2*pad - span > -stride (C division truncates).
        smallest = max(1, span - 2 * pad[axis] - stride[axis] + 1)
        size.append(draw(_size_above(smallest, max_size)))
    return dict(
        x_shape=(draw(st.integers(1, max_batch)), channels, size[0], size[1]),
        w_shape=(out_channels, channels // group, kernel[0], kernel[1]),
        bias=draw(st.booleans()), stride=stride, pad=pad, dilation=dilation, group=group,
    )


@st.composite
def caffe_conv_cases(draw, *, exact=True, **limits):
    """``(x, w, b, params)``: arrays plus the keywords of conv2d_caffe."""
    return _with_arrays(draw, draw(caffe_conv_params(**limits)), "w_shape", "caffe", exact)


@st.composite
def keras_conv_params(draw, *, max_size=12, max_kernel=5, max_stride=3, max_dilation=2,
                      max_channels=6, max_group=3, max_batch=2, keras_compatible=True):
    """A dict: ``x_shape`` (NHWC), ``kernel_shape`` (HWIO), ``bias`` and the conv2d_keras
    keywords ``strides``, ``padding``, ``dilation_rate``, ``groups``. With
    ``keras_compatible`` (default), strides > 1 never meet dilation_rate > 1 (on any axes),
    which Keras's Conv2D refuses."""
    groups, channels, filters = _channels(draw, max_channels, max_group)
    kernel = draw(_pairs(1, max_kernel))
    strides = draw(_pairs(1, max_stride))
    dilation = draw(_pairs(1, max_dilation))
    if keras_compatible and max(strides) > 1:
        dilation = (1, 1)
    padding = draw(st.sampled_from(["valid", "same"]))
    size = []
    for axis in (0, 1):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        smallest = span if padding == "valid" else 1
        size.append(draw(_size_above(smallest, max_size)))
    return dict(
        x_shape=(draw(st.integers(1, max_batch)), size[0], size[1], channels),
        kernel_shape=(kernel[0], kernel[1], channels // groups, filters),
        bias=draw(st.booleans()), strides=strides, padding=padding, dilation_rate=dilation,
        groups=groups,
    )


@st.composite
def keras_conv_cases(draw, *, exact=True, **limits):
    """``(x, kernel, bias, params)``: arrays plus the keywords of conv2d_keras."""
    return _with_arrays(draw, draw(keras_conv_params(**limits)), "kernel_shape", "keras", exact)
