"""Hypothesis strategies for valid Caffe and Keras calls (the only module importing hypothesis).

``caffe_conv_cases()`` draws ``(x, w, b, params)`` for ``conv2d_caffe(x, w, b, **params)`` /
``assert_conv_close(actual, x, w, b, **params)``; ``keras_conv_cases()`` the same for
``layout='keras'``; ``caffe_deconv_cases()`` ``(x, w, b, params)`` for ``deconv2d_caffe`` /
``assert_deconv_close``; ``caffe_pool_cases()`` ``(x, kernel_size, params)`` for
``pool2d_caffe(x, kernel_size, **params)`` / ``assert_pool_close(actual, x, kernel_size,
**params)``. Every draw is a call Caffe (or Keras) accepts: groups divide both channel counts,
and the input is large enough for at least one output.

Caffe accepts geometries other frameworks refuse. ``caffe_only_geometries=True`` (the default)
draws them too: a convolution whose kernel extent exceeds the padded input by less than the
stride (Caffe's truncating division still makes one output; PyTorch and ONNX refuse), a
pooling whose pad exceeds half the kernel (PyTorch refuses) or whose window exceeds the padded
input. Pass ``caffe_only_geometries=False`` to test a port to a framework that refuses them.
Deconvolution has no such geometry for PyTorch: its ``conv_transpose2d`` accepts every
Deconvolution Caffe accepts (measured with PyTorch 2.13 on CPU, float32 and float64: pads
beyond the kernel's extent, strides above it, dilation, groups, a 1-cell output; it refuses only
an ``output_padding`` Caffe has no field for, negative pads and an output below 1 cell, which
Caffe and fastconv refuse too), so both settings draw the same Deconvolution geometries.

Arrays are integer-valued and exact in float32 by default (``exact=True``: compare with
``exact=True``, or any tolerance); ``exact=False`` draws standard normal float32 data.
Non-square kernels, strides, pads and dilations come up as often as square ones.
"""
from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from .._params.pooling import caffe_pool_out_size
from .exact import DEFAULT_MAX_ABS, exact_conv_inputs, exact_max_abs


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
                      max_channels=6, max_group=3, max_batch=2, caffe_only_geometries=True):
    """A dict: ``x_shape`` (NCHW), ``w_shape`` (OIHW), ``bias`` and the conv2d_caffe keywords
    ``stride``, ``pad``, ``dilation``, ``group``. ``caffe_only_geometries=False`` leaves out
    the truncation case (the padded input always holds the kernel's extent)."""
    group, channels, out_channels = _channels(draw, max_channels, max_group)
    kernel = draw(_pairs(1, max_kernel))
    stride = draw(_pairs(1, max_stride))
    dilation = draw(_pairs(1, max_dilation))
    pad = draw(st.one_of(st.just((0, 0)), _pairs(0, max_kernel - 1)))
    size = []
    for axis in (0, 1):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        # Caffe makes >= 1 output when in + 2*pad - span > -stride (C division truncates);
        # elsewhere in + 2*pad >= span is needed.
        slack = stride[axis] - 1 if caffe_only_geometries else 0
        smallest = max(1, span - 2 * pad[axis] - slack)
        size.append(draw(_size_above(smallest, max_size)))
    return dict(
        x_shape=(draw(st.integers(1, max_batch)), channels, size[0], size[1]),
        w_shape=(out_channels, channels // group, kernel[0], kernel[1]),
        bias=draw(st.booleans()), stride=stride, pad=pad, dilation=dilation, group=group,
    )


@st.composite
def caffe_conv_cases(draw, *, exact=True, **limits):
    """``(x, w, b, params)``: arrays plus the keywords of conv2d_caffe (``limits`` as
    :func:`caffe_conv_params`, ``caffe_only_geometries`` included)."""
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


@st.composite
def caffe_deconv_params(draw, *, max_size=8, max_kernel=4, max_stride=3, max_dilation=2,
                        max_channels=6, max_group=3, max_batch=2, caffe_only_geometries=True):
    """A dict: ``x_shape`` (NCHW), ``w_shape`` (Caffe's Deconvolution blob ``(C_in,
    num_output/group, kh, kw)``), ``bias`` and the deconv2d_caffe keywords ``stride``, ``pad``,
    ``dilation``, ``group``. The input is large enough for ``stride*(in-1) + extent - 2*pad``
    to be at least 1. ``caffe_only_geometries`` is taken for the same signature as the other
    families' strategies; either value draws the same geometries, every one of which PyTorch's
    conv_transpose2d accepts (see the module docstring)."""
    group, channels, out_channels = _channels(draw, max_channels, max_group)
    kernel = draw(_pairs(1, max_kernel))
    stride = draw(_pairs(1, max_stride))
    dilation = draw(_pairs(1, max_dilation))
    pad = draw(st.one_of(st.just((0, 0)), _pairs(0, max_kernel)))
    size = []
    for axis in (0, 1):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        # stride*(in - 1) + span - 2*pad >= 1
        smallest = max(1, -(-(2 * pad[axis] + 1 - span) // stride[axis]) + 1)
        size.append(draw(_size_above(smallest, max_size)))
    return dict(
        x_shape=(draw(st.integers(1, max_batch)), channels, size[0], size[1]),
        w_shape=(channels, out_channels // group, kernel[0], kernel[1]),
        bias=draw(st.booleans()), stride=stride, pad=pad, dilation=dilation, group=group,
    )


@st.composite
def caffe_deconv_cases(draw, *, exact=True, **limits):
    """``(x, w, b, params)``: arrays plus the keywords of deconv2d_caffe (``limits`` as
    :func:`caffe_deconv_params`, ``caffe_only_geometries`` included)."""
    spec = draw(caffe_deconv_params(**limits))
    x_shape, w_shape, bias = spec.pop("x_shape"), spec.pop("w_shape"), spec.pop("bias")
    out_channels = w_shape[1] * spec["group"]
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if not exact:
        b = rng.standard_normal(out_channels).astype(np.float32) if bias else None
        return (rng.standard_normal(x_shape).astype(np.float32),
                rng.standard_normal(w_shape).astype(np.float32), b, spec)
    # One output sums at most C_in/group * kh * kw products: the exactness bound of
    # fastconv.testing.exact with that K.
    a = exact_max_abs(w_shape[0] // spec["group"] * w_shape[2] * w_shape[3])

    def integers(shape, limit):
        return rng.integers(-limit, limit, size=shape, endpoint=True).astype(np.float32)
    return (integers(x_shape, a), integers(w_shape, a),
            integers((out_channels,), a * a) if bias else None, spec)


@st.composite
def caffe_pool_params(draw, *, max_size=12, max_kernel=5, max_stride=3, max_channels=4,
                      max_batch=2, methods=("max", "ave"), caffe_only_geometries=True):
    """A dict: ``x_shape`` (NCHW) and the pool2d_caffe arguments ``kernel_size``, ``stride``,
    ``pad``, ``method``, ``global_pooling`` (drawn now and then). Caffe needs pad < kernel and
    refuses (as fastconv does) a last window that starts past the input;
    ``caffe_only_geometries=False`` also keeps pad <= kernel // 2 and the window within the
    padded input, as PyTorch requires."""
    method = draw(st.sampled_from(methods))
    channels, batch = draw(st.integers(1, max_channels)), draw(st.integers(1, max_batch))
    if draw(st.integers(0, 7)) == 0:
        size = draw(_pairs(1, max_size))
        return dict(x_shape=(batch, channels, *size), kernel_size=None, stride=1, pad=0,
                    method=method, global_pooling=True)
    kernel = draw(_pairs(1, max_kernel))
    stride = draw(_pairs(1, max_stride))
    pad_limit = [k // 2 if not caffe_only_geometries else k - 1 for k in kernel]
    pad = draw(st.one_of(st.just((0, 0)), st.tuples(st.integers(0, pad_limit[0]),
                                                    st.integers(0, pad_limit[1]))))
    size = []
    for axis in (0, 1):
        smallest = 1 if caffe_only_geometries else max(1, kernel[axis] - 2 * pad[axis])
        size.append(draw(_size_above(smallest, max_size)))
    for axis in (0, 1):
        out = caffe_pool_out_size(size[axis], kernel[axis], stride[axis], pad[axis],
                                  pad != (0, 0))
        # No output, or a last window entirely past the input: Caffe cannot run it.
        assume(out >= 1 and (out - 1) * stride[axis] - pad[axis] < size[axis])
    return dict(x_shape=(batch, channels, *size), kernel_size=kernel, stride=stride, pad=pad,
                method=method, global_pooling=False)


@st.composite
def caffe_pool_cases(draw, *, exact=True, **limits):
    """``(x, kernel_size, params)``: x plus the arguments of pool2d_caffe (``limits`` as
    :func:`caffe_pool_params`). ``exact=True`` draws small integers: MAX is then exact and AVE
    sums exactly (its division still rounds: compare with the default tolerance)."""
    spec = draw(caffe_pool_params(**limits))
    x_shape, kernel_size = spec.pop("x_shape"), spec.pop("kernel_size")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if exact:
        x = rng.integers(-DEFAULT_MAX_ABS, DEFAULT_MAX_ABS, size=x_shape,
                         endpoint=True).astype(np.float32)
    else:
        x = rng.standard_normal(x_shape).astype(np.float32)
    return x, kernel_size, spec
