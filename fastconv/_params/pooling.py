"""Pooling, Caffe's (ceil-rounded, clipped) and Keras's: parameters and the pooled size."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import (
    as_pair,
    check_addressable,
    check_non_negative,
    check_positive,
    format_dims,
    format_pair,
)
from .keras_conv import check_keras_format, keras_out_size_and_pad, keras_spatial


@dataclass(frozen=True)
class Pool2DGeometry:
    """Shape of one 2-D pooling, NCHW, as the C core sees it. ``count_padding``: whether the
    average's divisor counts padding cells (Caffe: up to in + pad) or only input cells (Keras)."""

    batch: int
    channels: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    count_padding: bool

    @property
    def output_shape(self):
        return (self.batch, self.channels, self.out_h, self.out_w)


POOL_METHODS = ("max", "ave")


def pool_method(method, meaning="Caffe pool: MAX | AVE; STOCHASTIC is not supported"):
    """'max' or 'ave' (Caffe's MAX/AVE; 'avg'/'average' accepted) -> 'max' or 'ave';
    ``meaning`` says what the argument stands for in the caller's framework."""
    # Only a string is looked up (a list would not even hash).
    name = method.lower() if isinstance(method, str) else None
    name = {"avg": "ave", "average": "ave"}.get(name, name)
    if name not in POOL_METHODS:
        raise ValueError(f"method={method!r} must be 'max' or 'ave' ({meaning})")
    return name


def caffe_pool_out_size(in_size, kernel, stride, pad, any_pad, ceil_mode=True):
    """Caffe's pooled size: ``ceil((in + 2*pad - kernel) / stride) + 1`` (``floor`` for the
    ``round_mode: FLOOR`` of later Caffe builds), then one less if the
    layer has any padding and the last window would start at or past ``in + pad`` (it must
    start inside the image or its left padding).

    ``any_pad`` is whether pad_h or pad_w is nonzero: Caffe tests ``if (pad_h_ || pad_w_)`` once
    and then clips both axes, so a pad on one axis clips the other too (seen in real Caffe's
    golden data: kernel 3x1, stride 2x4, pad 1x0 on 6x3 gives a width of 1, not 2)."""
    numerator = in_size + 2 * pad - kernel
    out = (-((-numerator) // stride) if ceil_mode else numerator // stride) + 1
    if any_pad and (out - 1) * stride >= in_size + pad:
        out -= 1
    return out


LAST_WINDOW_PAST_INPUT = (
    "Caffe's ceil rule puts the last window entirely past the input (stride > kernel with no "
    "padding on the layer); real Caffe outputs -FLT_MAX (MAX) or an empty sum over a negative "
    "window size, -0 or +0 (AVE; NaN where that size is 0) there and its MAX backward corrupts "
    "memory, so fastconv refuses it"
)


def last_window_past_input(in_size, out_size, stride, pad):
    """Whether an axis's last pooling window starts at or past the end of the input (Caffe's
    ceil rule with no padding to clip it): fastconv refuses it (LAST_WINDOW_PAST_INPUT)."""
    return (out_size - 1) * stride - pad >= in_size


def caffe_pool2d_geometry(x_shape, kernel_size, stride, pad, global_pooling, ceil_mode=True):
    """Check a Caffe Pooling call (NCHW) and infer its geometry (``ceil_mode=False``: the
    ``round_mode: FLOOR`` of later Caffe builds)."""
    if len(x_shape) != 4:
        raise ValueError(
            f"x must be 4-D (N, C, H, W) as Caffe's bottom blob; got shape {tuple(x_shape)} "
            "(Caffe's pooling is 2-D only)"
        )
    batch, channels, in_h, in_w = (int(s) for s in x_shape)
    if in_h < 1 or in_w < 1:
        # Padding alone would make windows with no input cell: nothing to take a maximum of.
        raise ValueError(f"x has an empty spatial axis {in_h}x{in_w}; nothing to pool")
    if not isinstance(global_pooling, (bool, np.bool_)):
        raise TypeError(f"global_pooling={global_pooling!r} must be True or False")
    if global_pooling:
        # Caffe: "With Global_pooling: true Filter size cannot specified" / no pad or stride.
        if kernel_size is not None:
            raise ValueError(
                f"kernel_size={kernel_size!r} cannot be given with global_pooling=True (the "
                "window is the whole map); pass kernel_size=None"
            )
        if as_pair(stride, "stride", "stride") != (1, 1) or as_pair(pad, "pad", "pad") != (0, 0):
            raise ValueError(
                f"stride={stride!r} and pad={pad!r} must keep their defaults (1 and 0) with "
                "global_pooling=True (Caffe: 'With Global_pooling: true; only pad = 0 and "
                "stride = 1')"
            )
        kernel, stride, pad = (in_h, in_w), (1, 1), (0, 0)
    else:
        if kernel_size is None:
            raise ValueError("kernel_size is required unless global_pooling=True")
        kernel = as_pair(kernel_size, "kernel_size", "kernel_size")
        stride = as_pair(stride, "stride", "stride")
        pad = as_pair(pad, "pad", "pad")
        check_positive(kernel, "kernel_size", "kernel_size")
        check_positive(stride, "stride", "stride")
        check_non_negative(pad, "pad", "pad")
        for p, k in zip(pad, kernel):
            if p >= k:
                raise ValueError(
                    f"pad={format_pair(pad)} must be smaller than "
                    f"kernel_size={format_pair(kernel)} (Caffe requires pad < kernel in pooling)"
                )
    out = tuple(caffe_pool_out_size(*axis, any_pad=pad != (0, 0), ceil_mode=ceil_mode)
                for axis in zip((in_h, in_w), kernel, stride, pad))
    if min(out) < 1:
        raise ValueError(
            f"no output: pooling {in_h}x{in_w} with kernel {format_dims(kernel)}, stride "
            f"{format_pair(stride)}, pad {format_pair(pad)}: Caffe's "
            f"{'ceil' if ceil_mode else 'floor'}((in + 2*pad - kernel)/stride) + 1 gives "
            f"{format_dims(out)}"
        )
    for axis, size in enumerate((in_h, in_w)):
        if last_window_past_input(size, out[axis], stride[axis], pad[axis]):
            raise ValueError(
                f"kernel_size={format_pair(kernel)}, stride={format_pair(stride)}, "
                f"pad={format_pair(pad)} on {in_h}x{in_w}: {LAST_WINDOW_PAST_INPUT}"
            )
    check_addressable((batch, channels, *out),
                      f"kernel_size={format_pair(kernel)} with pad={format_pair(pad)}")
    return Pool2DGeometry(
        batch=batch, channels=channels, in_h=in_h, in_w=in_w, out_h=out[0], out_w=out[1],
        kernel_h=kernel[0], kernel_w=kernel[1], stride_h=stride[0], stride_w=stride[1],
        pad_top=pad[0], pad_left=pad[1], count_padding=True,
    )


def keras_pool2d_geometry(x_shape, pool_size, strides, padding, data_format):
    """Check a Keras ``MaxPooling2D``/``AveragePooling2D`` call; geometry in NCHW terms.

    "valid": ``floor((in - pool) / stride) + 1``; "same": ``ceil(in / stride)`` with the odd
    padding cell after the input; padding never counts in the average's divisor.
    """
    padding = check_keras_format(data_format, padding, "pooling")
    batch, channels, in_size = keras_spatial(x_shape, data_format)
    kernel = as_pair(pool_size, "pool_size", "pool_size")
    strides = kernel if strides is None else as_pair(strides, "strides", "strides")
    check_positive(kernel, "pool_size", "pool_size", framework="Keras")
    check_positive(strides, "strides", "pooling strides", framework="Keras")
    out, pad = [], []
    for axis in range(2):
        size, (before, _) = keras_out_size_and_pad(in_size[axis], kernel[axis], strides[axis], 1,
                                                   padding)
        out.append(size)
        pad.append(before)
    if min(out) < 1:
        raise ValueError(
            f"no output: pooling {format_dims(in_size)} with pool_size {format_dims(kernel)}, "
            f"strides {format_pair(strides)} and padding={padding!r} gives {format_dims(out)}"
        )
    return Pool2DGeometry(
        batch=batch, channels=channels, in_h=in_size[0], in_w=in_size[1], out_h=out[0],
        out_w=out[1], kernel_h=kernel[0], kernel_w=kernel[1], stride_h=strides[0],
        stride_w=strides[1], pad_top=pad[0], pad_left=pad[1], count_padding=False,
    )
