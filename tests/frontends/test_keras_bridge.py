"""fastconv.keras.from_caffe and fastconv.testing.check_keras_layer, run in real Keras (TensorFlow backend, CPU).

Convolution is checked against fastconv.conv2d_caffe; Pooling and Deconvolution against the
plain numpy references of Caffe's rules in tests/reference, and against fastconv.pool2d_caffe /
deconv2d_caffe (whose own tests include real Caffe's golden data).
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference.deconv import caffe_deconv2d
from reference.pool import caffe_pool

import fastconv
from fastconv.testing import assert_conv_close, check_conv, strategies

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
from fastconv.keras import from_caffe, pooling_from_caffe  # noqa: E402
from fastconv.testing import check_keras_layer  # noqa: E402

RNG = np.random.default_rng(7)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def run_layers(layers, x_nchw):
    y = fastconv.nchw_to_nhwc(x_nchw)
    for layer in layers:
        y = layer(y)
    return fastconv.nhwc_to_nchw(keras.ops.convert_to_numpy(y))


def kinds(layers):
    return [type(layer).__name__ + (f"/{layer.padding}" if isinstance(getattr(layer, "padding", None), str) else "")
            for layer in layers]


# --- Convolution --------------------------------------------------------------------------------

CONV_CASES = [
    # (convolution_param, NCHW input shape, input_size given?, expected layer kinds)
    ({"num_output": 8, "kernel_size": 11, "stride": 4}, (1, 3, 67, 67), False, ["Conv2D/valid"]),
    ({"num_output": 8, "kernel_size": 7, "stride": 2, "pad": 3}, (1, 3, 32, 32), True,
     ["ZeroPadding2D", "Conv2D/valid"]),                      # ResNet stem: 'same' would differ
    ({"num_output": 4, "kernel_size": 3, "pad": 1}, (2, 3, 10, 12), False, ["Conv2D/same"]),
    ({"num_output": 4, "kernel_size": 3, "pad": 2, "dilation": 2}, (1, 3, 9, 8), False,
     ["Conv2D/same"]),
    ({"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1}, (1, 3, 25, 25), True,
     ["Conv2D/same"]),                                         # odd size: provably the same
    ({"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1}, (1, 3, 24, 24), True,
     ["ZeroPadding2D", "Conv2D/valid"]),                       # even size: 'same' pads 0 on top
    ({"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1}, (1, 3, 25, 25), False,
     ["ZeroPadding2D", "Conv2D/valid"]),                       # size unknown: nothing proven
    ({"num_output": 6, "kernel_h": 3, "kernel_w": 5, "stride_h": 2, "stride_w": 1, "pad_h": 1,
      "pad_w": 2, "group": 2, "dilation": [2, 1]}, (2, 4, 13, 11), False,
     ["ZeroPadding2D", "Conv2D/valid", "Lambda"]),             # stride with dilation
    ({"num_output": 4, "kernel_size": 6, "stride": 4}, (1, 2, 5, 7), True,
     ["Cropping2D", "ZeroPadding2D", "Conv2D/valid"]),         # Caffe's truncation case
    ({"num_output": 3, "kernel_size": 3, "stride": [1, 5], "pad": 1}, (2, 1, 6, 4), True,
     ["Cropping2D", "ZeroPadding2D", "Conv2D/valid"]),         # one output on w: one window
    ({"num_output": 4, "kernel_size": [3, 2], "stride": 2, "bias_term": False}, (1, 2, 9, 9),
     False, ["Conv2D/valid"]),
]


def caffe_kwargs(params):
    def pair(single, h, w, default):
        if h in params:
            return (params[h], params[w])
        value = params.get(single, default)
        value = value if isinstance(value, (list, tuple)) else [value]
        return tuple(value) * (2 if len(value) == 1 else 1)
    return dict(stride=pair("stride", "stride_h", "stride_w", 1), pad=pair("pad", "pad_h", "pad_w", 0),
                dilation=pair("dilation", "", "", 1), group=params.get("group", 1))


@pytest.mark.parametrize("params, x_shape, known, expected_kinds", CONV_CASES,
                         ids=[f"conv{i}" for i in range(len(CONV_CASES))])
def test_conv_from_caffe_reproduces_caffe(params, x_shape, known, expected_kinds):
    kwargs = caffe_kwargs(params)
    kernel = (params.get("kernel_h", 0), params.get("kernel_w", 0)) if "kernel_h" in params else \
        tuple(params["kernel_size"]) if isinstance(params["kernel_size"], list) else (params["kernel_size"],) * 2
    w = normal(params["num_output"], x_shape[1] // kwargs["group"], *kernel)
    b = normal(params["num_output"]) if params.get("bias_term", True) else None
    x = normal(*x_shape)
    layers = from_caffe(params, w, b, input_size=x_shape[2:] if known else None)
    assert kinds(layers) == expected_kinds
    assert_conv_close(run_layers(layers, x), x, w, b, **kwargs)


def test_conv_from_caffe_stride_with_dilation_keeps_nan_and_minus_inf():
    """Keras refuses strides with dilation, so from_caffe convolves at stride 1 and keeps
    every stride-th output: by a slice, as TensorFlow's MaxPooling2D(pool_size=1) turned NaN
    and -inf into -FLT_MAX."""
    params = {"num_output": 2, "kernel_size": 3, "stride": 2, "dilation": 2, "bias_term": False}
    w = normal(2, 1, 3, 3)
    x = normal(1, 1, 9, 9)
    x[0, 0, 0, 0], x[0, 0, 4, 4] = np.nan, -np.inf   # NaN in output (0, 0); -inf in (0, 0), ...
    layers = from_caffe(params, w)
    got, expected = run_layers(layers, x), fastconv.conv2d_caffe(x, w, stride=2, dilation=2)
    assert np.isnan(expected).any() and np.isinf(expected).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(expected)],
                                  expected[~finite & ~np.isnan(expected)])
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-5, atol=1e-5)


def test_conv_from_caffe_avoids_tensorflow_single_output_stride_bug():
    # TensorFlow's oneDNN convolution (the default on x86) gives [-18, 0, 0, 0] here instead of
    # [-18, -6, 0, 12]: a stride of 3 on an axis with a single output, batch 2, one channel.
    # from_caffe gives that axis exactly one window and stride 1, so the port is right whether
    # oneDNN is on or off.
    x = np.array([[6, 0], [2, 0], [0, 0], [-4, 0]], np.float32).reshape(2, 2, 2, 1)  # NHWC
    w = np.array([-3, -8], np.float32).reshape(1, 1, 1, 2)                             # OIHW
    x_nchw = fastconv.nhwc_to_nchw(x)
    params = {"num_output": 1, "kernel_h": 1, "kernel_w": 2, "stride_h": 1, "stride_w": 3,
              "bias_term": False}
    layers = from_caffe(params, w, input_size=x_nchw.shape[2:])
    assert [layer.strides for layer in layers] == [(1, 1)]
    expected = fastconv.conv2d_caffe(x_nchw, w, stride=(1, 3))
    np.testing.assert_array_equal(expected.ravel(), [-18, -6, 0, 12])
    np.testing.assert_array_equal(run_layers(layers, x_nchw), expected)


def test_seed_layer_naive_reshape_is_caught_and_named():
    x, w, b = normal(1, 3, 67, 67), normal(8, 3, 11, 11), normal(8)
    layer = keras.layers.Conv2D(8, 11, strides=4)
    layer.build((None, None, None, 3))
    layer.set_weights([w.reshape(11, 11, 3, 8), b])          # the naive port
    actual = fastconv.nhwc_to_nchw(keras.ops.convert_to_numpy(layer(fastconv.nchw_to_nhwc(x))))
    with pytest.raises(AssertionError, match="kernel reshaped instead of transposed"):
        assert_conv_close(actual, x, w, b, stride=4)


def test_same_port_of_resnet_stem_is_caught_and_named():
    x, w, b = normal(1, 3, 32, 32), normal(8, 3, 7, 7), normal(8)
    layer = keras.layers.Conv2D(8, 7, strides=2, padding="same")   # caffe-tensorflow's choice
    layer.build((None, None, None, 3))
    layer.set_weights([fastconv.caffe_to_keras_kernel(w), b])
    actual = fastconv.nhwc_to_nchw(keras.ops.convert_to_numpy(layer(fastconv.nchw_to_nhwc(x))))
    report, diagnoses = check_conv(actual, x, w, b, stride=2, pad=3)
    assert not report.passed and [d.name for d in diagnoses] == ["same_instead_of_caffe_pad"]


@pytest.mark.parametrize("params, message", [
    ({"num_output": 4, "kernel_size": 3, "stride_h": 2}, "SIGFPE"),
    ({"num_output": 4, "kernel_size": 3, "kernal_h": 3}, "unknown Convolution parameter"),
    ({"num_output": 4, "kernel_size": 3, "kernel_h": 3, "kernel_w": 3}, "not both"),
    ({"num_output": 4}, "kernel_size"),
    ({"num_output": 4, "kernel_size": 3, "stride": 0}, "stride"),
    ({"num_output": 4, "kernel_size": 3, "dilation": 0}, "dilation"),
    ({"num_output": 4, "kernel_size": 3, "bias_term": False}, "bias_term is false"),
    ({"num_output": 5, "kernel_size": 3}, "num_output=5"),
    ({"num_output": 4, "kernel_size": 3, "group": 0}, "group=0"),
])
def test_from_caffe_rejects_bad_params(params, message):
    with pytest.raises(ValueError, match=message):
        from_caffe(params, normal(4, 3, 3, 3), normal(4))


@pytest.mark.parametrize("field, value, exception", [
    ("group", 1.5, TypeError), ("stride", 0, ValueError), ("pad", -1, ValueError),
    ("dilation", [1, 2, 3], ValueError), ("stride", "2", TypeError),
])
def test_from_caffe_refuses_like_conv2d_caffe(field, value, exception):
    # One validator: the bridge raises what conv2d_caffe raises for the same parameter.
    x, w, b = normal(1, 4, 9, 9), normal(4, 4, 3, 3), normal(4)
    with pytest.raises(exception, match=field) as direct:
        fastconv.conv2d_caffe(x, w, b, **{field: value})
    with pytest.raises(exception) as bridged:
        from_caffe({"num_output": 4, "kernel_size": 3, field: value}, w, b, input_size=(9, 9))
    assert str(bridged.value) == str(direct.value)


def test_from_caffe_names_an_hwio_kernel_and_a_missing_bias():
    with pytest.raises(ValueError, match="keras_to_caffe_kernel"):
        from_caffe({"num_output": 4, "kernel_size": 3}, normal(3, 3, 2, 4), normal(4))
    with pytest.raises(ValueError, match="bias_term is true"):
        from_caffe({"num_output": 4, "kernel_size": 3}, normal(4, 3, 3, 3))


# --- check_keras_layer (Keras semantics only; against Caffe: tests/oracle) ------------------------------------------------------------------------------

def test_check_keras_layer_passes_correct_layers():
    x = normal(2, 11, 9, 4)
    conv = keras.layers.Conv2D(6, (3, 2), strides=(2, 1), padding="same", groups=2,
                               activation="relu", dilation_rate=1)
    assert check_keras_layer(conv, x).passed
    assert conv.activation is keras.activations.relu                  # restored
    assert check_keras_layer(keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), x).passed
    assert check_keras_layer(keras.layers.Conv2D(3, 3, dilation_rate=2, use_bias=False), x).passed


class TheanoConv2D(keras.layers.Conv2D):
    """A layer ported from Theano without flipping: it flips its kernel itself."""

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, keras.ops.flip(keras.ops.flip(kernel, 0), 1))


def test_check_keras_layer_names_a_broken_layer():
    x = normal(1, 10, 10, 3)
    with pytest.raises(AssertionError, match="kernel spatially flipped") as info:
        check_keras_layer(TheanoConv2D(4, 3), x)
    assert "fastconv.flip_kernel" in str(info.value)
    with pytest.raises(TypeError, match="Conv2D"):
        check_keras_layer(keras.layers.Dense(3), x)


# --- Pooling ----------------------------------------------------------------------------------

def pool_pairs(params):
    """(kernel, stride, pad) as (h, w) pairs from a pooling_param dict."""
    kernel = (params["kernel_h"], params["kernel_w"]) if "kernel_h" in params else (params["kernel_size"],) * 2
    stride = (params["stride_h"], params["stride_w"]) if "stride_h" in params else (params.get("stride", 1),) * 2
    pad = (params["pad_h"], params["pad_w"]) if "pad_h" in params else (params.get("pad", 0),) * 2
    return kernel, stride, pad


POOL_CASES = [
    # (pooling_param, NCHW input shape, expected layer kinds)
    ({"pool": "MAX", "kernel_size": 3, "stride": 2}, (1, 2, 13, 13), ["MaxPooling2D/valid"]),
    ({"pool": "MAX", "kernel_size": 3, "stride": 2}, (1, 2, 12, 12), ["MaxPooling2D/same"]),  # ceil
    ({"pool": "MAX", "kernel_size": 3, "stride": 1, "pad": 1}, (1, 2, 6, 7), ["MaxPooling2D/same"]),
    ({"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}, (1, 2, 7, 7),
     ["ZeroPadding2D", "AveragePooling2D/valid"]),
    ({"pool": "AVE", "kernel_size": 2, "stride": 2}, (1, 2, 7, 9), ["AveragePooling2D/same"]),
    ({"pool": "AVE", "kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 1, "pad_h": 1,
      "pad_w": 0}, (1, 2, 9, 6), ["ZeroPadding2D", "AveragePooling2D/valid"]),
    ({"pool": "AVE", "kernel_size": 3, "stride": 1, "pad": 1}, (2, 3, 5, 6),
     ["ZeroPadding2D", "AveragePooling2D/valid"]),            # padding counted in the divisor
    ({"pool": "AVE", "kernel_h": 3, "kernel_w": 1, "stride_h": 2, "stride_w": 4, "pad_h": 1,
      "pad_w": 0}, (1, 2, 6, 3), ["ZeroPadding2D", "AveragePooling2D/same"]),  # pad_h clips w
]


@pytest.mark.parametrize("params, x_shape, expected_kinds", POOL_CASES,
                         ids=[f"pool{i}" for i in range(len(POOL_CASES))])
def test_pooling_from_caffe_matches_caffe_rules(params, x_shape, expected_kinds):
    x = normal(*x_shape)
    layers = from_caffe(params, layer_type="Pooling", input_size=x_shape[2:])
    assert kinds(layers) == expected_kinds
    kernel, stride, pad = pool_pairs(params)
    expected = caffe_pool(x, kernel, stride, pad, params["pool"].lower())
    np.testing.assert_allclose(run_layers(layers, x), expected, rtol=1e-6, atol=1e-6)


def test_pooling_negative_max_with_padding_is_refused_or_assumed_nonnegative():
    params = {"pool": "MAX", "kernel_size": 3, "stride": 2, "pad": 1}
    with pytest.raises(NotImplementedError, match="assume_nonnegative"):
        pooling_from_caffe(params, input_size=(8, 8))
    x = np.abs(normal(1, 2, 8, 8))                               # after a ReLU
    layers = pooling_from_caffe(params, input_size=(8, 8), assume_nonnegative=True)
    np.testing.assert_allclose(run_layers(layers, x), caffe_pool(x, (3, 3), (2, 2), (1, 1), "max"),
                               rtol=1e-6)


def test_pooling_cases_keras_cannot_express_are_refused():
    with pytest.raises(NotImplementedError, match="divisor"):
        pooling_from_caffe({"pool": "AVE", "kernel_size": 4, "stride": 3}, input_size=(8, 8))
    with pytest.raises(NotImplementedError, match="STOCHASTIC"):
        pooling_from_caffe({"pool": "STOCHASTIC", "kernel_size": 2})
    with pytest.raises(ValueError, match="input_size"):
        pooling_from_caffe({"pool": "MAX", "kernel_size": 2, "stride": 2})
    with pytest.raises(ValueError, match="pad"):
        pooling_from_caffe({"pool": "MAX", "kernel_size": 2, "pad": 2})
    with pytest.raises(ValueError, match="global_pooling"):
        pooling_from_caffe({"pool": "AVE", "global_pooling": True, "kernel_size": 2})


def test_global_pooling():
    x = normal(2, 3, 5, 6)
    for method, reduce in (("MAX", np.max), ("AVE", np.mean)):
        layers = from_caffe({"pool": method, "global_pooling": True}, layer_type="Pooling")
        np.testing.assert_allclose(run_layers(layers, x), reduce(x, axis=(2, 3), keepdims=True),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("params, x_shape, expected_kinds", POOL_CASES,
                         ids=[f"pool{i}" for i in range(len(POOL_CASES))])
def test_pooling_from_caffe_matches_fastconv_pool2d_caffe(params, x_shape, expected_kinds):
    x = normal(*x_shape)
    layers = from_caffe(params, layer_type="Pooling", input_size=x_shape[2:])
    kernel, stride, pad = pool_pairs(params)
    expected = fastconv.pool2d_caffe(x, kernel, stride=stride, pad=pad, method=params["pool"].lower())
    np.testing.assert_allclose(run_layers(layers, x), expected, rtol=1e-6, atol=1e-6)


# --- Deconvolution ----------------------------------------------------------------------------

DECONV_CASES = [
    ({"num_output": 3, "kernel_size": 4, "stride": 2, "pad": 1}, (1, 4, 5, 6)),   # FCN upsampling
    ({"num_output": 2, "kernel_size": 3, "bias_term": False}, (2, 3, 4, 4)),
    ({"num_output": 2, "kernel_size": 2, "stride": 3}, (1, 2, 4, 3)),            # kernel < stride
    ({"num_output": 2, "kernel_size": 3, "stride": 2, "pad": 1, "dilation": 2}, (1, 2, 5, 5)),
    ({"num_output": 2, "kernel_h": 3, "kernel_w": 2, "stride_h": 1, "stride_w": 2, "pad_h": 1,
      "pad_w": 0}, (1, 3, 4, 5)),
]


def deconv_arrays(params, x_shape):
    kernel = (params["kernel_h"], params["kernel_w"]) if "kernel_h" in params else (params["kernel_size"],) * 2
    w = normal(x_shape[1], params["num_output"], *kernel)
    b = normal(params["num_output"]) if params.get("bias_term", True) else None
    return normal(*x_shape), w, b


@pytest.mark.parametrize("params, x_shape", DECONV_CASES, ids=[f"deconv{i}" for i in range(len(DECONV_CASES))])
def test_deconv_from_caffe_matches_caffe_rules(params, x_shape):
    x, w, b = deconv_arrays(params, x_shape)
    kwargs = caffe_kwargs(params)
    layers = from_caffe(params, w, b, layer_type="Deconvolution")
    expected = caffe_deconv2d(x, w, b, kwargs["stride"], kwargs["pad"], kwargs["dilation"])
    np.testing.assert_allclose(run_layers(layers, x), expected, rtol=1e-5, atol=1e-5)


def test_deconv_input_size_is_checked_as_caffe_checks_it():
    """A Deconvolution geometry with no output on the given input is refused at once, as
    deconv2d_caffe refuses it (it used to reach Keras's Cropping2D); unknown sizes stay open."""
    params = {"num_output": 1, "kernel_size": 3, "pad": 3, "bias_term": False}
    w = normal(1, 1, 3, 3)
    with pytest.raises(ValueError, match="no output: Deconvolution of input 1x1"):
        from_caffe(params, w, layer_type="Deconvolution", input_size=(1, 1))
    assert from_caffe(params, w, layer_type="Deconvolution", input_size=(6, 6))
    assert from_caffe(params, w, layer_type="Deconvolution")


def test_deconv_with_groups_is_refused():
    with pytest.raises(NotImplementedError, match="groups"):
        from_caffe({"num_output": 4, "kernel_size": 2, "group": 2}, normal(4, 2, 2, 2), normal(4),
                   layer_type="Deconvolution")


@pytest.mark.parametrize("params, x_shape", DECONV_CASES, ids=[f"deconv{i}" for i in range(len(DECONV_CASES))])
def test_deconv_from_caffe_matches_fastconv_deconv2d_caffe(params, x_shape):
    x, w, b = deconv_arrays(params, x_shape)
    layers = from_caffe(params, w, b, layer_type="Deconvolution")
    expected = fastconv.deconv2d_caffe(x, w, b, **caffe_kwargs(params))
    np.testing.assert_allclose(run_layers(layers, x), expected, rtol=1e-5, atol=1e-5)


# --- property: any valid Caffe convolution, ported, runs in Keras as in Caffe -------------------

@settings(max_examples=int(os.environ.get('FC_EXAMPLES', 25)), deadline=None)
@given(strategies.caffe_conv_cases(max_channels=4))
def test_from_caffe_property(case):
    x, w, b, params = case
    convolution_param = {
        "num_output": w.shape[0], "kernel_h": w.shape[2], "kernel_w": w.shape[3],
        "stride_h": params["stride"][0], "stride_w": params["stride"][1],
        "pad_h": params["pad"][0], "pad_w": params["pad"][1], "dilation": list(params["dilation"]),
        "group": params["group"], "bias_term": b is not None,
    }
    layers = from_caffe(convolution_param, w, b, input_size=x.shape[2:])
    assert_conv_close(run_layers(layers, x), x, w, b, exact=True, **params)


@settings(max_examples=int(os.environ.get('FC_EXAMPLES', 40)), deadline=None)
@given(st.data())
def test_pooling_from_caffe_property(data):
    """Whatever pooling_from_caffe builds is exact; what it cannot build it refuses."""
    draw, integers = data.draw, st.integers
    kernel = (draw(integers(1, 4)), draw(integers(1, 4)))
    stride = (draw(integers(1, 3)), draw(integers(1, 3)))
    pad = (draw(integers(0, kernel[0] - 1)), draw(integers(0, kernel[1] - 1)))
    size = tuple(draw(integers(max(1, k - 2 * p), k + 7)) for k, p in zip(kernel, pad))
    method = draw(st.sampled_from(["MAX", "AVE"]))
    nonnegative = draw(st.booleans())
    params = {"pool": method, "kernel_h": kernel[0], "kernel_w": kernel[1], "stride_h": stride[0],
              "stride_w": stride[1], "pad_h": pad[0], "pad_w": pad[1]}
    try:
        layers = pooling_from_caffe(params, input_size=size, assume_nonnegative=nonnegative)
    except NotImplementedError:
        return
    except ValueError as refused:          # refused by fastconv.pool2d_caffe as well
        assert "entirely past the input" in str(refused)
        with pytest.raises(ValueError, match="entirely past the input"):
            fastconv.pool2d_caffe(normal(1, 1, *size), kernel, stride=stride, pad=pad)
        return
    x = normal(1, 2, *size)
    x = np.abs(x) if nonnegative else x
    np.testing.assert_allclose(run_layers(layers, x), caffe_pool(x, kernel, stride, pad, method.lower()),
                               rtol=1e-5, atol=1e-6, err_msg=str(params))


def test_check_layer_is_a_deprecated_alias():
    import fastconv.keras

    fastconv.keras.__dict__.pop("check_layer", None)         # a fresh first use
    with pytest.warns(DeprecationWarning, match="check_keras_layer"):
        alias = fastconv.keras.check_layer
    assert alias is check_keras_layer
