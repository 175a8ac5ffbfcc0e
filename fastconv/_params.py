"""Argument checking and shape inference for every fastconv entry point, in one place.

Everything that can be wrong with a call is found here, before anything crosses into C, and
reported in the user's vocabulary: the argument, the value seen, the rule, and the Caffe or
Keras parameter it corresponds to.
"""
from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass

import numpy as np

# The two element types the C core computes in.
NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class Conv2DGeometry:
    """Shape of one 2-D convolution, NCHW data and OIHW weights, as the C core sees it.

    ``pad_top``/``pad_left`` is the zero padding before the first row/column; the padding after
    the last one is implied by ``out_h``/``out_w`` (taps past the input read as zero), which is
    how Caffe's symmetric and Keras's asymmetric padding share one kernel.
    """

    batch: int
    in_channels: int
    in_h: int
    in_w: int
    out_channels: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    dilation_h: int
    dilation_w: int
    group: int

    @property
    def output_shape(self):
        return (self.batch, self.out_channels, self.out_h, self.out_w)

    @property
    def flops(self):
        """Multiply-adds counted as two flops, the convention of the benchmark tables."""
        kernel_dim = self.in_channels // self.group * self.kernel_h * self.kernel_w
        return 2 * self.batch * self.out_channels * self.out_h * self.out_w * kernel_dim


# ---------------------------------------------------------------------------------------------
# Scalars and pairs


def _as_int(value, name, param):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer (Caffe/Keras parameter {param})")
    return operator.index(value)


def as_pair(value, name, param):
    """An int or an (h, w) pair -> (h, w) of Python ints."""
    if isinstance(value, (tuple, list, np.ndarray)):
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(items) != 2:
            raise ValueError(
                f"{name}={value!r} must be an int or an (h, w) pair; got {len(items)} values "
                f"(Caffe {param}_h/{param}_w)"
            )
        return (_as_int(items[0], name, f"{param}_h"), _as_int(items[1], name, f"{param}_w"))
    number = _as_int(value, name, param)
    return (number, number)


def as_tuple(value, rank, name, param):
    """An int or a sequence of ``rank`` ints -> tuple of ``rank`` Python ints (N-D layers)."""
    if isinstance(value, (tuple, list, np.ndarray)):
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(items) != rank:
            raise ValueError(
                f"{name}={value!r} must be an int or {rank} values, one per spatial axis "
                f"(Caffe {param})"
            )
        return tuple(_as_int(item, name, param) for item in items)
    return (_as_int(value, name, param),) * rank


def check_positive(pair, name, param):
    for value in pair:
        if value < 1:
            raise ValueError(
                f"{name}={_show(pair)} must be >= 1 (Caffe {param}; Caffe itself "
                f"{'aborts' if param == 'stride' else 'silently misbehaves'} on {value})"
            )


def check_non_negative(pair, name, param):
    for value in pair:
        if value < 0:
            raise ValueError(f"{name}={_show(pair)} must be >= 0 (Caffe {param})")


def _show(pair):
    return pair[0] if len(set(pair)) == 1 else tuple(pair)


# ---------------------------------------------------------------------------------------------
# Output sizes


def extent(kernel, dilation):
    """Span of a dilated kernel on the input."""
    return dilation * (kernel - 1) + 1


def caffe_conv_out_size(in_size, kernel, stride, pad, dilation):
    """Caffe's ``(in + 2*pad - extent) / stride + 1`` with C's truncating division.

    Truncation toward zero differs from floor when the kernel's extent exceeds the padded input
    by less than the stride: the numerator is then in (-stride, 0), C gives 0 and Caffe produces
    one output whose out-of-range taps read zero (seen on real Caffe: in 5, kernel 6, stride 4).
    """
    numerator = in_size + 2 * pad - extent(kernel, dilation)
    quotient = numerator // stride if numerator >= 0 else -((-numerator) // stride)
    return quotient + 1


def keras_out_size_and_pad(in_size, kernel, stride, dilation, padding):
    """Keras/TensorFlow output size and (pad_before, pad_after) for ``padding``.

    "same" makes ``ceil(in / stride)`` outputs and, when the total padding is odd, puts the extra
    cell after the input (bottom/right): TensorFlow's rule, not Caffe's symmetric one.
    """
    span = extent(kernel, dilation)
    if padding == "valid":
        return (in_size - span) // stride + 1, (0, 0)
    out = -(-in_size // stride)
    pad_total = max((out - 1) * stride + span - in_size, 0)
    return out, (pad_total // 2, pad_total - pad_total // 2)


# ---------------------------------------------------------------------------------------------
# Arrays and dtypes


def compute_dtype(*arrays):
    """The dtype fastconv computes and returns in, following numpy's promotion.

    float32 stays float32; float64 anywhere makes float64; float16 and small integers compute
    in float32, larger integers and bool-with-int mixes in float64 (numpy's rule with float32).
    Complex, object, string and extended-precision inputs are refused.
    """
    for name, array in arrays:
        if array is None:
            continue
        kind = array.dtype.kind
        if kind not in "biuf":
            raise TypeError(
                f"{name} has dtype {array.dtype}; fastconv computes real float32/float64 "
                "convolutions (complex, object and string arrays are not supported)"
            )
    dtype = np.result_type(*(a.dtype for _, a in arrays if a is not None), np.float32)
    if dtype not in NATIVE_DTYPES:
        names = ", ".join(f"{n}: {a.dtype}" for n, a in arrays if a is not None)
        raise TypeError(f"fastconv computes in float32 or float64; these dtypes promote to {dtype} ({names})")
    return dtype


def as_array(value, name):
    """Any array-like -> ndarray, without copying (the input is never modified)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {array.dtype}; fastconv computes real float32/float64 "
            "convolutions (complex, object and string arrays are not supported)"
        )
    return array


def to_kernel_input(array, dtype):
    """C-contiguous, native byte order, in ``dtype``: what the C core reads.

    Copies only when needed (Fortran order, strides, big-endian, another dtype); never writes to
    the caller's array, so read-only inputs work as they are.
    """
    return np.ascontiguousarray(array, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Caffe convolution


def caffe_conv2d_geometry(x_shape, w_shape, b_shape, stride, pad, dilation, group):
    """Check a Caffe Convolution call and infer its geometry.

    x (N, C, H, W), w (num_output, C/group, kernel_h, kernel_w), b (num_output,) or None.
    """
    if len(x_shape) != 4:
        raise ValueError(
            f"x must be 4-D (N, C, H, W) as Caffe's bottom blob; got shape {tuple(x_shape)} "
            "(use convnd_caffe for 1-D/3-D convolution)"
        )
    if len(w_shape) != 4:
        raise ValueError(
            f"w must be 4-D (num_output, C/group, kernel_h, kernel_w) as Caffe's weight blob; "
            f"got shape {tuple(w_shape)}"
        )
    stride = as_pair(stride, "stride", "stride")
    pad = as_pair(pad, "pad", "pad")
    dilation = as_pair(dilation, "dilation", "dilation")
    group = _as_int(group, "group", "group")
    check_positive(stride, "stride", "stride")
    check_non_negative(pad, "pad", "pad")
    check_positive(dilation, "dilation", "dilation")
    if group < 1:
        raise ValueError(f"group={group} must be >= 1 (Caffe group)")

    batch, in_channels, in_h, in_w = (int(s) for s in x_shape)
    out_channels, group_in_channels, kernel_h, kernel_w = (int(s) for s in w_shape)
    if min(kernel_h, kernel_w) < 1 or out_channels < 1 or group_in_channels < 1:
        raise ValueError(
            f"w has shape {tuple(w_shape)}; num_output, C/group, kernel_h and kernel_w must all "
            "be >= 1"
        )
    if in_channels % group:
        raise ValueError(
            f"group={group} does not divide the input channels C={in_channels} "
            "(Caffe requires channels % group == 0)"
        )
    if out_channels % group:
        raise ValueError(
            f"group={group} does not divide num_output={out_channels} (w.shape[0]) "
            "(Caffe requires num_output % group == 0)"
        )
    if group_in_channels * group != in_channels:
        raise ValueError(
            f"w.shape[1]={group_in_channels} must equal C/group = {in_channels}/{group} = "
            f"{in_channels // group} (x has C={in_channels} channels)"
            + _layout_hint(x_shape, w_shape, group)
        )
    if b_shape is not None and tuple(b_shape) != (out_channels,):
        raise ValueError(
            f"b must have shape (num_output,) = ({out_channels},); got {tuple(b_shape)} "
            "(Caffe's bias blob; pass b=None for bias_term: false)"
        )

    out_h = caffe_conv_out_size(in_h, kernel_h, stride[0], pad[0], dilation[0])
    out_w = caffe_conv_out_size(in_w, kernel_w, stride[1], pad[1], dilation[1])
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"no output: input {in_h}x{in_w} with pad {_show(pad)} is smaller than the kernel's "
            f"extent {extent(kernel_h, dilation[0])}x{extent(kernel_w, dilation[1])} "
            f"(kernel {kernel_h}x{kernel_w}, dilation {_show(dilation)}); Caffe's output size "
            f"(in + 2*pad - extent)/stride + 1 gives {out_h}x{out_w} (real Caffe aborts here)"
        )
    return Conv2DGeometry(
        batch=batch, in_channels=in_channels, in_h=in_h, in_w=in_w,
        out_channels=out_channels, out_h=out_h, out_w=out_w,
        kernel_h=kernel_h, kernel_w=kernel_w,
        stride_h=stride[0], stride_w=stride[1], pad_top=pad[0], pad_left=pad[1],
        dilation_h=dilation[0], dilation_w=dilation[1], group=group,
    )


def _layout_hint(x_shape, w_shape, group):
    """Name the likely layout mix-up when shapes disagree, or return ''."""
    hints = []
    in_channels = x_shape[1]
    # A Keras HWIO kernel (kh, kw, C/group, O) passed where OIHW is expected.
    if w_shape[2] * group == in_channels:
        hints.append(
            "w looks like a Keras HWIO kernel (kernel_h, kernel_w, C/group, filters); convert it "
            "with fastconv.keras_to_caffe_kernel(w) (a transpose, not a reshape)"
        )
    # NHWC data (N, H, W, C) passed where NCHW is expected.
    if x_shape[3] == w_shape[1] * group:
        hints.append(
            "x looks like NHWC (channels_last) data; convert it with fastconv.nhwc_to_nchw(x)"
        )
    return "".join(f"; {h}" for h in hints)


# ---------------------------------------------------------------------------------------------
# Keras Conv2D


def keras_conv2d_geometry(x_shape, k_shape, b_shape, strides, padding, dilation_rate, groups,
                          data_format):
    """Check a Keras ``Conv2D`` call and infer its geometry in NCHW/OIHW terms.

    x is NHWC for ``channels_last`` and NCHW for ``channels_first``; the kernel is HWIO
    (kernel_h, kernel_w, C/groups, filters) in both cases, as in Keras.
    """
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format={data_format!r} must be 'channels_last' (NHWC) or 'channels_first' "
            "(NCHW) (Keras data_format)"
        )
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(
            f"padding={padding!r} must be 'valid' or 'same' (Keras Conv2D padding); for Caffe's "
            "symmetric pad use conv2d_caffe or zero-pad the input first"
        )
    padding = padding.lower()
    if len(x_shape) != 4:
        layout = "(N, H, W, C)" if data_format == "channels_last" else "(N, C, H, W)"
        raise ValueError(f"x must be 4-D {layout} for data_format={data_format!r}; got shape {tuple(x_shape)}")
    if len(k_shape) != 4:
        raise ValueError(
            f"kernel must be 4-D (kernel_h, kernel_w, C/groups, filters) as Keras Conv2D's "
            f"kernel; got shape {tuple(k_shape)}"
        )
    strides = as_pair(strides, "strides", "strides")
    dilation = as_pair(dilation_rate, "dilation_rate", "dilation_rate")
    groups = _as_int(groups, "groups", "groups")
    for value in strides:
        if value < 1:
            raise ValueError(f"strides={_show(strides)} must be >= 1 (Keras Conv2D strides)")
    for value in dilation:
        if value < 1:
            raise ValueError(f"dilation_rate={_show(dilation)} must be >= 1 (Keras Conv2D dilation_rate)")
    if groups < 1:
        raise ValueError(f"groups={groups} must be >= 1 (Keras Conv2D groups)")

    if data_format == "channels_last":
        batch, in_h, in_w, in_channels = (int(s) for s in x_shape)
    else:
        batch, in_channels, in_h, in_w = (int(s) for s in x_shape)
    kernel_h, kernel_w, group_in_channels, filters = (int(s) for s in k_shape)
    if min(kernel_h, kernel_w, group_in_channels, filters) < 1:
        raise ValueError(f"kernel has shape {tuple(k_shape)}; every dimension must be >= 1")
    if in_channels % groups:
        raise ValueError(
            f"groups={groups} does not divide the input channels C={in_channels} "
            "(Keras requires channels % groups == 0)"
        )
    if filters % groups:
        raise ValueError(
            f"groups={groups} does not divide filters={filters} (kernel.shape[3]) "
            "(Keras requires filters % groups == 0)"
        )
    if group_in_channels * groups != in_channels:
        hint = ""
        if k_shape[1] * groups == in_channels:
            hint = ("; kernel looks like a Caffe OIHW blob (filters, C/groups, kernel_h, kernel_w): "
                    "convert it with fastconv.caffe_to_keras_kernel(w)")
        raise ValueError(
            f"kernel.shape[2]={group_in_channels} must equal C/groups = {in_channels}/{groups} = "
            f"{in_channels // groups} (x has C={in_channels} channels, data_format="
            f"{data_format!r}){hint}"
        )
    if b_shape is not None and tuple(b_shape) != (filters,):
        raise ValueError(f"bias must have shape (filters,) = ({filters},); got {tuple(b_shape)}")

    out_h, (pad_top, _) = keras_out_size_and_pad(in_h, kernel_h, strides[0], dilation[0], padding)
    out_w, (pad_left, _) = keras_out_size_and_pad(in_w, kernel_w, strides[1], dilation[1], padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"no output: with padding='valid' the input {in_h}x{in_w} is smaller than the "
            f"kernel's extent {extent(kernel_h, dilation[0])}x{extent(kernel_w, dilation[1])} "
            f"(kernel {kernel_h}x{kernel_w}, dilation_rate {_show(dilation)})"
        )
    return Conv2DGeometry(
        batch=batch, in_channels=in_channels, in_h=in_h, in_w=in_w,
        out_channels=filters, out_h=out_h, out_w=out_w,
        kernel_h=kernel_h, kernel_w=kernel_w,
        stride_h=strides[0], stride_w=strides[1], pad_top=pad_top, pad_left=pad_left,
        dilation_h=dilation[0], dilation_w=dilation[1], group=groups,
    )
