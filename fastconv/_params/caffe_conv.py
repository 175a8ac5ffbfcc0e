"""Caffe's Convolution and Deconvolution (1-D to 3-D): parameters, blob shapes, output sizes."""
from __future__ import annotations

from .common import (
    Conv2DGeometry,
    ConvNDGeometry,
    as_int,
    check_addressable,
    as_pair,
    as_tuple,
    check_bias_shape,
    check_non_negative,
    check_positive,
    extent,
    format_dims,
    format_pair,
)


def caffe_conv_out_size(in_size, kernel, stride, pad, dilation):
    """Caffe's ``(in + 2*pad - extent) / stride + 1`` with C's truncating division.

    Truncation toward zero differs from floor when the kernel's extent exceeds the padded input
    by less than the stride: the numerator is then in (-stride, 0), C gives 0 and Caffe produces
    one output whose out-of-range taps read zero (seen on real Caffe: in 5, kernel 6, stride 4).
    """
    numerator = in_size + 2 * pad - extent(kernel, dilation)
    quotient = numerator // stride if numerator >= 0 else -((-numerator) // stride)
    return quotient + 1


def caffe_deconv_out_size(in_size, kernel, stride, pad, dilation):
    """Caffe's Deconvolution output size: ``stride*(in - 1) + dilation*(kernel - 1) + 1 -
    2*pad``, the input size of the convolution whose backward-data it is."""
    return stride * (in_size - 1) + extent(kernel, dilation) - 2 * pad


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


_AXIS_NAMES = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}


def caffe_conv_params(rank, stride, pad, dilation, group):
    """Normalise Caffe's stride/pad/dilation/group for ``rank`` spatial axes and check them."""
    if rank == 2:
        stride = as_pair(stride, "stride", "stride")
        pad = as_pair(pad, "pad", "pad")
        dilation = as_pair(dilation, "dilation", "dilation")
    else:
        stride = as_tuple(stride, rank, "stride", "stride")
        pad = as_tuple(pad, rank, "pad", "pad")
        dilation = as_tuple(dilation, rank, "dilation", "dilation")
    group = as_int(group, "group", "group")
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
    stride, pad, dilation, group = caffe_conv_params(rank, stride, pad, dilation, group)
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
    check_bias_shape(b_shape, out_channels, "b", "num_output",
                     " (Caffe's bias blob; pass b=None for bias_term: false)")
    out_size = tuple(
        caffe_conv_out_size(*axis) for axis in zip(in_size, kernel, stride, pad, dilation)
    )
    if min(out_size) < 1:
        extents = tuple(extent(k, d) for k, d in zip(kernel, dilation))
        raise ValueError(
            f"no output: input {format_dims(in_size)} with pad {format_pair(pad)} is smaller than "
            f"the kernel's extent {format_dims(extents)} (kernel {format_dims(kernel)}, dilation "
            f"{format_pair(dilation)}); Caffe's output size (in + 2*pad - extent)/stride + 1 gives "
            f"{format_dims(out_size)} (real Caffe aborts here)"
        )
    check_addressable((batch, out_channels, *out_size),
                      f"pad={format_pair(pad)} with stride={format_pair(stride)}")
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
    stride, pad, dilation, group = caffe_conv_params(rank, stride, pad, dilation, group)
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
    check_bias_shape(b_shape, out_channels, "b", "num_output",
                     " (Caffe's bias blob; pass b=None for bias_term: false)")
    out_size = tuple(map(caffe_deconv_out_size, in_size, kernel, stride, pad, dilation))
    if min(in_size) < 1 or min(out_size) < 1:
        raise ValueError(
            f"no output: Deconvolution of input {format_dims(in_size)} (kernel "
            f"{format_dims(kernel)}, stride {format_pair(stride)}, pad {format_pair(pad)}, "
            f"dilation {format_pair(dilation)}) gives "
            f"stride*(in-1) + dilation*(kernel-1) + 1 - 2*pad = {format_dims(out_size)}; "
            "every axis must be >= 1 (and the input non-empty)"
        )
    check_addressable((batch, out_channels, *out_size),
                      f"stride={format_pair(stride)} with kernel {format_dims(kernel)} and "
                      f"dilation={format_pair(dilation)}")
    return ConvNDGeometry(
        batch=batch, in_channels=out_channels, out_channels=in_channels, group=group,
        in_size=out_size, out_size=tuple(in_size), kernel=tuple(kernel), stride=stride,
        pad=pad, dilation=dilation,
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
