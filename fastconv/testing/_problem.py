"""One convolution call, whatever layout it came in, as fastconv's core computes it.

The oracle (reference, tolerance, diagnosis) works on a :class:`ConvProblem`: NCHW data, OIHW
weights and a padding rule, always in float64 so the reference carries no rounding error worth
the name. Re-running it under a porting mistake is a ``dataclasses.replace`` away.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._engine import forward as _forward
from .._params.caffe_conv import caffe_conv2d_geometry, caffe_conv_out_size
from .._params.common import Conv2DGeometry, as_array, extent
from .._params.keras_conv import keras_conv2d_geometry, keras_out_size_and_pad

CAFFE_PARAMS = ("stride", "pad", "dilation", "group")
KERAS_PARAMS = ("strides", "padding", "dilation_rate", "groups", "data_format")


@dataclass(frozen=True)
class Padding:
    """How a convolution pads and sizes its output, per spatial axis.

    ``mode`` is ``"caffe"`` (symmetric ``pad``, C's truncating division), ``"floor"`` (symmetric
    ``pad``, floor division: what a port that pads then runs Keras ``'valid'`` computes), or
    Keras's ``"same"`` / ``"valid"``.
    """

    mode: str
    pad: tuple = (0, 0)

    def out_size_and_pad_before(self, in_size, kernel, stride, dilation, axis):
        if self.mode in ("same", "valid"):
            out, (before, _) = keras_out_size_and_pad(in_size, kernel, stride, dilation, self.mode)
            return out, before
        pad = self.pad[axis]
        if self.mode == "caffe":
            return caffe_conv_out_size(in_size, kernel, stride, pad, dilation), pad
        return (in_size + 2 * pad - extent(kernel, dilation)) // stride + 1, pad


@dataclass(frozen=True)
class ConvProblem:
    """x (N, C, H, W), w (O, C/group, kh, kw), b (O,) or None, all float64, plus the geometry.

    ``channels_last`` records the caller's layout: outputs are handed back in it.
    """

    x: np.ndarray
    w: np.ndarray
    b: Optional[np.ndarray]
    stride: tuple
    dilation: tuple
    group: int
    padding: Padding
    channels_last: bool

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def kernel_dim(self):
        """K, the length of each output's dot product: C/group * kernel_h * kernel_w."""
        return int(np.prod(self.w.shape[1:]))

    def geometry(self):
        """The core's geometry, or None when this problem has no valid output shape."""
        batch, channels, in_h, in_w = self.x.shape
        out_channels, group_channels, kernel_h, kernel_w = self.w.shape
        if self.group < 1 or group_channels * self.group != channels or out_channels % self.group:
            return None
        if self.b is not None and self.b.shape != (out_channels,):
            return None
        out_h, pad_top = self.padding.out_size_and_pad_before(
            in_h, kernel_h, self.stride[0], self.dilation[0], 0)
        out_w, pad_left = self.padding.out_size_and_pad_before(
            in_w, kernel_w, self.stride[1], self.dilation[1], 1)
        if out_h < 0 or out_w < 0:
            return None
        return Conv2DGeometry(
            batch=batch, in_channels=channels, in_h=in_h, in_w=in_w,
            out_channels=out_channels, out_h=out_h, out_w=out_w,
            kernel_h=kernel_h, kernel_w=kernel_w,
            stride_h=self.stride[0], stride_w=self.stride[1], pad_top=pad_top, pad_left=pad_left,
            dilation_h=self.dilation[0], dilation_w=self.dilation[1], group=self.group,
        )

    def output_shape(self):
        """Shape of the output in the caller's layout, or None."""
        geometry = self.geometry()
        if geometry is None:
            return None
        n, c, h, w = geometry.output_shape
        return (n, h, w, c) if self.channels_last else (n, c, h, w)

    def to_caller(self, y_nchw):
        return y_nchw.transpose(0, 2, 3, 1) if self.channels_last else y_nchw

    def run(self):
        """The output in float64, in the caller's layout."""
        geometry = self.geometry()
        return self.to_caller(_forward(geometry, self.x, self.w, self.b, np.float64))

    def magnitude(self):
        """Per output element, ``S = sum_j |x_j * w_j| + |b|``: the size of the terms summed.

        Rounding error scales with S, not with the (possibly cancelled) result.
        """
        geometry = self.geometry()
        s = _forward(geometry, np.abs(self.x), np.abs(self.w), None, np.float64)
        if self.b is not None:
            s += np.abs(self.b)[None, :, None, None]
        return self.to_caller(s)

    def magnitude_rms(self):
        """Per output element, ``sqrt(sum_j (x_j * w_j)**2)``: the random-sign error scale."""
        geometry = self.geometry()
        return self.to_caller(np.sqrt(_forward(geometry, self.x ** 2, self.w ** 2, None, np.float64)))


def problem_from_call(x, w, b, layout, params):
    """Check a conv call in the caller's vocabulary and return its :class:`ConvProblem`."""
    x = as_array(x, "x")
    w = as_array(w, "w" if layout == "caffe" else "kernel")
    b = None if b is None else as_array(b, "b" if layout == "caffe" else "bias")
    b_shape = None if b is None else b.shape
    if layout == "caffe":
        _check_names(params, CAFFE_PARAMS, layout)
        geometry = caffe_conv2d_geometry(
            x.shape, w.shape, b_shape, params.get("stride", 1), params.get("pad", 0),
            params.get("dilation", 1), params.get("group", 1))
        x_nchw, w_oihw, padding = x, w, Padding("caffe", (geometry.pad_top, geometry.pad_left))
        channels_last = False
    elif layout == "keras":
        _check_names(params, KERAS_PARAMS, layout)
        data_format = params.get("data_format", "channels_last")
        padding_name = params.get("padding", "valid")
        geometry = keras_conv2d_geometry(
            x.shape, w.shape, b_shape, params.get("strides", 1), padding_name,
            params.get("dilation_rate", 1), params.get("groups", 1), data_format)
        channels_last = data_format == "channels_last"
        x_nchw = x.transpose(0, 3, 1, 2) if channels_last else x
        w_oihw, padding = w.transpose(3, 2, 0, 1), Padding(padding_name.lower())
    else:
        raise ValueError(f"layout={layout!r} must be 'caffe' (NCHW/OIHW) or 'keras' (HWIO kernel)")
    as64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    return ConvProblem(
        x=as64(x_nchw), w=as64(w_oihw), b=None if b is None else as64(b),
        stride=(geometry.stride_h, geometry.stride_w),
        dilation=(geometry.dilation_h, geometry.dilation_w),
        group=geometry.group, padding=padding, channels_last=channels_last,
    )


def _check_names(params, allowed, layout):
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        other = KERAS_PARAMS if layout == "caffe" else CAFFE_PARAMS
        hint = ""
        if set(unknown) <= set(other):
            hint = f" ({', '.join(unknown)} belong to layout={'keras' if layout == 'caffe' else 'caffe'!r})"
        raise TypeError(
            f"unknown convolution parameter(s) {', '.join(unknown)} for layout={layout!r}; "
            f"expected some of {', '.join(allowed)}{hint}"
        )
