"""fastconv.keras_model.model_from_caffe: the Keras model (computed by Keras/TensorFlow, not by
fastconv) must reproduce every blob of the net, checked by assert_net_close against fastconv's
Net; layers Keras cannot express exactly are refused with the layer named. Each model is built
once per module."""
import numpy as np
import pytest

import fastconv
from fastconv.testing.net import assert_net_close

pytest.importorskip("google.protobuf", reason="fastconv.net needs protobuf (fastconv[caffe])")
keras = pytest.importorskip("keras", reason="Keras (TensorFlow backend) is not installed")
from fastconv.keras_model import model_from_caffe  # noqa: E402
from fastconv.net import Net  # noqa: E402
from test_port_check import ALEXNET_SHAPED, random_weights_net  # noqa: E402

# Every other layer type Keras can express, on a non-square input: BatchNorm + Scale in place,
# PReLU (per channel and shared), leaky ReLU, blobs feeding several layers (Caffe's Split), dilated conv, Eltwise SUM with
# coefficients, PROD and MAX (with coefficients, which Caffe ignores), Concat and Slice on channels, the elementwise family, LRN
# WITHIN_CHANNEL, AVE pooling with pad, Bias, global pooling, Scale and Bias by a second bottom
# (squeeze-and-excitation style, axis 0), Deconvolution + Crop with per-axis offsets, Softmax
# over the height, Flatten, InnerProduct, Reshape back to 4-D, Silence; Scale and Bias by a
# whole 4-D second bottom (a gate the size of the data), ReLU with a negative slope.
LAYER_ZOO = """
name: "zoo"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 4 dim: 12 dim: 10 } } }
layer { name: "conv_a" type: "Convolution" bottom: "data" top: "conv_a"
        convolution_param { num_output: 6 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 } }
layer { name: "bn_a" type: "BatchNorm" bottom: "conv_a" top: "conv_a"
        batch_norm_param { eps: 0.001 } }
layer { name: "scale_a" type: "Scale" bottom: "conv_a" top: "conv_a" scale_param { bias_term: true } }
layer { name: "prelu_a" type: "PReLU" bottom: "conv_a" top: "conv_a" }
layer { name: "b1" type: "Convolution" bottom: "conv_a" top: "b1"
        convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "b2" type: "Convolution" bottom: "conv_a" top: "b2"
        convolution_param { num_output: 6 kernel_size: 3 pad: 2 dilation: 2 } }
layer { name: "leaky" type: "ReLU" bottom: "b2" top: "b2" relu_param { negative_slope: 0.1 } }
layer { name: "sum" type: "Eltwise" bottom: "b1" bottom: "b2" top: "sum"
        eltwise_param { operation: SUM coeff: 0.5 coeff: -1.5 } }
layer { name: "prod" type: "Eltwise" bottom: "b1" bottom: "sum" top: "prod"
        eltwise_param { operation: PROD } }
layer { name: "emax" type: "Eltwise" bottom: "b2" bottom: "prod" top: "emax"
        eltwise_param { operation: MAX coeff: 2 coeff: 3 } }
layer { name: "cat" type: "Concat" bottom: "sum" bottom: "emax" top: "cat" }
layer { name: "slice" type: "Slice" bottom: "cat" top: "s1" top: "s2"
        slice_param { axis: 1 slice_point: 5 } }
layer { name: "elu" type: "ELU" bottom: "s1" top: "e1" elu_param { alpha: 0.5 } }
layer { name: "sig" type: "Sigmoid" bottom: "s2" top: "sg" }
layer { name: "lrn_w" type: "LRN" bottom: "sg" top: "lw"
        lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.5 beta: 0.75 } }
layer { name: "tanh" type: "TanH" bottom: "e1" top: "th" }
layer { name: "prelu_shared" type: "PReLU" bottom: "th" top: "th"
        prelu_param { channel_shared: true } }
layer { name: "abs" type: "AbsVal" bottom: "th" top: "ab" }
layer { name: "bnll" type: "BNLL" bottom: "ab" top: "bl" }
layer { name: "pow" type: "Power" bottom: "bl" top: "pw"
        power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "exp" type: "Exp" bottom: "pw" top: "ex" exp_param { base: 2 scale: 0.5 shift: -1 } }
layer { name: "log" type: "Log" bottom: "ex" top: "lg" log_param { base: 10 shift: 1 } }
layer { name: "thr" type: "Threshold" bottom: "lw" top: "t2" threshold_param { threshold: 0.3 } }
layer { name: "ave" type: "Pooling" bottom: "lg" top: "ap"
        pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "cat2" type: "Concat" bottom: "ap" bottom: "t2" top: "c2" concat_param { axis: 1 } }
layer { name: "bias" type: "Bias" bottom: "c2" top: "bs" }
layer { name: "gap" type: "Pooling" bottom: "bs" top: "gap" pooling_param { pool: AVE global_pooling: true } }
layer { name: "gap_flat" type: "Flatten" bottom: "gap" top: "gf" }
layer { name: "se_scale" type: "Scale" bottom: "bs" bottom: "gf" top: "se" scale_param { axis: 0 } }
layer { name: "se_bias" type: "Bias" bottom: "se" bottom: "gf" top: "sb" bias_param { axis: 0 } }
layer { name: "deconv" type: "Deconvolution" bottom: "sb" top: "dc"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 } }
layer { name: "crop" type: "Crop" bottom: "dc" bottom: "data" top: "cr"
        crop_param { axis: 2 offset: 2 offset: 3 } }
layer { name: "softmax_h" type: "Softmax" bottom: "cr" top: "sm" softmax_param { axis: 2 } }
layer { name: "flat" type: "Flatten" bottom: "sm" top: "fl" }
layer { name: "ip" type: "InnerProduct" bottom: "fl" top: "ip" inner_product_param { num_output: 7 } }
layer { name: "reshape" type: "Reshape" bottom: "ip" top: "rs"
        reshape_param { shape { dim: 0 dim: -1 dim: 1 dim: 1 } } }
layer { name: "prob" type: "Softmax" bottom: "rs" top: "prob" }
layer { name: "quiet" type: "Silence" bottom: "t2" }
layer { name: "gate" type: "Sigmoid" bottom: "data" top: "gate" }
layer { name: "gated" type: "Scale" bottom: "data" bottom: "gate" top: "gated"
        scale_param { axis: 0 } }
layer { name: "shifted" type: "Bias" bottom: "gated" bottom: "gate" top: "shifted"
        bias_param { axis: 0 } }
layer { name: "anti_leaky" type: "ReLU" bottom: "shifted" top: "anti_leaky"
        relu_param { negative_slope: -0.3 } }
"""


def keras_blobs(model, inputs):
    outputs = model(inputs)
    return {name: keras.ops.convert_to_numpy(value) for name, value in outputs.items()}


def build(directory, text):
    prototxt, weights = random_weights_net(directory, text, seed=5)
    net = Net(prototxt, weights)
    model = model_from_caffe(net)
    x = np.random.default_rng(7).standard_normal(tuple(net.blobs["data"].shape))
    return net, model, x.astype(np.float32)


@pytest.fixture(scope="module")
def alexnet_model(tmp_path_factory):
    return build(tmp_path_factory.mktemp("alexnet"), ALEXNET_SHAPED)


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory):
    return build(tmp_path_factory.mktemp("zoo"), LAYER_ZOO)


@pytest.mark.parametrize("built", ["alexnet_model", "zoo_model"])
def test_keras_model_reproduces_every_blob(built, request):
    net, model, x = request.getfixturevalue(built)
    x_nhwc = fastconv.nchw_to_nhwc(x)
    port = keras_blobs(model, {"data": x_nhwc})
    assert set(port) == set(net.blobs) - {"data"}
    result = assert_net_close(port, net, {"data": x_nhwc}, layout="keras")
    assert len(result.compared) == len(net.blobs) - 1


def test_keras_model_takes_other_batch_sizes(alexnet_model):
    net, model, x = alexnet_model
    x_nhwc = fastconv.nchw_to_nhwc(np.concatenate([x, x[:1]]))
    assert_net_close(keras_blobs(model, {"data": x_nhwc}), net, {"data": x_nhwc}, layout="keras")


def test_a_kernel_loaded_by_reshape_is_found_in_the_keras_model(alexnet_model):
    """The classic mistake made in the Keras model itself: conv3's kernel reshaped. The
    model's 'conv3' output is after relu3, as Caffe's blob: the first difference is there, and
    the convolution oracle, re-running each mistake through relu3, names the reshape."""
    net, model, x = alexnet_model
    w = np.array(net.params["conv3"][0].data)
    conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
            and tuple(layer.kernel.shape) == (3, 3, 12, 16)]
    assert len(conv) == 1
    right = conv[0].get_weights()
    try:
        conv[0].set_weights([w.reshape(3, 3, 12, 16), right[1]])
        x_nhwc = fastconv.nchw_to_nhwc(x)
        port = keras_blobs(model, {"data": x_nhwc})
    finally:
        conv[0].set_weights(right)
    with pytest.raises(AssertionError) as failure:
        assert_net_close(port, net, {"data": x_nhwc}, layout="keras")
    message = str(failure.value)
    assert ("first difference: blob 'conv3', written by layer 'conv3' (Convolution), then in "
            "place 'relu3' (ReLU)") in message
    assert ("after the in-place 'relu3' (ReLU), as Caffe's blob holds it): kernel reshaped "
            "instead of transposed (Caffe OIHW -> Keras HWIO)") in message


REFUSED = {
    "argmax": ("layer { name: 'am' type: 'ArgMax' bottom: 'data' top: 'am' }",
               r"layer 'am' \(ArgMax\): .*reports the last index"),
    "eltwise_in_place": (
        "layer { name: 'copy' type: 'Power' bottom: 'data' top: 'c' }\n"
        "layer { name: 's' type: 'Eltwise' bottom: 'c' bottom: 'data' top: 'c' }",
        r"layer 's' \(Eltwise\): runs in place: Caffe's SUM and MAX then read the top"),
    "in_place_on_shared_data": (
        "layer { name: 'flat' type: 'Reshape' bottom: 'data' top: 'r' "
        "reshape_param { shape { dim: 0 dim: -1 } } }\n"
        "layer { name: 'relu' type: 'ReLU' bottom: 'r' top: 'r' }\n"
        "layer { name: 'abs' type: 'AbsVal' bottom: 'data' top: 'a' }",
        r"layer 'relu' \(ReLU\): runs in place on blob 'r', whose memory Caffe shares"),
    # An LRN with a negative k can turn a non-negative input negative: no zero padding after it.
    "max_pool_after_lrn_with_negative_k": (
        "layer { name: 'gate' type: 'Sigmoid' bottom: 'data' top: 'g' }\n"
        "layer { name: 'lrn' type: 'LRN' bottom: 'g' top: 'l' "
        "lrn_param { local_size: 3 alpha: 1 beta: 1 k: -0.5 } }\n"
        "layer { name: 'p' type: 'Pooling' bottom: 'l' top: 'p' "
        "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }",
        r"layer 'p' \(Pooling\): MAX pooling .* ZeroPadding2D's zeros beat negative inputs"),
    "max_pool_mask": (
        "layer { name: 'p' type: 'Pooling' bottom: 'data' top: 'p' top: 'mask' "
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }",
        r"layer 'p' \(Pooling\): its second top, the index of each window's maximum"),
    "max_pool_on_signed": (
        "layer { name: 'p' type: 'Pooling' bottom: 'data' top: 'p' "
        "pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }",
        r"layer 'p' \(Pooling\): MAX pooling .* ZeroPadding2D's zeros beat negative inputs"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_layers_keras_cannot_express_are_refused_by_name(case, tmp_path):
    layer, message = REFUSED[case]
    text = ("layer { name: 'data' type: 'Input' top: 'data' "
            "input_param { shape { dim: 1 dim: 2 dim: 12 dim: 12 } } }\n" + layer)
    prototxt, weights = random_weights_net(tmp_path, text)
    with pytest.raises(NotImplementedError, match=message):
        model_from_caffe(Net(prototxt, weights))


def test_softmax_slice_with_a_nan_is_all_nan_as_in_caffe(tmp_path):
    """Caffe's exp(x - max) / sum: one NaN makes its whole slice NaN (TensorFlow's fused
    softmax kept the slice's other elements finite)."""
    text = ("layer { name: 'data' type: 'Input' top: 'data' "
            "input_param { shape { dim: 1 dim: 3 dim: 2 dim: 2 } } }\n"
            "layer { name: 'prob' type: 'Softmax' bottom: 'data' top: 'prob' }")
    prototxt, weights = random_weights_net(tmp_path, text)
    net = Net(prototxt, weights)
    x = np.random.default_rng(3).standard_normal((1, 3, 2, 2)).astype(np.float32)
    x[0, 1, 0, 0] = np.nan   # the channel slice at pixel (0, 0)
    expected = net.forward(data=x)["prob"]
    got = fastconv.nhwc_to_nchw(keras_blobs(model_from_caffe(net),
                                            {"data": fastconv.nchw_to_nhwc(x)})["prob"])
    assert np.isnan(expected[0, :, 0, 0]).all() and np.isfinite(expected[0, :, 1:, :]).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[0, :, 1:, :], expected[0, :, 1:, :], rtol=1e-6)
