"""One convolution call, whatever layout it came in, and the porting mistakes made on it.

The oracle (reference, tolerance, diagnosis) works on a :class:`ConvProblem`: NCHW data, OIHW
weights and a padding rule, always in float64 so the reference carries no rounding error worth
the name. Re-running it under a porting mistake is a ``dataclasses.replace`` away; the
mistakes a convolution port makes are :meth:`ConvProblem.mistakes` (searched by
fastconv.testing.diagnosis).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

# The lower modules this oracle uses (public names only; re-pointed when they move).
from .._params.caffe_conv import caffe_conv2d_geometry, caffe_conv_out_size
from .._params.common import as_array, extent, format_pair
from .._params.keras_conv import keras_conv2d_geometry, keras_out_size_and_pad
from ..caffe import conv2d_caffe
from .compare import default_rtol
from .diagnosis import Change, Mistake, bias_missing_change, layout_changes
from .diagnosis import tf32_changes

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

    def out_sizes_and_pads(self):
        """``((out_h, pad_top), (out_w, pad_left))``, or None when this call has no output
        shape (channels that do not split into the groups, a wrong bias shape)."""
        _, channels, in_h, in_w = self.x.shape
        out_channels, group_channels, kernel_h, kernel_w = self.w.shape
        if self.group < 1 or group_channels * self.group != channels or out_channels % self.group:
            return None
        if self.b is not None and self.b.shape != (out_channels,):
            return None
        sizes = tuple(self.padding.out_size_and_pad_before(
            size, kernel, self.stride[axis], self.dilation[axis], axis)
            for axis, (size, kernel) in enumerate(((in_h, kernel_h), (in_w, kernel_w))))
        return None if min(out for out, _ in sizes) < 0 else sizes

    def output_shape(self):
        """Shape of the output in the caller's layout, or None."""
        sizes = self.out_sizes_and_pads()
        if sizes is None:
            return None
        (out_h, _), (out_w, _) = sizes
        shape = (self.x.shape[0], self.w.shape[0], out_h, out_w)
        return (shape[0], out_h, out_w, shape[1]) if self.channels_last else shape

    @property
    def layout(self):
        return "nhwc" if self.channels_last else "nchw"

    def to_caller(self, y_nchw):
        return y_nchw.transpose(0, 2, 3, 1) if self.channels_last else y_nchw

    def _convolve(self, x, w, b):
        """conv2d_caffe (float64 in, float64 out) under this problem's padding rule."""
        sizes = self.out_sizes_and_pads()
        if sizes is None:
            return None
        (out_h, pad_top), (out_w, pad_left) = sizes
        if out_h == 0 or out_w == 0:   # a flooring port's empty output
            return self.to_caller(np.zeros((x.shape[0], w.shape[0], out_h, out_w)))
        if self.padding.mode == "caffe":
            y = conv2d_caffe(x, w, b, stride=self.stride, pad=self.padding.pad,
                             dilation=self.dilation, group=self.group)
        else:
            # Other rules pad unevenly: pad explicitly, enough for every window, and crop.
            after = [max((out - 1) * stride + extent(kernel, dilation) - (size + before), 0)
                     for out, before, stride, kernel, dilation, size in zip(
                         (out_h, out_w), (pad_top, pad_left), self.stride, w.shape[2:],
                         self.dilation, x.shape[2:])]
            padded = np.pad(x, ((0, 0), (0, 0), (pad_top, after[0]), (pad_left, after[1])))
            y = conv2d_caffe(padded, w, b, stride=self.stride, dilation=self.dilation,
                             group=self.group)[:, :, :out_h, :out_w]
        return self.to_caller(y)

    def output(self):
        """The output in float64, in the caller's layout (None: no valid shape)."""
        return self._convolve(self.x, self.w, self.b)

    def magnitude(self):
        """Per output element, ``S = sum_j |x_j * w_j| + |b|``: the size of the terms summed.

        Rounding error scales with S, not with the (possibly cancelled) result.
        """
        return self._convolve(np.abs(self.x), np.abs(self.w),
                              None if self.b is None else np.abs(self.b))

    def magnitude_bound(self):
        """An upper bound on every element of :meth:`magnitude`."""
        weight_sums = np.abs(self.w).reshape(self.w.shape[0], -1).sum(axis=1)
        bias = 0.0 if self.b is None else float(np.abs(self.b).max())
        return float(np.abs(self.x).max(initial=0.0)) * float(weight_sums.max(initial=0.0)) + bias

    def defined(self):
        return None   # every output of a convolution is defined

    def default_rtol(self, dtype):
        return default_rtol(dtype, self.kernel_dim)

    def cost(self):
        """Multiply-adds of one re-run."""
        shape = self.output_shape()
        return 0 if shape is None else float(np.prod(shape)) * self.kernel_dim

    def mistakes(self):
        """The porting mistakes that change this call, as :class:`Change` s."""
        return conv_mistakes(self)


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


# ---------------------------------------------------------------------------------------------
# The catalogue: what convolution ports get wrong.

_SAME_FIX = ("use keras.layers.ZeroPadding2D((pad_h, pad_w)) then Conv2D(padding='valid') "
             "(fastconv.keras.from_caffe builds it); 'same' pads the odd cell only at the "
             "bottom/right")


def _swap(pair):
    return (pair[1], pair[0])


def conv_mistakes(p):
    """:class:`Change` s for each mistake that changes this call."""
    yield from _kernel_mistakes(p)
    yield from layout_changes(p)
    x = p.x
    yield Change(Mistake("input_hw_swapped", "input's height and width swapped",
                         "NCHW -> NHWC is x.transpose(0, 2, 3, 1), not (0, 3, 2, 1)",
                         family="input_layout"),
                 p.replace(x=x.transpose(0, 1, 3, 2)))
    yield from _padding_mistakes(p)
    if p.stride[0] != p.stride[1]:
        yield Change(Mistake("stride_hw_swapped",
                             f"stride_h and stride_w swapped (used {_swap(p.stride)})",
                             f"strides=({p.stride[0]}, {p.stride[1]}): Caffe's stride_h comes "
                             "first"), p.replace(stride=_swap(p.stride)))
    if p.dilation[0] != p.dilation[1]:
        yield Change(Mistake("dilation_hw_swapped", "dilation h and w swapped",
                             f"dilation_rate=({p.dilation[0]}, {p.dilation[1]})",
                             family="dilation"), p.replace(dilation=_swap(p.dilation)))
    if p.dilation != (1, 1):
        yield Change(Mistake("dilation_dropped", f"dilation {p.dilation} dropped (ran with 1)",
                             f"pass dilation_rate=({p.dilation[0]}, {p.dilation[1]}) (Caffe's "
                             "dilation)", family="dilation"), p.replace(dilation=(1, 1)))
    yield from bias_missing_change(p, "load the bias too: layer.set_weights([kernel, b]) with "
                                      "use_bias=True (Caffe's bias_term defaults to true)")
    if p.group > 1:
        yield from _group_mistakes(p)
    yield from tf32_changes(p)


def _kernel_mistakes(p):
    w = p.w
    out_ch, group_ch, kernel_h, kernel_w = w.shape
    yield Change(Mistake("kernel_reshaped_caffe_to_keras",
                         "kernel reshaped instead of transposed (Caffe OIHW -> Keras HWIO)",
                         "kernel = fastconv.caffe_to_keras_kernel(w)  # w.transpose(2, 3, 1, 0), "
                         "not w.reshape(kh, kw, C, O)", family="kernel_layout"),
                 p.replace(w=w.reshape(kernel_h, kernel_w, group_ch, out_ch).transpose(3, 2, 0, 1)))
    yield Change(Mistake("kernel_reshaped_keras_to_caffe",
                         "kernel reshaped instead of transposed (Keras HWIO -> Caffe OIHW)",
                         "w = fastconv.keras_to_caffe_kernel(kernel)  # kernel.transpose(3, 2, 0, "
                         "1), not kernel.reshape(O, C, kh, kw)", family="kernel_layout"),
                 p.replace(w=w.transpose(2, 3, 1, 0).reshape(w.shape)))
    yield Change(Mistake("kernel_flipped",
                         "kernel spatially flipped (Theano-style true convolution; Caffe and "
                         "TensorFlow cross-correlate)",
                         "kernel = fastconv.flip_kernel(kernel)  # kernel[::-1, ::-1] for HWIO, "
                         "w[:, :, ::-1, ::-1] for OIHW"),
                 p.replace(w=w[:, :, ::-1, ::-1]))
    yield Change(Mistake("kernel_hw_swapped",
                         "kernel's spatial axes swapped (kernel_h <-> kernel_w, e.g. "
                         "w.transpose(3, 2, 1, 0) instead of (2, 3, 1, 0))",
                         "kernel = w.transpose(2, 3, 1, 0) (fastconv.caffe_to_keras_kernel) and "
                         "kernel_size=(kernel_h, kernel_w) in that order", family="kernel_layout"),
                 p.replace(w=w.transpose(0, 1, 3, 2)))
    if kernel_h != kernel_w:
        yield Change(Mistake("kernel_shape_swapped",
                             "kernel built as kernel_w x kernel_h and the weights reshaped into it",
                             "kernel_size=(kernel_h, kernel_w): Caffe's kernel_h is the height",
                             family="kernel_layout"),
                     p.replace(w=w.reshape(out_ch, group_ch, kernel_w, kernel_h)))


def _padding_mistakes(p):
    mode, pad = p.padding.mode, p.padding.pad
    if mode == "caffe":
        yield Change(Mistake("same_instead_of_caffe_pad",
                             f"Keras padding='same' used for Caffe's symmetric "
                             f"pad={format_pair(pad)}", _SAME_FIX, family="padding"),
                     p.replace(padding=Padding("same")))
        if pad != (0, 0):
            yield Change(Mistake("pad_dropped",
                                 f"Caffe's pad={format_pair(pad)} dropped (padding='valid')",
                                 f"add keras.layers.ZeroPadding2D(({pad[0]}, {pad[1]})) before "
                                 "the convolution", family="padding"),
                         p.replace(padding=Padding("valid")))
        if pad[0] != pad[1]:
            yield Change(Mistake("pad_hw_swapped", f"pad_h and pad_w swapped (used {_swap(pad)})",
                                 f"ZeroPadding2D(({pad[0]}, {pad[1]})): Caffe's pad_h comes first",
                                 family="padding"),
                         p.replace(padding=Padding("caffe", _swap(pad))))
        floored = p.replace(padding=Padding("floor", pad))
        if floored.output_shape() != p.output_shape():
            yield Change(Mistake("floor_instead_of_truncation",
                                 "output size computed with floor division; Caffe's C division "
                                 "truncates toward zero and makes 1 output where the kernel's "
                                 "extent exceeds the padded input by less than the stride",
                                 "pad the bottom/right with extent - (in + 2*pad) extra zeros so "
                                 "'valid' makes that output (fastconv.keras.from_caffe with "
                                 "input_size does it)", family="padding"), floored)
        return
    if mode == "same":
        total_h, total_w = _same_totals(p)
        # A symmetric port of an odd total pads half of it rounded down or up on both sides.
        for rounding in sorted({0, total_h % 2, total_w % 2}):
            sym = ((total_h + rounding) // 2, (total_w + rounding) // 2)
            yield Change(Mistake("caffe_pad_instead_of_same",
                                 f"Caffe-style symmetric pad={format_pair(sym)} used where Keras "
                                 "'same' pads the odd extra cell only at the bottom/right",
                                 "use padding='same', or ZeroPadding2D(((top, bottom), (left, "
                                 "right))) with the extra cell at the bottom/right",
                                 family="padding"),
                         p.replace(padding=Padding("caffe", sym)))
        yield Change(Mistake("valid_instead_of_same", "padding='valid' used where 'same' was meant",
                             "padding='same'", family="padding"), p.replace(padding=Padding("valid")))
    else:
        yield Change(Mistake("same_instead_of_valid", "padding='same' used where 'valid' was meant",
                             "padding='valid'", family="padding"), p.replace(padding=Padding("same")))


def _same_totals(p):
    totals = []
    for axis in (0, 1):
        size = p.x.shape[2 + axis]
        out, (before, after) = keras_out_size_and_pad(size, p.w.shape[2 + axis], p.stride[axis],
                                                      p.dilation[axis], "same")
        totals.append(before + after)
    return tuple(totals)


def _group_mistakes(p):
    x = p.x
    batch, channels, height, width = x.shape
    block = channels // p.group
    groups_reversed = x.reshape(batch, p.group, block, height, width)[:, ::-1].reshape(x.shape)
    yield Change(Mistake("groups_swapped", "channel groups swapped (group g read the input "
                         "channels of group G-1-g)",
                         "group g uses input channels [g*C/G, (g+1)*C/G) and filters "
                         "[g*O/G, (g+1)*O/G), in order", family="groups"),
                 p.replace(x=groups_reversed))
    interleaved = x.reshape(batch, block, p.group, height, width).transpose(0, 2, 1, 3, 4)
    yield Change(Mistake("groups_interleaved", "input channels assigned to groups round-robin "
                         "(channel c in group c % G) instead of in contiguous blocks",
                         "group g uses the contiguous input channels [g*C/G, (g+1)*C/G)",
                         family="groups"),
                 p.replace(x=interleaved.reshape(x.shape)))
    groups, axis = p.group, 3 if p.channels_last else 1

    def interleave(y):
        moved = np.moveaxis(y, axis, -1)
        per_group = moved.shape[-1] // groups
        mixed = moved.reshape(*moved.shape[:-1], groups, per_group).swapaxes(-1, -2)
        return np.moveaxis(mixed.reshape(moved.shape), -1, axis)
    yield Change(Mistake("output_groups_interleaved", "output channels of the groups interleaved "
                         "(filter j of group g at j*G + g instead of g*O/G + j), e.g. a "
                         "DepthwiseConv2D depth_multiplier order mix-up",
                         "filter j of group g is output channel g*O/G + j (Caffe and Keras "
                         "DepthwiseConv2D order: c*depth_multiplier + m)"), output=interleave)
