"""The bridge from single Caffe layers to Keras layers: ``from_caffe`` (Convolution,
Deconvolution, Pooling -> Keras layers with weights set, reproducing Caffe exactly or refusing)
and ``pooling_from_caffe``. Importing this module never imports TensorFlow or Keras; the bridge
imports Keras when called. Public through ``fastconv.keras``."""
from __future__ import annotations

import numpy as np

from ._params.caffe_conv import (
    caffe_conv2d_geometry,
    caffe_conv_out_size,
    caffe_conv_params,
    caffe_deconvnd_geometry,
)
from ._params.caffe_message import conv_param_kwargs, pooling_param_kwargs
from ._params.common import as_pair, extent
from ._params.keras_conv import keras_out_size_and_pad
from ._params.pooling import caffe_pool2d_geometry
from .layout import caffe_to_keras_kernel

__all__ = ["from_caffe", "pooling_from_caffe"]


def _check_bias_term(bias_term, b):
    """Caffe's ``bias_term`` and the presence of the bias blob must agree (its shape is checked
    with the geometry)."""
    if bias_term and b is None:
        raise ValueError("bias_term is true (Caffe's default) but b is None: pass the bias blob "
                         "or set bias_term: false")
    if not bias_term and b is not None:
        raise ValueError("bias_term is false but a bias b was given")


def _shape(b):
    return None if b is None else np.shape(b)


def _input_hw(input_size):
    if input_size is None:
        return None
    size = tuple(int(s) for s in input_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"input_size={input_size!r} must be the input's (height, width)")
    return size


def from_caffe(params, w=None, b=None, *, layer_type="Convolution", input_size=None,
               assume_nonnegative=False):
    """Keras layers (channels_last, weights set) that reproduce one Caffe layer exactly.

    ``params`` is shaped like the layer's Caffe parameter message (``convolution_param`` for
    ``layer_type="Convolution"`` or ``"Deconvolution"``, ``pooling_param`` for ``"Pooling"``):
    ``num_output``, ``kernel_size`` | ``kernel_h``/``kernel_w``, ``stride`` |
    ``stride_h``/``stride_w``, ``pad`` | ``pad_h``/``pad_w``, ``dilation``, ``group``,
    ``bias_term``; for pooling ``pool`` (MAX | AVE), ``global_pooling``, ``round_mode``.
    ``w`` is Caffe's weight blob (OIHW; ``(C_in, num_output/group, kh, kw)`` for
    Deconvolution), ``b`` its bias. ``input_size=(H, W)``, when known, lets more cases be
    proven identical and is required where Caffe's output size depends on it (the
    truncation case of Convolution, pooling with stride > 1).

    Apply the returned layers in order to NHWC data. Choices, per layer type:

    * Convolution: ``Conv2D(padding="same")`` only when provably identical to Caffe's
      symmetric pad (for every input size: stride 1 and ``2*pad == extent - 1``; for a known
      size: same output size and same top/left padding); otherwise ``ZeroPadding2D(pad)`` +
      ``padding="valid"``. When the kernel's extent exceeds the padded input by less than the
      stride, Caffe still makes one output (C division truncates): with ``input_size`` the
      padding gets the missing zeros at the bottom/right; without it Keras cannot know.
      With ``input_size``, an axis with a single output is padded/cropped to exactly one
      window and run at stride 1: TensorFlow's oneDNN convolution (the x86 default) computes
      some of those strided single-output cases wrong.
      Keras refuses strides > 1 with dilation > 1, so that case runs the convolution at stride 1
      and keeps every stride-th row and column with a slice (a Lambda layer; TensorFlow's
      ``MaxPooling2D(pool_size=1)`` would turn NaN and -inf into -FLT_MAX).
    * Pooling: see :func:`pooling_from_caffe`.
    * Deconvolution: ``Conv2DTranspose(padding="valid")`` then ``Cropping2D`` of ``pad`` (plus
      the cells Keras adds when the kernel is smaller than the stride); dilation is applied by
      spreading the kernel with zeros; ``group > 1`` raises NotImplementedError (Keras's
      Conv2DTranspose has no groups).
    """
    if layer_type == "Convolution":
        return _conv_from_caffe(params, w, b, _input_hw(input_size))
    if layer_type == "Deconvolution":
        return _deconv_from_caffe(params, w, b, _input_hw(input_size))
    if layer_type == "Pooling":
        if w is not None or b is not None:
            raise ValueError("Caffe Pooling has no weights; pass only params")
        return pooling_from_caffe(params, input_size=input_size,
                                  assume_nonnegative=assume_nonnegative)
    raise ValueError(f"layer_type={layer_type!r} must be 'Convolution', 'Deconvolution' or 'Pooling'")


def _same_is_identical(in_size, kernel, stride, pad, dilation):
    """Whether Keras 'same' equals Caffe's symmetric pad on one axis (None: size unknown)."""
    span = extent(kernel, dilation)
    if in_size is None:
        # ceil(in/1) == in + 2*pad - span + 1 for every in, and 'same' then pads (span-1)//2 = pad.
        return stride == 1 and 2 * pad == span - 1
    out_same, (before, _) = keras_out_size_and_pad(in_size, kernel, stride, dilation, "same")
    return out_same == caffe_conv_out_size(in_size, kernel, stride, pad, dilation) and before == pad


def _conv_from_caffe(params, w, b, input_hw):
    import keras

    spec = conv_param_kwargs(params, "Convolution")
    num_output, kernel = spec["num_output"], spec["kernel"]
    w = np.asarray(w, dtype=np.float32) if w is not None else None
    if w is None or w.ndim != 4:
        raise ValueError("w must be Caffe's 4-D weight blob (num_output, C/group, kernel_h, kernel_w)")
    if w.shape[0] != num_output or tuple(w.shape[2:]) != kernel:
        raise ValueError(
            f"w has shape {w.shape}; num_output={num_output} and kernel "
            f"{kernel[0]}x{kernel[1]} need (num_output, C/group, {kernel[0]}, {kernel[1]})" + (
                "; it looks like a Keras HWIO kernel: convert with fastconv.keras_to_caffe_kernel"
                if w.shape[3] == num_output else ""))
    _check_bias_term(spec["bias_term"], b)
    stride, pad, dilation, group = caffe_conv_params(2, spec["stride"], spec["pad"],
                                                     spec["dilation"], spec["group"])
    in_channels = w.shape[1] * group
    spans = tuple(extent(k, d) for k, d in zip(kernel, dilation))
    # Without input_size the layer takes any input: its parameters and blobs are checked on the
    # smallest input that has an output.
    checked_hw = input_hw or tuple(max(s - 2 * p, 1) for s, p in zip(spans, pad))
    geometry = caffe_conv2d_geometry((1, in_channels, *checked_hw), w.shape, _shape(b), stride,
                                     pad, dilation, group)
    sizes = input_hw or (None, None)

    pad_after, crop = list(pad), [0, 0]
    single = [False, False]
    if input_hw is not None:
        for axis, out in enumerate((geometry.out_h, geometry.out_w)):
            span = spans[axis]
            # Caffe's truncation case: give 'valid' the zeros that make its one output.
            pad_after[axis] += max(span - (sizes[axis] + 2 * pad[axis]), 0)
            # An axis with one output gets exactly one window's span and stride 1: TensorFlow's
            # oneDNN convolution (the default on x86) is wrong when a stride > 1 leaves a single
            # output on an axis (see the README), and one window needs no stride.
            if out == 1:
                surplus = sizes[axis] + pad[axis] + pad_after[axis] - span
                trim_pad = min(surplus, pad_after[axis])
                # Keras cannot crop the whole input: a window over padding only keeps one input
                # row past its span, and its stride (that row is then never read).
                crop[axis] = min(surplus - trim_pad, sizes[axis] - 1)
                pad_after[axis] -= trim_pad
                single[axis] = surplus == trim_pad + crop[axis]
    stride = tuple(1 if single[axis] else stride[axis] for axis in (0, 1))
    # Keras refuses any stride > 1 together with any dilation > 1 (on either axis).
    subsample = max(stride) > 1 and max(dilation) > 1
    padded = (pad[0], pad_after[0]), (pad[1], pad_after[1])
    same = (pad != (0, 0) and not subsample and list(pad) == pad_after and crop == [0, 0]
            and all(_same_is_identical(sizes[a], kernel[a], stride[a], pad[a], dilation[a])
                    for a in (0, 1)))
    layers = []
    if crop != [0, 0]:
        layers.append(keras.layers.Cropping2D(((0, crop[0]), (0, crop[1]))))
    if not same and padded != ((0, 0), (0, 0)):
        layers.append(keras.layers.ZeroPadding2D(padded))
    conv = keras.layers.Conv2D(
        num_output, kernel, strides=(1, 1) if subsample else stride,
        padding="same" if same else "valid", dilation_rate=dilation, groups=group,
        use_bias=spec["bias_term"])
    conv.build((None, None, None, in_channels))
    conv.set_weights([caffe_to_keras_kernel(w)] + ([np.asarray(b, np.float32)] if spec["bias_term"] else []))
    layers.append(conv)
    if subsample:
        step_h, step_w = stride
        layers.append(keras.layers.Lambda(lambda t: t[:, ::step_h, ::step_w, :]))
    return layers


def _deconv_from_caffe(params, w, b, input_hw=None):
    import keras

    spec = conv_param_kwargs(params, "Deconvolution")
    num_output, kernel = spec["num_output"], spec["kernel"]
    stride, pad, dilation, group = caffe_conv_params(2, spec["stride"], spec["pad"],
                                                     spec["dilation"], spec["group"])
    if group != 1:
        raise NotImplementedError(
            f"Deconvolution with group={group}: Keras's Conv2DTranspose has no groups "
            "argument, so no single stock layer reproduces it")
    w = np.asarray(w, dtype=np.float32) if w is not None else None
    if w is None or w.ndim != 4 or w.shape[1] != num_output or tuple(w.shape[2:]) != kernel:
        raise ValueError(
            f"w must be Caffe's Deconvolution blob (C_in, num_output, kernel_h, kernel_w) = "
            f"(C_in, {num_output}, {kernel[0]}, {kernel[1]}); got "
            f"{None if w is None else w.shape}")
    _check_bias_term(spec["bias_term"], b)
    # Its blobs are checked on input_size, or (unknown) on an input that has an output: the
    # layer takes any input then.
    checked_hw = input_hw or tuple(2 * p + 1 for p in pad)
    caffe_deconvnd_geometry((1, w.shape[0], *checked_hw), w.shape, _shape(b),
                            stride, pad, dilation, group, rank=2)
    spans = tuple(extent(k, d) for k, d in zip(kernel, dilation))
    # Dilation as a kernel spread with zeros: exact (each zero tap adds 0) and free of Keras's
    # refusal of strides > 1 with dilation > 1.
    spread = np.zeros(w.shape[:2] + spans, dtype=np.float32)
    spread[:, :, ::dilation[0], ::dilation[1]] = w
    layer = keras.layers.Conv2DTranspose(num_output, spans, strides=stride,
                                         padding="valid", use_bias=spec["bias_term"])
    layer.build((None, None, None, w.shape[0]))
    # Caffe's deconv weight (C_in, O, kh, kw) is the OIHW weight of the convolution it
    # transposes (O channels in, C_in out); Keras wants that convolution's HWIO kernel.
    layer.set_weights([np.ascontiguousarray(spread.transpose(2, 3, 1, 0))]
                      + ([np.asarray(b, np.float32)] if spec["bias_term"] else []))
    # Keras 'valid' makes in*stride + max(extent - stride, 0) outputs; Caffe's full output is
    # stride*(in-1) + extent, then `pad` cropped from each side.
    crop = tuple((p, p + max(s - e, 0)) for p, s, e in zip(pad, stride, spans))
    layers = [layer]
    if any(c != (0, 0) for c in crop):
        layers.append(keras.layers.Cropping2D(crop))
    return layers


def pooling_from_caffe(params, *, input_size=None, assume_nonnegative=False):
    """Keras layers reproducing Caffe's Pooling (``pooling_param``), channels_last.

    Caffe sizes pooling with ``ceil((in + 2*pad - k)/stride) + 1`` (minus one when that last
    window would start past ``in + pad``); MAX ignores padding (as if -inf); AVE divides by the
    window clipped to ``in + pad``, so padding cells count but cells past the padded input
    don't. Keras floors, pads zeros (ZeroPadding2D) or -inf/uncounted cells ('same', with the
    odd cell at the bottom/right). What this builds:

    * ``global_pooling``: GlobalMax/AveragePooling2D(keepdims=True).
    * stride 1: every input size behaves alike; otherwise ``input_size=(H, W)`` is required.
    * MAX: plain 'valid' when no window touches padding; 'same' when it places the same top
      padding and makes the same output size; else, with ``assume_nonnegative=True`` (inputs
      after a ReLU), ZeroPadding2D + 'valid' (a zero never beats a non-negative value). Any
      other case raises NotImplementedError: zeros would beat negative inputs.
    * AVE: ZeroPadding2D(pad) (Caffe counts those cells) + 'valid' when no window runs past the
      padded input; + 'same' when the overrun is a single cell at the bottom/right (TF does not
      count it, nor does Caffe). A larger overrun needs a per-position divisor no stock layer
      has: NotImplementedError.
    * STOCHASTIC: NotImplementedError.

    Parameters are checked by the same rules as :func:`fastconv.pool2d_caffe`'s, with the same
    exceptions (a geometry it refuses is refused here too).
    """
    import keras

    spec = pooling_param_kwargs(params)
    method = spec["method"]
    if method == "STOCHASTIC":
        raise NotImplementedError("STOCHASTIC pooling samples at training time and weights by "
                                  "value at test time; Keras has no such layer")
    if spec["global_pooling"]:
        cls = keras.layers.GlobalMaxPooling2D if method == "MAX" else keras.layers.GlobalAveragePooling2D
        return [cls(keepdims=True)]
    input_hw = _input_hw(input_size)
    if input_hw is None:
        stride = as_pair(spec["stride"], "stride", "stride")
        if stride != (1, 1):
            raise ValueError(
                "input_size=(H, W) is needed for pooling with stride > 1: whether Caffe's ceil "
                "rule adds a row/column (which Keras's floor drops) depends on the input size")
        kernel = as_pair(spec["kernel_size"], "kernel_size", "kernel_size")
        input_hw = (max(*kernel, 1) + 2,) * 2  # any size behaves alike at stride 1
    geometry = caffe_pool2d_geometry((1, 1, *input_hw), spec["kernel_size"], spec["stride"],
                                     spec["pad"], False, ceil_mode=spec["ceil_mode"])
    kernel = (geometry.kernel_h, geometry.kernel_w)
    stride = (geometry.stride_h, geometry.stride_w)
    pad = (geometry.pad_top, geometry.pad_left)
    outs = (geometry.out_h, geometry.out_w)
    # How far the last window runs past the padded input (negative: rows left unused).
    overrun = [(outs[a] - 1) * stride[a] + kernel[a] - (input_hw[a] + 2 * pad[a]) for a in (0, 1)]

    def same_matches(sizes, top_pads):
        for a in (0, 1):
            out, (before, _) = keras_out_size_and_pad(sizes[a], kernel[a], stride[a], 1, "same")
            if out != outs[a] or before != top_pads[a]:
                return False
        return True

    def pool(padding):
        cls = keras.layers.MaxPooling2D if method == "MAX" else keras.layers.AveragePooling2D
        return cls(pool_size=kernel, strides=stride, padding=padding)

    zero_pad = [keras.layers.ZeroPadding2D((pad[0], pad[1]))] if pad != (0, 0) else []
    if method == "MAX":
        if pad == (0, 0) and max(overrun) <= 0:
            return [pool("valid")]
        if same_matches(input_hw, pad):
            return [pool("same")]
        if assume_nonnegative:
            grown = [keras.layers.ZeroPadding2D(
                ((pad[0], pad[0] + max(overrun[0], 0)), (pad[1], pad[1] + max(overrun[1], 0))))]
            return grown + [pool("valid")]
        raise NotImplementedError(
            f"MAX pooling (kernel {kernel}, stride {stride}, pad {pad}) on {input_hw}: Caffe's "
            f"windows reach {pad} cells before and {[max(o, 0) + 0 for o in overrun]} past the "
            "input and ignore those cells; Keras's 'same' would place different padding here and "
            "ZeroPadding2D's zeros beat negative inputs. Pass assume_nonnegative=True if the "
            "input is non-negative (e.g. after a ReLU).")
    if max(overrun) <= 0:
        return zero_pad + [pool("valid")]
    padded = [input_hw[a] + 2 * pad[a] for a in (0, 1)]
    if max(overrun) == 1 and same_matches(padded, (0, 0)):
        return zero_pad + [pool("same")]
    raise NotImplementedError(
        f"AVE pooling (kernel {kernel}, stride {stride}, pad {pad}) on {input_hw}: Caffe's last "
        f"window runs {overrun} cells past the padded input and divides by the clipped count; "
        "Keras's 'valid' drops that window and 'same' would shift the windows, and no stock "
        "layer applies a per-position divisor. Use fastconv's pooling reference for this layer.")
