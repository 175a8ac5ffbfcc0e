"""Checking a live Keras layer against the Caffe layer it ports.

:func:`check_keras_layer` runs the Keras layer (or the list of layers a port made, such as
``fastconv.keras.from_caffe`` returns) on NHWC data and compares its output with Caffe's answer
for the Caffe layer's parameters and blobs, through the convolution, deconvolution or pooling
oracle. That is what catches a port's mistakes: a kernel reshaped instead of transposed, 'same'
padding for Caffe's symmetric pad, a flipped kernel, floor-sized pooling, a missing bias.
Given no Caffe parameters it can only check a Keras ``Conv2D``/``DepthwiseConv2D`` against
Keras's own semantics (its own kernel and padding), which every such port passes.

Keras is imported only when a layer is checked.
"""
from __future__ import annotations

import warnings

import numpy as np

from .._params.caffe_message import conv_param_kwargs, pooling_param_kwargs
from ..layout import nhwc_to_nchw
from .conv import problem_from_call
from .deconv import check_deconv
from .diagnosis import check
from .pool import check_pool

KERAS_ONLY_NOTE = ("checked against Keras's own semantics only (the layer's own kernel, bias, "
                   "strides and padding): a port that reshaped or flipped the Caffe blob or used "
                   "'same' for Caffe's pad passes this; pass caffe_params, w and b to check the "
                   "layer against the Caffe layer it ports")


def check_keras_layer(layer, x, caffe_params=None, w=None, b=None, *,
                      layer_type="Convolution", rtol=None, atol=None, raise_on_failure=True):
    """Run a Keras layer on ``x`` (NHWC) and check its output against Caffe's answer.

    ``layer`` is a Keras layer, or a list of layers applied in order (a port often needs
    ``ZeroPadding2D`` before its ``Conv2D``; ``fastconv.keras.from_caffe`` returns such a
    list). Activations are set aside for the call (a Caffe Convolution has none) and restored.

    With ``caffe_params``, the Caffe layer's parameter dict (``convolution_param`` for
    ``layer_type='Convolution'`` or ``'Deconvolution'``: ``num_output``, ``kernel_size`` |
    ``kernel_h``/``kernel_w``, ``stride`` | ``stride_h``/``stride_w``, ``pad`` |
    ``pad_h``/``pad_w``, ``dilation``, ``group``, ``bias_term``; ``pooling_param`` for
    ``'Pooling'``: ``pool``, the kernel, stride and pad fields, ``global_pooling``), and its
    blobs ``w`` (Caffe's layout: OIHW, or ``(C_in, num_output/group, kh, kw)`` for
    Deconvolution) and ``b``, the output is compared with fastconv's reference of that Caffe
    layer on the same ``x``: a wrong port fails, and the diagnosis names its mistake (reshaped
    or flipped kernel, 'same' padding, floor-sized pooling, ...). This is the check to use.

    Without ``caffe_params`` only a ``Conv2D`` or ``DepthwiseConv2D`` can be checked, and only
    against Keras's own semantics: its own kernel, padding and strides. A port that loaded the
    Caffe blob wrongly or chose the wrong padding passes; the result's message says so.

    Returns the :class:`~fastconv.testing.Verdict` (true when the layer passed); a failing
    layer raises AssertionError with the diagnosis unless ``raise_on_failure=False``.
    """
    import keras

    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D NHWC data (Keras channels_last); got shape {x.shape}")
    actual = _run(keras, layers, x)
    name = ", ".join(getattr(each, "name", type(each).__name__) for each in layers)
    if caffe_params is None:
        if w is not None or b is not None:
            raise ValueError("w and b are the Caffe layer's blobs: pass caffe_params with them")
        result = _keras_semantics(keras, layers, x, actual, rtol, atol)
    else:
        result = _against_caffe(layer_type, caffe_params, w, b, x, actual, rtol, atol)
    if not result and raise_on_failure:
        raise AssertionError(f"Keras layer {name}: {result}")
    return result


def _run(keras, layers, x):
    saved = [(each, each.activation) for each in layers if hasattr(each, "activation")]
    for each, _ in saved:
        each.activation = keras.activations.linear
    try:
        y = x
        for each in layers:
            y = each(y)
    finally:
        for each, activation in saved:
            each.activation = activation
    return _to_numpy(keras, y)


def _to_numpy(keras, tensor):
    # TensorFlow's tensors warn under numpy 2 on every conversion (their __array__ takes no
    # copy keyword): a warning about Keras, not about the layer, once per checked layer.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy",
                                DeprecationWarning)
        return keras.ops.convert_to_numpy(tensor)


def _keras_semantics(keras, layers, x, actual, rtol, atol):
    if len(layers) != 1 or not isinstance(layers[0], (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
        raise TypeError("without caffe_params only one keras.layers.Conv2D or DepthwiseConv2D "
                        f"can be checked (against Keras's own semantics); got "
                        f"{[type(each).__name__ for each in layers]}")
    conv = layers[0]
    kernel = _to_numpy(keras, conv.kernel)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # (kh, kw, C, M) is Conv2D's (kh, kw, 1, C*M) with groups=C: filter c*M + m.
        groups = kernel.shape[2]
        kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], 1, -1)
    else:
        groups = getattr(conv, "groups", 1)
    bias = _to_numpy(keras, conv.bias) if conv.use_bias else None
    problem = problem_from_call(x, kernel, bias, "keras", dict(
        strides=conv.strides, padding=conv.padding, dilation_rate=conv.dilation_rate,
        groups=groups, data_format=conv.data_format))
    return check("convolution", "Keras semantics, NHWC", actual, problem, rtol=rtol, atol=atol,
                 note=KERAS_ONLY_NOTE)


def _against_caffe(layer_type, params, w, b, x, actual, rtol, atol):
    if not isinstance(params, dict):
        raise TypeError(f"caffe_params must be a dict like Caffe's layer parameters; got "
                        f"{type(params).__name__}")
    if layer_type == "Pooling":
        if w is not None or b is not None:
            raise ValueError("Caffe Pooling has no blobs: pass w=None and b=None")
        return check_pool(actual, x, layout="keras", rtol=rtol, atol=atol,
                          **_pool_arguments(params))
    if layer_type not in ("Convolution", "Deconvolution"):
        raise ValueError(f"layer_type={layer_type!r} must be 'Convolution', 'Deconvolution' or "
                         "'Pooling'")
    arguments = _conv_arguments(params, w, b, layer_type)
    if layer_type == "Deconvolution":
        return check_deconv(nhwc_to_nchw(actual), nhwc_to_nchw(x), w, b, rtol=rtol, atol=atol,
                            **arguments)
    problem = problem_from_call(nhwc_to_nchw(x), w, b, "caffe", arguments)
    return check("convolution", "Caffe Convolution, Keras layout NHWC", actual,
                 problem.replace(channels_last=True), rtol=rtol, atol=atol)


def _conv_arguments(params, w, b, layer_type):
    """Keyword arguments of the Caffe call, after checking the blobs against the message."""
    message = conv_param_kwargs(params, layer_type)
    if w is None:
        raise ValueError(f"w, the Caffe {layer_type} weight blob, is required with caffe_params")
    shape = np.shape(w)
    if len(shape) != 4:
        raise ValueError(f"w must be Caffe's 4-D weight blob; got shape {shape}")
    group = message["group"]
    outputs = shape[0] if layer_type == "Convolution" else shape[1] * group
    blob_layout = ("(num_output, C/group, kh, kw)" if layer_type == "Convolution"
                   else "(C_in, num_output/group, kh, kw)")
    if message["num_output"] != outputs:
        raise ValueError(f"num_output={message['num_output']} does not match the blob w of shape "
                         f"{shape} ({layer_type} blobs are {blob_layout})")
    if message["kernel"] != tuple(shape[2:]):
        raise ValueError(f"kernel_size {message['kernel']} does not match the blob w of shape "
                         f"{shape}")
    if message["bias_term"] != (b is not None):
        raise ValueError("bias_term is true (Caffe's default) but b is None" if b is None else
                         "bias_term is false but b was given")
    return {name: message[name] for name in ("stride", "pad", "dilation", "group")}


def _pool_arguments(params):
    message = pooling_param_kwargs(params)
    if message["method"] == "STOCHASTIC":
        raise ValueError("pool=STOCHASTIC: the oracle checks MAX and AVE pooling")
    if not message.pop("ceil_mode"):
        raise ValueError("round_mode FLOOR (later Caffe builds) is not Caffe 1.0's pooling; the "
                         "oracle checks Caffe 1.0's CEIL")
    message["method"] = message["method"].lower()
    return message
