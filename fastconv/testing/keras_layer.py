"""A live Keras ``Conv2D``/``DepthwiseConv2D`` checked against fastconv's oracle (the successor of
``fastconv.keras.check_layer``). Keras is imported when the function is called."""
from __future__ import annotations

import numpy as np

from .oracle import check_conv, format_failure


def check_keras_layer(layer, x, *, rtol=None, atol=None, raise_on_failure=True):
    """Run a Keras ``Conv2D`` or ``DepthwiseConv2D`` on ``x`` and check it against fastconv.

    The layer's own kernel, bias, strides, padding, dilation, groups and data format are used;
    its activation is set aside for the call (the pre-activation output is what a convolution
    reference can check) and restored. Returns the ``fastconv.testing.Comparison``; on failure
    raises AssertionError with the diagnosis (or returns the report when
    ``raise_on_failure=False``).
    """
    import keras

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
        raise TypeError(f"check_keras_layer handles keras.layers.Conv2D and DepthwiseConv2D; got "
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
