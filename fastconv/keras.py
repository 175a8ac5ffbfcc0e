"""Keras-layout convolution: ``keras.layers.Conv2D`` semantics computed by fastconv's core.

Also the bridge from Caffe to Keras: ``from_caffe`` (Convolution, Deconvolution, Pooling ->
Keras layers with weights set, reproducing Caffe exactly or refusing), ``pooling_from_caffe``
and ``check_layer`` (a live Keras Conv2D/DepthwiseConv2D checked against fastconv, with the
diagnosis of fastconv.testing).

Importing this module never imports TensorFlow or Keras; the bridge imports Keras when called.
"""
from __future__ import annotations

import numpy as np

from ._params import (
    as_array,
    caffe_conv_out_size,
    caffe_pool_out_size,
    compute_dtype,
    extent,
    keras_conv2d_geometry,
    keras_conv2d_transpose_geometry,
    keras_out_size_and_pad,
    keras_pool2d_geometry,
    pool_method,
)
from .caffe import _forward
from .layout import caffe_to_keras_kernel


def conv2d_keras(x, kernel, bias=None, *, strides=1, padding="valid", dilation_rate=1, groups=1,
                 data_format="channels_last"):
    """Keras ``Conv2D`` forward (TensorFlow's arithmetic), without Keras.

    Parameters
    ----------
    x : array
        (N, H, W, C) for ``data_format="channels_last"`` (Keras's default), (N, C, H, W) for
        ``"channels_first"``.
    kernel : array (kernel_h, kernel_w, C/groups, filters)
        Keras's HWIO kernel, for both data formats.
    bias : array (filters,) or None
    strides, dilation_rate : int or (h, w) pair
    padding : "valid" or "same"
        ``"valid"``: no padding, ``out = floor((in - extent) / stride) + 1``.
        ``"same"``: ``out = ceil(in / stride)``; the total padding
        ``max((out-1)*stride + extent - in, 0)`` is split with the odd cell at the
        bottom/right, which is where TensorFlow differs from Caffe's symmetric ``pad``.
        ``extent = dilation_rate*(kernel-1) + 1``.
    groups : int
        Channel groups, split into contiguous blocks as in Caffe.

    Returns
    -------
    y : array in the layout of ``x``, with ``filters`` channels.
    """
    x = as_array(x, "x")
    kernel = as_array(kernel, "kernel")
    bias = None if bias is None else as_array(bias, "bias")
    geometry = keras_conv2d_geometry(
        x.shape, kernel.shape, None if bias is None else bias.shape,
        strides, padding, dilation_rate, groups, data_format,
    )
    dtype = compute_dtype(("x", x), ("kernel", kernel), ("bias", bias))
    # NHWC data goes to the engine as it is (it packs from it and writes NHWC): same bits as
    # the NCHW path, no whole-tensor copies. Only the small kernel is reordered to OIHW.
    return _forward(geometry, x, kernel.transpose(3, 2, 0, 1), bias, dtype,
                    channels_last=data_format == "channels_last")


def conv2d_transpose_keras(x, kernel, bias=None, *, strides=1, padding="valid",
                           output_padding=None, dilation_rate=1, data_format="channels_last"):
    """Keras ``Conv2DTranspose`` forward (TensorFlow's ``conv2d_transpose``), without Keras.

    kernel (kernel_h, kernel_w, filters, C_in); bias (filters,) or None. Output length per axis,
    with ``extent = dilation_rate*(kernel-1) + 1`` (Keras 3's
    ``compute_conv_transpose_output_shape``):

    - ``output_padding=None``: "valid" ``(in-1)*strides + max(extent, strides)``, "same"
      ``in*strides``;
    - otherwise (``0 <= output_padding < strides``): "valid"
      ``(in-1)*strides + extent + output_padding``, "same"
      ``(in-1)*strides + extent % 2 + output_padding``.

    The result is the input gradient of a ``Conv2D`` with this kernel, that padding and an
    input of the output's size (TensorFlow's "same" split: the odd padding cell at the
    bottom/right); equivalently Caffe's Deconvolution with weights
    ``kernel.transpose(3, 2, 0, 1)`` cropped as TensorFlow pads.

    Keras refuses ``strides > 1`` together with ``dilation_rate > 1``, and TensorFlow's CPU
    kernel any ``dilation_rate > 1``; fastconv computes those well-defined cases too (checked
    against PyTorch's ``conv_transpose2d`` through ``deconv2d_caffe``). Raises ValueError where
    TensorFlow rejects the call: an even kernel with ``padding="same"`` and
    ``output_padding=0`` gives an output whose forward convolution does not map back to x.
    """
    from .layers import _deconv_forward

    x = as_array(x, "x")
    kernel = as_array(kernel, "kernel")
    bias = None if bias is None else as_array(bias, "bias")
    geometry = keras_conv2d_transpose_geometry(
        x.shape, kernel.shape, None if bias is None else bias.shape, strides, padding,
        output_padding, dilation_rate, data_format,
    )
    dtype = compute_dtype(("x", x), ("kernel", kernel), ("bias", bias))
    channels_last = data_format == "channels_last"
    x_nchw = x.transpose(0, 3, 1, 2) if channels_last else x
    y = _deconv_forward(geometry, x_nchw, kernel.transpose(3, 2, 0, 1), bias, dtype)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)) if channels_last else y


def pool2d_keras(x, pool_size, strides=None, padding="valid", method="max",
                 data_format="channels_last"):
    """Keras ``MaxPooling2D`` / ``AveragePooling2D`` forward, without Keras.

    ``strides`` defaults to ``pool_size``. Output per axis: "valid"
    ``floor((in - pool_size) / strides) + 1``; "same" ``ceil(in / strides)`` with the odd
    padding cell at the bottom/right. Padding never counts: MAX ignores it and AVE divides by the
    number of input cells in the window. Caffe's Pooling rounds up instead (3x3/2 on 112 gives
    Caffe 56, Keras "valid" 55); port a Caffe pooling faithfully with :func:`pool2d_caffe`.
    """
    from .layers import _pool

    x = as_array(x, "x")
    method = pool_method(method)
    geometry = keras_pool2d_geometry(x.shape, pool_size, strides, padding, data_format)
    dtype = compute_dtype(("x", x))
    channels_last = data_format == "channels_last"
    y = _pool(geometry, method, x.transpose(0, 3, 1, 2) if channels_last else x, dtype)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)) if channels_last else y


# ---------------------------------------------------------------------------------------------
# Caffe -> Keras layers. Keras is imported inside the functions: importing fastconv.keras must
# never import TensorFlow or Keras.

_PAIR_FIELDS = {  # Caffe's field name -> (name of the single field, _h field, _w field)
    "kernel": ("kernel_size", "kernel_h", "kernel_w"),
    "stride": ("stride", "stride_h", "stride_w"),
    "pad": ("pad", "pad_h", "pad_w"),
}
_CONV_KEYS = {"num_output", "kernel_size", "kernel_h", "kernel_w", "stride", "stride_h",
              "stride_w", "pad", "pad_h", "pad_w", "dilation", "group", "bias_term", "axis",
              "weight_filler", "bias_filler", "engine", "force_nd_im2col"}
_POOL_KEYS = {"pool", "kernel_size", "kernel_h", "kernel_w", "stride", "stride_h", "stride_w",
              "pad", "pad_h", "pad_w", "global_pooling", "round_mode", "engine"}
_POOL_METHODS = {"MAX": "MAX", 0: "MAX", "AVE": "AVE", 1: "AVE", "STOCHASTIC": "STOCHASTIC",
                 2: "STOCHASTIC"}


def _check_keys(params, allowed, layer_type):
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict shaped like Caffe's {layer_type.lower()}_param; "
                        f"got {type(params).__name__}")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown {layer_type} parameter(s) {', '.join(map(repr, unknown))}; "
                         f"Caffe's {layer_type.lower()}_param has {', '.join(sorted(allowed))}")


def _repeated(value, field, count_max):
    """A Caffe repeated field (an int or a list of 1..count_max ints) -> tuple of ints."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not 1 <= len(items) <= count_max or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{field}={value!r} must be an int or a list of 1 or 2 ints (h, w)")
    return tuple(int(v) for v in items)


def _caffe_pair(params, what, default):
    """Read one of Caffe's kernel/stride/pad specs (single field or the _h/_w pair) -> (h, w)."""
    single, field_h, field_w = _PAIR_FIELDS[what]
    has_h, has_w = field_h in params, field_w in params
    if single in params and (has_h or has_w):
        raise ValueError(f"give either {single} or {field_h}/{field_w}, not both "
                         "(Caffe refuses the mix)")
    if has_h != has_w:
        given, missing = (field_h, field_w) if has_h else (field_w, field_h)
        crash = (" — real Caffe leaves it 0 and dies with SIGFPE (division by zero)"
                 if what == "stride" else "")
        raise ValueError(f"{given} was given without {missing}; Caffe needs both{crash}")
    if has_h:
        return (_repeated(params[field_h], field_h, 1)[0], _repeated(params[field_w], field_w, 1)[0])
    if single not in params:
        if default is None:
            raise ValueError(f"{single} (or {field_h} and {field_w}) is required")
        return (default, default)
    values = _repeated(params[single], single, 2)
    return values * 2 if len(values) == 1 else values


def _parse_conv_params(params, layer_type):
    _check_keys(params, _CONV_KEYS, layer_type)
    if "num_output" not in params:
        raise ValueError(f"num_output is required ({layer_type})")
    kernel = _caffe_pair(params, "kernel", None)
    stride = _caffe_pair(params, "stride", 1)
    pad = _caffe_pair(params, "pad", 0)
    dilation = _repeated(params.get("dilation", 1), "dilation", 2)
    dilation = dilation * 2 if len(dilation) == 1 else dilation
    group = params.get("group", 1)
    if min(kernel) < 1:
        raise ValueError(f"kernel size {kernel} must be >= 1")
    if min(stride) < 1:
        raise ValueError(f"stride={stride} must be >= 1 (Caffe dies with SIGFPE on stride 0)")
    if min(pad) < 0:
        raise ValueError(f"pad={pad} must be >= 0")
    if min(dilation) < 1:
        raise ValueError(f"dilation={dilation} must be >= 1 (Caffe silently accepts 0, which "
                         "reads every tap from one pixel)")
    if isinstance(group, bool) or not isinstance(group, (int, np.integer)) or group < 1:
        raise ValueError(f"group={group!r} must be an integer >= 1")
    if params.get("axis", 1) != 1:
        raise NotImplementedError("only Caffe's default axis: 1 (NCHW channels) maps to Keras")
    return dict(num_output=int(params["num_output"]), kernel=kernel, stride=stride, pad=pad,
                dilation=dilation, group=int(group), bias_term=bool(params.get("bias_term", True)))


def _check_bias(spec, b, count):
    if spec["bias_term"] and b is None:
        raise ValueError("bias_term is true (Caffe's default) but b is None: pass the bias blob "
                         "or set bias_term: false")
    if not spec["bias_term"] and b is not None:
        raise ValueError("bias_term is false but a bias b was given")
    if b is not None and np.shape(b) != (count,):
        raise ValueError(f"b must have shape (num_output,) = ({count},); got {np.shape(b)}")


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
      Keras refuses strides > 1 with dilation > 1, so that case runs the convolution at stride 1
      and subsamples with ``MaxPooling2D(pool_size=1, strides=stride)`` (a pure selection).
    * Pooling: see :func:`pooling_from_caffe`.
    * Deconvolution: ``Conv2DTranspose(padding="valid")`` then ``Cropping2D`` of ``pad`` (plus
      the cells Keras adds when the kernel is smaller than the stride); dilation is applied by
      spreading the kernel with zeros; ``group > 1`` raises NotImplementedError (Keras's
      Conv2DTranspose has no groups).
    """
    if layer_type == "Convolution":
        return _conv_from_caffe(params, w, b, _input_hw(input_size))
    if layer_type == "Deconvolution":
        return _deconv_from_caffe(params, w, b)
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

    spec = _parse_conv_params(params, "Convolution")
    w = np.asarray(w, dtype=np.float32) if w is not None else None
    if w is None or w.ndim != 4:
        raise ValueError("w must be Caffe's 4-D weight blob (num_output, C/group, kernel_h, kernel_w)")
    if w.shape[0] != spec["num_output"] or tuple(w.shape[2:]) != spec["kernel"]:
        raise ValueError(
            f"w has shape {w.shape}; num_output={spec['num_output']} and kernel "
            f"{spec['kernel'][0]}x{spec['kernel'][1]} need (num_output, C/group, "
            f"{spec['kernel'][0]}, {spec['kernel'][1]})" + (
                "; it looks like a Keras HWIO kernel: convert with fastconv.keras_to_caffe_kernel"
                if w.shape[3] == spec["num_output"] else ""))
    if spec["num_output"] % spec["group"]:
        raise ValueError(f"group={spec['group']} does not divide num_output={spec['num_output']} "
                         "(Caffe requires num_output % group == 0)")
    _check_bias(spec, b, spec["num_output"])
    kernel, stride, pad, dilation = spec["kernel"], spec["stride"], spec["pad"], spec["dilation"]
    in_channels = w.shape[1] * spec["group"]
    # Keras refuses any stride > 1 together with any dilation > 1 (on either axis).
    subsample = max(stride) > 1 and max(dilation) > 1
    sizes = input_hw or (None, None)

    extra = [0, 0]
    if input_hw is not None:
        for axis in (0, 1):
            out = caffe_conv_out_size(sizes[axis], kernel[axis], stride[axis], pad[axis], dilation[axis])
            if out < 1:
                raise ValueError(f"no output: input {input_hw} is smaller than the kernel's extent "
                                 "with this pad (real Caffe aborts)")
            # Caffe's truncation case: give 'valid' the zeros that make its one output.
            extra[axis] = max(extent(kernel[axis], dilation[axis]) - (sizes[axis] + 2 * pad[axis]), 0)
    same = (pad != (0, 0) and not subsample and extra == [0, 0]
            and all(_same_is_identical(sizes[a], kernel[a], stride[a], pad[a], dilation[a])
                    for a in (0, 1)))
    layers = []
    if not same and (pad != (0, 0) or extra != [0, 0]):
        layers.append(keras.layers.ZeroPadding2D(
            ((pad[0], pad[0] + extra[0]), (pad[1], pad[1] + extra[1]))))
    conv = keras.layers.Conv2D(
        spec["num_output"], kernel, strides=(1, 1) if subsample else stride,
        padding="same" if same else "valid", dilation_rate=dilation, groups=spec["group"],
        use_bias=spec["bias_term"])
    conv.build((None, None, None, in_channels))
    conv.set_weights([caffe_to_keras_kernel(w)] + ([np.asarray(b, np.float32)] if spec["bias_term"] else []))
    layers.append(conv)
    if subsample:
        layers.append(keras.layers.MaxPooling2D(pool_size=1, strides=stride))
    return layers


def _deconv_from_caffe(params, w, b):
    import keras

    spec = _parse_conv_params(params, "Deconvolution")
    if spec["group"] != 1:
        raise NotImplementedError(
            f"Deconvolution with group={spec['group']}: Keras's Conv2DTranspose has no groups "
            "argument, so no single stock layer reproduces it")
    w = np.asarray(w, dtype=np.float32) if w is not None else None
    if w is None or w.ndim != 4 or w.shape[1] != spec["num_output"] or tuple(w.shape[2:]) != spec["kernel"]:
        raise ValueError(
            f"w must be Caffe's Deconvolution blob (C_in, num_output, kernel_h, kernel_w) = "
            f"(C_in, {spec['num_output']}, {spec['kernel'][0]}, {spec['kernel'][1]}); got "
            f"{None if w is None else w.shape}")
    _check_bias(spec, b, spec["num_output"])
    kernel, stride, pad, dilation = spec["kernel"], spec["stride"], spec["pad"], spec["dilation"]
    spans = tuple(extent(k, d) for k, d in zip(kernel, dilation))
    # Dilation as a kernel spread with zeros: exact (each zero tap adds 0) and free of Keras's
    # refusal of strides > 1 with dilation > 1.
    spread = np.zeros(w.shape[:2] + spans, dtype=np.float32)
    spread[:, :, ::dilation[0], ::dilation[1]] = w
    layer = keras.layers.Conv2DTranspose(spec["num_output"], spans, strides=stride,
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
    """
    import keras

    _check_keys(params, _POOL_KEYS, "Pooling")
    pool = params.get("pool", "MAX")
    method = _POOL_METHODS.get(pool.upper() if isinstance(pool, str) else pool)
    if method is None:
        raise ValueError(f"pool={params.get('pool')!r} must be MAX, AVE or STOCHASTIC")
    if method == "STOCHASTIC":
        raise NotImplementedError("STOCHASTIC pooling samples at training time and weights by "
                                  "value at test time; Keras has no such layer")
    round_mode = params.get("round_mode", "CEIL")
    if round_mode not in ("CEIL", "FLOOR", 0, 1):
        raise ValueError(f"round_mode={round_mode!r} must be CEIL or FLOOR")
    ceil_mode = round_mode in ("CEIL", 0)
    if params.get("global_pooling", False):
        given = sorted(set(params) & {"kernel_size", "kernel_h", "kernel_w", "stride",
                                      "stride_h", "stride_w", "pad", "pad_h", "pad_w"})
        if given:
            raise ValueError(f"global_pooling: true takes no {', '.join(given)} (Caffe refuses them)")
        cls = keras.layers.GlobalMaxPooling2D if method == "MAX" else keras.layers.GlobalAveragePooling2D
        return [cls(keepdims=True)]
    kernel = _caffe_pair(params, "kernel", None)
    stride = _caffe_pair(params, "stride", 1)
    pad = _caffe_pair(params, "pad", 0)
    if min(kernel) < 1 or min(stride) < 1 or min(pad) < 0:
        raise ValueError(f"kernel {kernel} and stride {stride} must be >= 1, pad {pad} >= 0")
    if any(p >= k for p, k in zip(pad, kernel)):
        raise ValueError(f"pad {pad} must be smaller than the kernel {kernel} (Caffe's check)")
    input_hw = _input_hw(input_size)
    if input_hw is None:
        if stride != (1, 1):
            raise ValueError(
                "input_size=(H, W) is needed for pooling with stride > 1: whether Caffe's ceil "
                "rule adds a row/column (which Keras's floor drops) depends on the input size")
        input_hw = (max(kernel) + 2 * max(stride), ) * 2  # any size behaves alike at stride 1
    outs = [caffe_pool_out_size(input_hw[a], kernel[a], stride[a], pad[a], pad != (0, 0), ceil_mode)
            for a in (0, 1)]
    if min(outs) < 1:
        raise ValueError(f"no output: input {input_hw} is smaller than the pooling window")
    if any((outs[a] - 1) * stride[a] >= input_hw[a] + pad[a] for a in (0, 1)):
        # Only without pad (Caffe clips this window when pad > 0): kernel < stride.
        raise NotImplementedError(
            f"Caffe's last pooling window starts past the input (kernel {kernel} < stride "
            f"{stride}, no pad, input {input_hw}): Caffe outputs -FLT_MAX there for MAX and "
            "divides by zero for AVE; that is not worth porting faithfully")
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


# ---------------------------------------------------------------------------------------------
# Checking a live Keras layer


def check_layer(layer, x, *, rtol=None, atol=None, raise_on_failure=True):
    """Run a Keras ``Conv2D`` or ``DepthwiseConv2D`` on ``x`` and check it against fastconv.

    The layer's own kernel, bias, strides, padding, dilation, groups and data format are used;
    its activation is set aside for the call (the pre-activation output is what a convolution
    reference can check) and restored. Returns the ``fastconv.testing.Comparison``; on failure
    raises AssertionError with the diagnosis (or returns the report when
    ``raise_on_failure=False``).
    """
    import keras

    from .testing.oracle import check_conv, format_failure

    x = np.asarray(x)
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        actual = keras.ops.convert_to_numpy(layer(x))
    finally:
        layer.activation = activation
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        # (kh, kw, C, M) is Conv2D's (kh, kw, 1, C*M) with groups=C: filter c*M + m.
        groups = kernel.shape[2]
        kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], 1, -1)
    elif isinstance(layer, keras.layers.Conv2D):
        groups = getattr(layer, "groups", 1)
    else:
        raise TypeError(f"check_layer handles keras.layers.Conv2D and DepthwiseConv2D; got "
                        f"{type(layer).__name__}")
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
    report, diagnoses = check_conv(
        actual, x, kernel, bias, layout="keras", rtol=rtol, atol=atol, strides=layer.strides,
        padding=layer.padding, dilation_rate=layer.dilation_rate, groups=groups,
        data_format=layer.data_format)
    if not report.passed and raise_on_failure:
        raise AssertionError(f"Keras layer {layer.name!r}: "
                             + format_failure(report, diagnoses, "keras"))
    return report
