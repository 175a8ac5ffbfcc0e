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


# Caffe's LayerParameter stores sizes, strides, pads and groups as 32-bit integers.
_INT32_MAX = 2**31 - 1


def _as_int(value, name, param):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer (Caffe/Keras parameter {param})")
    number = operator.index(value)
    if abs(number) > _INT32_MAX:
        raise ValueError(f"{name}={number} is out of range: Caffe/Keras parameter {param} is a "
                         "32-bit integer")
    return number


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
    if value is None:
        raise TypeError(f"{name} is None; an array is required")
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
    nd = caffe_convnd_geometry(x_shape, w_shape, b_shape, stride, pad, dilation, group, rank=2)
    return Conv2DGeometry(
        batch=nd.batch, in_channels=nd.in_channels, in_h=nd.in_size[0], in_w=nd.in_size[1],
        out_channels=nd.out_channels, out_h=nd.out_size[0], out_w=nd.out_size[1],
        kernel_h=nd.kernel[0], kernel_w=nd.kernel[1],
        stride_h=nd.stride[0], stride_w=nd.stride[1], pad_top=nd.pad[0], pad_left=nd.pad[1],
        dilation_h=nd.dilation[0], dilation_w=nd.dilation[1], group=nd.group,
    )


@dataclass(frozen=True)
class ConvNDGeometry:
    """Shape of one 1-D, 2-D or 3-D convolution, (N, C, *spatial) data and Caffe weights
    (num_output, C/group, *kernel), as the N-D C core sees it.

    ``pad`` is the zero padding before the first element of each axis; the padding after is
    implied by ``out_size``, as in :class:`Conv2DGeometry`. Deconvolution and transposed
    convolution are described by the convolution whose backward-data they compute.
    """

    batch: int
    in_channels: int
    out_channels: int
    group: int
    in_size: tuple
    out_size: tuple
    kernel: tuple
    stride: tuple
    pad: tuple
    dilation: tuple

    @property
    def rank(self):
        return len(self.in_size)

    @property
    def input_shape(self):
        return (self.batch, self.in_channels, *self.in_size)

    @property
    def output_shape(self):
        return (self.batch, self.out_channels, *self.out_size)

    @property
    def weight_shape(self):
        return (self.out_channels, self.in_channels // self.group, *self.kernel)


_AXIS_NAMES = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}


def _conv_params(rank, stride, pad, dilation, group):
    """Normalise Caffe's stride/pad/dilation/group for ``rank`` spatial axes and check them."""
    if rank == 2:
        stride = as_pair(stride, "stride", "stride")
        pad = as_pair(pad, "pad", "pad")
        dilation = as_pair(dilation, "dilation", "dilation")
    else:
        stride = as_tuple(stride, rank, "stride", "stride")
        pad = as_tuple(pad, rank, "pad", "pad")
        dilation = as_tuple(dilation, rank, "dilation", "dilation")
    group = _as_int(group, "group", "group")
    check_positive(stride, "stride", "stride")
    check_non_negative(pad, "pad", "pad")
    check_positive(dilation, "dilation", "dilation")
    if group < 1:
        raise ValueError(f"group={group} must be >= 1 (Caffe group)")
    return stride, pad, dilation, group


def _data_layout(rank):
    return "(N, C, " + ", ".join(a.upper() for a in _AXIS_NAMES[rank]) + ")"


def _kernel_layout(rank, first="num_output", second="C/group"):
    return f"({first}, {second}, " + ", ".join(f"kernel_{a}" for a in _AXIS_NAMES[rank]) + ")"


def _check_blob_ranks(x_shape, w_shape, rank, weight_layout, weight_role, x_hint=""):
    if len(x_shape) != rank + 2:
        raise ValueError(
            f"x must be {rank + 2}-D {_data_layout(rank)} as Caffe's bottom blob; got shape "
            f"{tuple(x_shape)}{x_hint}"
        )
    if len(w_shape) != rank + 2:
        raise ValueError(
            f"w must be {rank + 2}-D {weight_layout} as {weight_role}; got shape "
            f"{tuple(w_shape)}"
        )


def spatial_rank(x_shape, name="x"):
    """Number of spatial axes of (N, C, *spatial) data: 1, 2 or 3, as Caffe's N-D layers."""
    rank = len(x_shape) - 2
    if rank not in (1, 2, 3):
        raise ValueError(
            f"{name} must be 3-D (N, C, W), 4-D (N, C, H, W) or 5-D (N, C, D, H, W); got shape "
            f"{tuple(x_shape)} ({len(x_shape)}-D)"
        )
    return rank


def caffe_convnd_geometry(x_shape, w_shape, b_shape, stride, pad, dilation, group, rank):
    """Check a Caffe Convolution call with ``rank`` spatial axes and infer its geometry.

    x (N, C, *spatial), w (num_output, C/group, *kernel), b (num_output,) or None.
    """
    _check_blob_ranks(x_shape, w_shape, rank, _kernel_layout(rank), "Caffe's weight blob",
                      " (use convnd_caffe for 1-D/3-D convolution)" if rank == 2 else "")
    stride, pad, dilation, group = _conv_params(rank, stride, pad, dilation, group)
    batch, in_channels, *in_size = (int(s) for s in x_shape)
    out_channels, group_in_channels, *kernel = (int(s) for s in w_shape)
    if min(kernel) < 1 or out_channels < 1 or group_in_channels < 1:
        kernel_names = " and ".join(f"kernel_{a}" for a in _AXIS_NAMES[rank])
        raise ValueError(
            f"w has shape {tuple(w_shape)}; num_output, C/group and {kernel_names} must all "
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
            + (_layout_hint(x_shape, w_shape, group) if rank == 2 else "")
        )
    check_bias(b_shape, out_channels)
    out_size = tuple(
        caffe_conv_out_size(*axis) for axis in zip(in_size, kernel, stride, pad, dilation)
    )
    if min(out_size) < 1:
        extents = tuple(extent(k, d) for k, d in zip(kernel, dilation))
        raise ValueError(
            f"no output: input {_dims(in_size)} with pad {_show(pad)} is smaller than the "
            f"kernel's extent {_dims(extents)} (kernel {_dims(kernel)}, dilation "
            f"{_show(dilation)}); Caffe's output size (in + 2*pad - extent)/stride + 1 gives "
            f"{_dims(out_size)} (real Caffe aborts here)"
        )
    return ConvNDGeometry(
        batch=batch, in_channels=in_channels, out_channels=out_channels, group=group,
        in_size=tuple(in_size), out_size=out_size, kernel=tuple(kernel), stride=stride,
        pad=pad, dilation=dilation,
    )


def caffe_deconvnd_geometry(x_shape, w_shape, b_shape, stride, pad, dilation, group, rank):
    """Check a Caffe Deconvolution call and return the geometry of the convolution whose
    backward-data it is: that convolution's input is the deconvolution's output.

    x (N, C_in, *spatial), w (C_in, num_output/group, *kernel), b (num_output,) or None.
    Output per axis: ``stride*(in - 1) + dilation*(kernel - 1) + 1 - 2*pad``.
    """
    _check_blob_ranks(x_shape, w_shape, rank, _kernel_layout(rank, "C_in", "num_output/group"),
                      "Caffe's Deconvolution weight blob")
    stride, pad, dilation, group = _conv_params(rank, stride, pad, dilation, group)
    batch, in_channels, *in_size = (int(s) for s in x_shape)
    weight_in_channels, group_out_channels, *kernel = (int(s) for s in w_shape)
    if min(kernel) < 1 or group_out_channels < 1:
        raise ValueError(
            f"w has shape {tuple(w_shape)}; num_output/group and every kernel size must be >= 1"
        )
    if in_channels % group:
        raise ValueError(
            f"group={group} does not divide the input channels C_in={in_channels} "
            "(Caffe requires channels % group == 0)"
        )
    if weight_in_channels != in_channels:
        raise ValueError(
            f"w.shape[0]={weight_in_channels} must equal the input channels C_in={in_channels}: "
            "Caffe's Deconvolution weights are (C_in, num_output/group, kernel_h, kernel_w), "
            "the transpose of Convolution's (num_output, C/group, ...)"
        )
    out_channels = group_out_channels * group
    check_bias(b_shape, out_channels)
    out_size = tuple(
        s * (i - 1) + extent(k, d) - 2 * p
        for i, k, s, p, d in zip(in_size, kernel, stride, pad, dilation)
    )
    if min(in_size) < 1 or min(out_size) < 1:
        raise ValueError(
            f"no output: Deconvolution of input {_dims(in_size)} (kernel {_dims(kernel)}, "
            f"stride {_show(stride)}, pad {_show(pad)}, dilation {_show(dilation)}) gives "
            f"stride*(in-1) + dilation*(kernel-1) + 1 - 2*pad = {_dims(out_size)}; "
            "every axis must be >= 1 (and the input non-empty)"
        )
    return ConvNDGeometry(
        batch=batch, in_channels=out_channels, out_channels=in_channels, group=group,
        in_size=out_size, out_size=tuple(in_size), kernel=tuple(kernel), stride=stride,
        pad=pad, dilation=dilation,
    )


def check_bias(b_shape, out_channels):
    if b_shape is not None and tuple(b_shape) != (out_channels,):
        raise ValueError(
            f"b must have shape (num_output,) = ({out_channels},); got {tuple(b_shape)} "
            "(Caffe's bias blob; pass b=None for bias_term: false)"
        )


def check_gradient_shape(dy_shape, expected, name, what):
    """``dy`` must have exactly the shape of the forward output it is the gradient of."""
    if tuple(dy_shape) != tuple(expected):
        raise ValueError(
            f"{name} has shape {tuple(dy_shape)}; expected {tuple(expected)}, the shape of "
            f"{what} for these inputs and parameters"
        )


def _dims(sizes):
    return "x".join(str(s) for s in sizes)


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


# ---------------------------------------------------------------------------------------------
# Keras Conv2DTranspose


def _check_keras_format(data_format, padding, layer):
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format={data_format!r} must be 'channels_last' (NHWC) or 'channels_first' "
            "(NCHW) (Keras data_format)"
        )
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} must be 'valid' or 'same' (Keras {layer} padding)")
    return padding.lower()


def _keras_spatial(x_shape, data_format, what="x"):
    if len(x_shape) != 4:
        layout = "(N, H, W, C)" if data_format == "channels_last" else "(N, C, H, W)"
        raise ValueError(
            f"{what} must be 4-D {layout} for data_format={data_format!r}; got shape "
            f"{tuple(x_shape)}"
        )
    if data_format == "channels_last":
        batch, in_h, in_w, channels = (int(s) for s in x_shape)
    else:
        batch, channels, in_h, in_w = (int(s) for s in x_shape)
    return batch, channels, (in_h, in_w)


def keras_conv_transpose_output_size(in_size, kernel, stride, dilation, padding, output_padding):
    """Keras 3's ``Conv2DTranspose`` output length per axis
    (``keras.src.backend.common.backend_utils.compute_conv_transpose_output_shape``).

    Without ``output_padding``: "valid" ``(in-1)*stride + max(extent, stride)``, "same"
    ``in*stride``. With it: "valid" ``(in-1)*stride + extent + output_padding``, "same"
    ``(in-1)*stride + extent % 2 + output_padding``.
    """
    span = extent(kernel, dilation)
    if output_padding is None:
        if padding == "valid":
            return (in_size - 1) * stride + max(span, stride)
        return in_size * stride
    if padding == "valid":
        return (in_size - 1) * stride + span + output_padding
    return (in_size - 1) * stride + span % 2 + output_padding


def keras_conv2d_transpose_geometry(x_shape, k_shape, b_shape, strides, padding, output_padding,
                                    dilation_rate, data_format):
    """Check a Keras ``Conv2DTranspose`` call; return the geometry of the forward convolution
    whose input gradient it is (TensorFlow's ``conv2d_transpose``), NCHW/OIHW terms.

    The kernel is (kernel_h, kernel_w, filters, C_in). TensorFlow pads that forward convolution
    by its own "same"/"valid" rule for an input of the transposed output's size, and requires
    the forward convolution to give back exactly the transposed input's size.
    """
    padding = _check_keras_format(data_format, padding, "Conv2DTranspose")
    batch, in_channels, in_size = _keras_spatial(x_shape, data_format)
    if len(k_shape) != 4:
        raise ValueError(
            "kernel must be 4-D (kernel_h, kernel_w, filters, C_in) as Keras Conv2DTranspose's "
            f"kernel; got shape {tuple(k_shape)}"
        )
    strides = as_pair(strides, "strides", "strides")
    dilation = as_pair(dilation_rate, "dilation_rate", "dilation_rate")
    if min(strides) < 1:
        raise ValueError(f"strides={_show(strides)} must be >= 1 (Keras Conv2DTranspose strides)")
    if min(dilation) < 1:
        raise ValueError(f"dilation_rate={_show(dilation)} must be >= 1 (Keras dilation_rate)")
    if output_padding is not None:
        output_padding = as_pair(output_padding, "output_padding", "output_padding")
        for op, s in zip(output_padding, strides):
            if not 0 <= op < s:
                raise ValueError(
                    f"output_padding={_show(output_padding)} must be >= 0 and strictly less "
                    f"than strides={_show(strides)} (Keras Conv2DTranspose)"
                )
    kernel_h, kernel_w, filters, kernel_in_channels = (int(s) for s in k_shape)
    if min(kernel_h, kernel_w, filters) < 1:
        raise ValueError(f"kernel has shape {tuple(k_shape)}; every dimension must be >= 1")
    if kernel_in_channels != in_channels:
        raise ValueError(
            f"kernel.shape[3]={kernel_in_channels} must equal the input channels C={in_channels}"
            f" (Conv2DTranspose's kernel is (kernel_h, kernel_w, filters, C_in); "
            f"data_format={data_format!r})"
        )
    if b_shape is not None and tuple(b_shape) != (filters,):
        raise ValueError(f"bias must have shape (filters,) = ({filters},); got {tuple(b_shape)}")
    if min(in_size) < 1:
        raise ValueError(f"x has an empty spatial axis {_dims(in_size)}; nothing to transpose")

    kernel = (kernel_h, kernel_w)
    out_size, pad_before = [], []
    for axis in range(2):
        length = keras_conv_transpose_output_size(
            in_size[axis], kernel[axis], strides[axis], dilation[axis], padding,
            None if output_padding is None else output_padding[axis],
        )
        forward_out, (before, _) = keras_out_size_and_pad(
            length, kernel[axis], strides[axis], dilation[axis], padding
        )
        if length < 1 or forward_out != in_size[axis]:
            raise ValueError(
                f"no valid transposed convolution: Keras's output length {length} on axis "
                f"{'hw'[axis]} (padding={padding!r}, output_padding={output_padding}) maps back "
                f"to {forward_out}, not the input's {in_size[axis]} (TensorFlow rejects this "
                "call; with an even kernel and padding='same' use output_padding >= 1)"
            )
        out_size.append(length)
        pad_before.append(before)
    return ConvNDGeometry(
        batch=batch, in_channels=filters, out_channels=in_channels, group=1,
        in_size=tuple(out_size), out_size=tuple(in_size), kernel=kernel, stride=strides,
        pad=tuple(pad_before), dilation=dilation,
    )


# ---------------------------------------------------------------------------------------------
# Pooling


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


def pool_method(method):
    """'max' or 'ave' (Caffe's MAX/AVE; 'avg'/'average' accepted) -> 'max' or 'ave'."""
    name = method.lower() if isinstance(method, str) else method
    name = {"avg": "ave", "average": "ave"}.get(name, name)
    if name not in POOL_METHODS:
        raise ValueError(
            f"method={method!r} must be 'max' or 'ave' (Caffe pool: MAX | AVE; STOCHASTIC is "
            "not supported)"
        )
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


def caffe_pool2d_geometry(x_shape, kernel_size, stride, pad, global_pooling):
    """Check a Caffe Pooling call (NCHW) and infer its geometry."""
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
                    f"pad={_show(pad)} must be smaller than kernel_size={_show(kernel)} "
                    "(Caffe requires pad < kernel in pooling)"
                )
    out = tuple(caffe_pool_out_size(*axis, any_pad=pad != (0, 0))
                for axis in zip((in_h, in_w), kernel, stride, pad))
    if min(out) < 1:
        raise ValueError(
            f"no output: pooling {in_h}x{in_w} with kernel {_dims(kernel)}, stride "
            f"{_show(stride)}, pad {_show(pad)}: Caffe's ceil((in + 2*pad - kernel)/stride) + 1 "
            f"gives {_dims(out)}"
        )
    for axis, size in enumerate((in_h, in_w)):
        if (out[axis] - 1) * stride[axis] - pad[axis] >= size:
            raise ValueError(
                f"kernel_size={_show(kernel)}, stride={_show(stride)}, pad={_show(pad)} on "
                f"{in_h}x{in_w}: Caffe's ceil rule puts the last window entirely past the input "
                "(stride > kernel with no padding on the layer); real Caffe outputs -FLT_MAX "
                "(MAX) or NaN (AVE) there and its MAX backward corrupts memory, so fastconv "
                "refuses it"
            )
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
    padding = _check_keras_format(data_format, padding, "pooling")
    batch, channels, in_size = _keras_spatial(x_shape, data_format)
    kernel = as_pair(pool_size, "pool_size", "pool_size")
    strides = kernel if strides is None else as_pair(strides, "strides", "strides")
    if min(kernel) < 1:
        raise ValueError(f"pool_size={_show(kernel)} must be >= 1 (Keras pool_size)")
    if min(strides) < 1:
        raise ValueError(f"strides={_show(strides)} must be >= 1 (Keras pooling strides)")
    out, pad = [], []
    for axis in range(2):
        size, (before, _) = keras_out_size_and_pad(in_size[axis], kernel[axis], strides[axis], 1,
                                                   padding)
        out.append(size)
        pad.append(before)
    if min(out) < 1:
        raise ValueError(
            f"no output: pooling {_dims(in_size)} with pool_size {_dims(kernel)}, strides "
            f"{_show(strides)} and padding={padding!r} gives {_dims(out)}"
        )
    return Pool2DGeometry(
        batch=batch, channels=channels, in_h=in_size[0], in_w=in_size[1], out_h=out[0],
        out_w=out[1], kernel_h=kernel[0], kernel_w=kernel[1], stride_h=strides[0],
        stride_w=strides[1], pad_top=pad[0], pad_left=pad[1], count_padding=False,
    )
