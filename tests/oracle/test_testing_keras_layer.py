"""check_keras_layer: a live Keras layer checked against the Caffe layer it ports.

Each port is a real Keras layer built once with the mistake; the oracle must fail it and name
the mistake. The faithful port (fastconv.keras.from_caffe) must pass. Without Caffe
parameters the check can only see Keras's own semantics, and must say so.
"""
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

from fastconv.keras import from_caffe  # noqa: E402
from fastconv.testing import check_keras_layer  # noqa: E402

RNG = np.random.default_rng(5)
X = RNG.standard_normal((1, 12, 12, 3)).astype(np.float32)          # NHWC
W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)            # Caffe OIHW
B = RNG.standard_normal(4).astype(np.float32)
PARAMS = {"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1}


def conv_port(kernel_hwio, padding="valid", zero_pad=True):
    conv = keras.layers.Conv2D(4, 3, strides=2, padding=padding)
    conv.build((None, None, None, 3))
    conv.set_weights([kernel_hwio, B])
    return ([keras.layers.ZeroPadding2D(1)] if zero_pad else []) + [conv]


def diagnosis(result):
    assert not result, "the broken port passed"
    return [d.name for d in result.diagnoses]


def test_faithful_port_passes_without_deprecation_warnings():
    layers = from_caffe(PARAMS, W, B)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        result = check_keras_layer(layers, X, PARAMS, W, B)
    assert result and result.passed


@pytest.mark.parametrize("mistake, make_layers", [
    ("kernel_reshaped_caffe_to_keras", lambda: conv_port(W.reshape(3, 3, 3, 4))),
    ("kernel_flipped", lambda: conv_port(W.transpose(2, 3, 1, 0)[::-1, ::-1])),
    ("same_instead_of_caffe_pad",
     lambda: conv_port(W.transpose(2, 3, 1, 0), padding="same", zero_pad=False)),
])
def test_broken_conv_ports_are_caught_and_named(mistake, make_layers):
    layers = make_layers()
    result = check_keras_layer(layers, X, PARAMS, W, B, raise_on_failure=False)
    assert diagnosis(result)[0] == mistake
    with pytest.raises(AssertionError, match="Keras layer"):
        check_keras_layer(layers, X, PARAMS, W, B)


def test_without_caffe_params_only_keras_semantics_and_it_says_so():
    reshaped = conv_port(W.reshape(3, 3, 3, 4), padding="same", zero_pad=False)[0]
    result = check_keras_layer(reshaped, X)          # the broken port passes this check...
    assert result
    assert "Keras's own semantics only" in str(result)    # ...and the message says why
    with pytest.raises(TypeError, match="caffe_params"):
        check_keras_layer(keras.layers.MaxPooling2D(2), X)


def test_floor_pooling_port_is_named():
    params = {"pool": "MAX", "kernel_size": 3, "stride": 2}
    result = check_keras_layer(keras.layers.MaxPooling2D(3, strides=2), X, params,
                               layer_type="Pooling", raise_on_failure=False)
    assert diagnosis(result) == ["floor_instead_of_ceil"]


def test_deconv_same_port_is_named():
    params = {"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1}
    w = RNG.standard_normal((3, 4, 3, 3)).astype(np.float32)       # (C_in, num_output, kh, kw)
    layer = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
    layer.build((None, None, None, 3))
    layer.set_weights([w.transpose(2, 3, 1, 0), B])
    result = check_keras_layer(layer, X, params, w, B, layer_type="Deconvolution",
                               raise_on_failure=False)
    assert diagnosis(result) == ["deconv_keras_same_for_caffe_pad"]
    assert check_keras_layer(from_caffe(params, w, B, layer_type="Deconvolution"), X, params, w,
                             B, layer_type="Deconvolution")


def test_inconsistent_caffe_params_are_refused():
    layers = from_caffe(PARAMS, W, B)
    with pytest.raises(ValueError, match="num_output"):
        check_keras_layer(layers, X, dict(PARAMS, num_output=5), W, B)
    with pytest.raises(ValueError, match="bias_term"):
        check_keras_layer(layers, X, PARAMS, W, None)
    with pytest.raises(ValueError, match="kernal_size"):
        check_keras_layer(layers, X, dict(PARAMS, kernal_size=3), W, B)
