"""Keras's Conv2D and Conv2DTranspose: parameters, kernel shapes, and TensorFlow's padding rule
(the one place it is written; Keras pooling uses it too)."""
from __future__ import annotations

from .common import (
    Conv2DGeometry,
    ConvNDGeometry,
    as_int,
    as_pair,
    check_addressable,
    check_bias_shape,
    check_positive,
    extent,
    format_dims,
    format_pair,
)


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


def check_keras_format(data_format, padding, layer, padding_hint=""):
    """Check Keras's ``data_format`` and ``padding``; return the padding in lower case."""
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format={data_format!r} must be 'channels_last' (NHWC) or 'channels_first' "
            "(NCHW) (Keras data_format)"
        )
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} must be 'valid' or 'same' (Keras {layer} padding)"
                         + padding_hint)
    return padding.lower()


def keras_spatial(x_shape, data_format, what="x"):
    """(batch, channels, (H, W)) of Keras data in ``data_format``."""
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


def keras_conv2d_geometry(x_shape, k_shape, b_shape, strides, padding, dilation_rate, groups,
                          data_format):
    """Check a Keras ``Conv2D`` call and infer its geometry in NCHW/OIHW terms.

    x is NHWC for ``channels_last`` and NCHW for ``channels_first``; the kernel is HWIO
    (kernel_h, kernel_w, C/groups, filters) in both cases, as in Keras.
    """
    padding = check_keras_format(data_format, padding, "Conv2D",
                                 "; for Caffe's symmetric pad use conv2d_caffe or zero-pad the "
                                 "input first")
    batch, in_channels, (in_h, in_w) = keras_spatial(x_shape, data_format)
    if len(k_shape) != 4:
        raise ValueError(
            f"kernel must be 4-D (kernel_h, kernel_w, C/groups, filters) as Keras Conv2D's "
            f"kernel; got shape {tuple(k_shape)}"
        )
    strides = as_pair(strides, "strides", "strides")
    dilation = as_pair(dilation_rate, "dilation_rate", "dilation_rate")
    groups = as_int(groups, "groups", "groups")
    check_positive(strides, "strides", "Conv2D strides", framework="Keras")
    check_positive(dilation, "dilation_rate", "Conv2D dilation_rate", framework="Keras")
    check_positive((groups,), "groups", "Conv2D groups", framework="Keras")

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
    check_bias_shape(b_shape, filters, "bias", "filters")

    if min(in_h, in_w) < 1:
        raise ValueError(f"x has an empty spatial axis ({in_h}x{in_w}): nothing to convolve")
    out_h, (pad_top, _) = keras_out_size_and_pad(in_h, kernel_h, strides[0], dilation[0], padding)
    out_w, (pad_left, _) = keras_out_size_and_pad(in_w, kernel_w, strides[1], dilation[1], padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"no output: with padding='valid' the input {in_h}x{in_w} is smaller than the "
            f"kernel's extent {extent(kernel_h, dilation[0])}x{extent(kernel_w, dilation[1])} "
            f"(kernel {kernel_h}x{kernel_w}, dilation_rate {format_pair(dilation)})"
        )
    return Conv2DGeometry(
        batch=batch, in_channels=in_channels, in_h=in_h, in_w=in_w,
        out_channels=filters, out_h=out_h, out_w=out_w,
        kernel_h=kernel_h, kernel_w=kernel_w,
        stride_h=strides[0], stride_w=strides[1], pad_top=pad_top, pad_left=pad_left,
        dilation_h=dilation[0], dilation_w=dilation[1], group=groups,
    )


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
    padding = check_keras_format(data_format, padding, "Conv2DTranspose")
    batch, in_channels, in_size = keras_spatial(x_shape, data_format)
    if len(k_shape) != 4:
        raise ValueError(
            "kernel must be 4-D (kernel_h, kernel_w, filters, C_in) as Keras Conv2DTranspose's "
            f"kernel; got shape {tuple(k_shape)}"
        )
    strides = as_pair(strides, "strides", "strides")
    dilation = as_pair(dilation_rate, "dilation_rate", "dilation_rate")
    check_positive(strides, "strides", "Conv2DTranspose strides", framework="Keras")
    check_positive(dilation, "dilation_rate", "Conv2DTranspose dilation_rate", framework="Keras")
    if output_padding is not None:
        output_padding = as_pair(output_padding, "output_padding", "output_padding")
        for op, s in zip(output_padding, strides):
            if not 0 <= op < s:
                raise ValueError(
                    f"output_padding={format_pair(output_padding)} must be >= 0 and strictly less "
                    f"than strides={format_pair(strides)} (Keras Conv2DTranspose)"
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
    check_bias_shape(b_shape, filters, "bias", "filters")
    if min(in_size) < 1:
        raise ValueError(f"x has an empty spatial axis {format_dims(in_size)}; "
                         "nothing to transpose")

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
    check_addressable((batch, filters, *out_size), f"strides={format_pair(strides)}")
    return ConvNDGeometry(
        batch=batch, in_channels=filters, out_channels=in_channels, group=1,
        in_size=tuple(out_size), out_size=tuple(in_size), kernel=kernel, stride=strides,
        pad=tuple(pad_before), dilation=dilation,
    )
