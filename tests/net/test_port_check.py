"""fastconv.testing.net: checking a port blob by blob. Each planted mistake is made for real (a
Keras port built by fastconv.keras_model.model_from_caffe with one weight loaded wrongly, or the
net's own blobs with one layer recomputed wrongly) and must be found at the right blob, named
at the right layer, with the layer's diagnosis; correct ports must pass."""
import json
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv.testing.net import assert_net_close, check_net

pytest.importorskip("google.protobuf", reason="fastconv.net needs protobuf (fastconv[caffe])")
from fastconv.net import Net  # noqa: E402
from net_files import write_net  # noqa: E402

# AlexNet's layout at reduced widths: non-square conv1, in-place ReLUs, LRN with k != 1, ceil
# pooling (9 where Keras's floor gives 8), grouped padded conv2, InnerProduct on a 4-D blob,
# Dropout in place, Softmax.
ALEXNET_SHAPED = """
name: "alexnet_shaped"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 39 dim: 39 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_h: 5 kernel_w: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.01 beta: 0.75 k: 2 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 12 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
        convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "fc6" type: "InnerProduct" bottom: "conv3" top: "fc6"
        inner_product_param { num_output: 20 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
        inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc7" top: "prob" }
"""


def random_weights_net(directory, text, seed=0):
    """Write ``text`` as deploy.prototxt and random weights as weights.caffemodel (serialised
    by protobuf: tests/net/net_files.py); return both paths as strings (None for no weights).
    Weights ~ N(0, 1/fan_in), biases small, Scale/PReLU/Bias factors around 1, BatchNorm's
    stored statistics multiplied by its scale factor 2 (as Caffe stores them)."""
    rng = np.random.default_rng(seed)
    prototxt, _ = write_net(directory, text)
    weights = {}
    for layer in Net(str(prototxt)).layers:
        arrays = []
        for index, blob in enumerate(layer.blobs):
            shape = blob.data.shape
            if layer.type == "BatchNorm":
                values = [rng.standard_normal(shape) * 2, rng.uniform(0.5, 2, shape) * 2,
                          np.full(shape, 2.0)][index]
            elif layer.type in ("Scale", "PReLU", "Bias") and index == 0:
                values = rng.uniform(0.5, 1.5, shape)
            elif len(shape) >= 2:
                values = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
            else:
                values = rng.standard_normal(shape) * 0.1
            arrays.append(values.astype(np.float32))
        if arrays:
            weights[layer.name] = arrays
    if not weights:   # a net without parameters has no .caffemodel
        return str(prototxt), None
    prototxt, caffemodel = write_net(directory, text, weights)
    return str(prototxt), str(caffemodel)


@pytest.fixture(scope="module")
def alexnet_files(tmp_path_factory):
    return random_weights_net(tmp_path_factory.mktemp("alexnet"), ALEXNET_SHAPED)


@pytest.fixture(scope="module")
def alexnet(alexnet_files):
    x = np.random.default_rng(1).standard_normal((2, 3, 39, 39)).astype(np.float32)
    return Net(*alexnet_files), x


def caffe_blobs(net, x):
    """The net's own float32 blobs after a forward on x (a port that is right by construction,
    within float32 rounding)."""
    net.forward(data=x)
    return {name: np.array(blob.data) for name, blob in net.blobs.items()}


def test_the_nets_own_float32_blobs_pass_and_every_blob_is_compared(alexnet):
    net, x = alexnet
    port = caffe_blobs(net, x)
    result = assert_net_close(port, net, {"data": x})
    assert result and result.first_mismatch is None
    assert list(result.compared) == list(net.blobs)
    assert result.not_provided == ()


def test_blobs_the_port_lacks_are_skipped_and_named(alexnet):
    net, x = alexnet
    port = {name: value for name, value in caffe_blobs(net, x).items()
            if name in ("data", "pool1", "fc7")}
    result = check_net(port, net, {"data": x})
    assert result.compared == ("data", "pool1", "fc7")
    assert set(result.not_provided) == set(net.blobs) - {"data", "pool1", "fc7"}
    assert "not in the port (skipped): conv1, norm1, conv2" in str(result)


def test_a_small_relative_error_passes_and_a_large_one_fails_at_that_blob(alexnet):
    """The rule's scale: float32 noise (1 ulp) passes, 1e-3 relative does not."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    port["pool2"] = port["pool2"] * np.float32(1 + 2 ** -23)
    assert check_net(port, net, {"data": x})
    port["pool2"] = port["pool2"] * np.float32(1 + 1e-3)
    result = check_net(port, net, {"data": x})
    assert not result
    assert result.first_mismatch.blob == "pool2"
    assert result.first_mismatch.layer == "pool2" and result.first_mismatch.layer_type == "Pooling"
    # pool2 was perturbed alone: later blobs still match (they came from the right conv3 input)
    assert result.consequences == ()


def test_tolerance_follows_the_ports_dtype_and_an_explicit_rtol(alexnet, alexnet_files):
    """A float64 port is held to float64 rounding: the float32 net's blobs fail as a float64
    port, pass as float32; an explicit rtol replaces the rule."""
    net, x = alexnet
    net64 = Net(*alexnet_files, dtype=np.float64)
    port64 = caffe_blobs(net64, x.astype(np.float64))
    assert check_net(port64, net, {"data": x})
    port32_as_64 = {name: value.astype(np.float64) for name, value in caffe_blobs(net, x).items()}
    assert not check_net(port32_as_64, net, {"data": x})
    assert check_net(caffe_blobs(net, x), net, {"data": x})
    port = caffe_blobs(net, x)
    port["fc7"] = port["fc7"] * np.float32(1 + 1e-3)
    assert not check_net(port, net, {"data": x})
    assert check_net(port, net, {"data": x}, rtol=1e-2)


def test_reshaped_kernel_in_conv2_is_found_and_named(alexnet):
    """The port gives conv2 before relu2 (a Keras Conv2D output) computed with the kernel
    reshaped instead of transposed; everything after follows from it."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    w, b = (np.array(blob.data) for blob in net.params["conv2"])
    reshaped = w.reshape(3, 3, 4, 12)                 # what a naive Keras port loads
    kernel_as_caffe = fastconv.keras_to_caffe_kernel(reshaped)
    port["conv2"] = fastconv.conv2d_caffe(port["pool1"], kernel_as_caffe, b, pad=1, group=2)
    port["pool2"] = fastconv.pool2d_caffe(np.maximum(port["conv2"], 0), 3, stride=2)
    for later in ("conv3", "fc6", "fc7", "prob"):
        port[later] = port[later] + 1.0               # stand-ins that differ, as they would
    result = check_net(port, net, {"data": x})
    assert not result
    mismatch = result.first_mismatch
    assert (mismatch.blob, mismatch.layer, mismatch.layer_type) == ("conv2", "conv2",
                                                                    "Convolution")
    assert mismatch.in_place_after == (("relu2", "ReLU"),)
    text = str(result)
    assert "kernel reshaped instead of transposed (Caffe OIHW -> Keras HWIO)" in text
    assert "fix: kernel = fastconv.caffe_to_keras_kernel(w)" in text
    assert [blob for blob, _ in result.consequences] == ["pool2", "conv3", "fc6", "fc7", "prob"]
    with pytest.raises(AssertionError, match="first difference: blob 'conv2'"):
        assert_net_close(port, net, {"data": x})


def test_reshaped_kernel_under_an_in_place_relu_is_named(alexnet):
    """The port's conv2 is a Keras Conv2D(activation='relu') with the kernel reshaped: its
    value is after the ReLU, as Caffe's blob 'conv2' holds it after the in-place relu2. The
    convolution oracle re-runs each mistake through relu2 and names the reshape."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    w, b = (np.array(blob.data) for blob in net.params["conv2"])
    kernel_as_caffe = fastconv.keras_to_caffe_kernel(w.reshape(3, 3, 4, 12))
    port["conv2"] = np.maximum(fastconv.conv2d_caffe(port["pool1"], kernel_as_caffe, b, pad=1,
                                                     group=2), 0)
    result = check_net({name: port[name] for name in ("data", "pool1", "conv2")}, net,
                       {"data": x})
    mismatch = result.first_mismatch
    assert (mismatch.blob, mismatch.layer_type, mismatch.in_place_after) == (
        "conv2", "Convolution", (("relu2", "ReLU"),))
    text = str(result)
    assert ("diagnosis (the port's value taken as 'conv2''s output after the in-place 'relu2' "
            "(ReLU), as Caffe's blob holds it): kernel reshaped instead of transposed (Caffe "
            "OIHW -> Keras HWIO)") in text
    assert "fix: kernel = fastconv.caffe_to_keras_kernel(w)" in text
    # The same value without the mistake passes: relu2 is applied, not guessed.
    port["conv2"] = np.maximum(fastconv.conv2d_caffe(port["pool1"], w, b, pad=1, group=2), 0)
    assert check_net({name: port[name] for name in ("data", "pool1", "conv2")}, net,
                     {"data": x})


def test_inner_product_on_nhwc_flattened_data_is_named(alexnet):
    """fc6 computed as a Keras Dense after Flatten on NHWC data with Caffe's weight matrix,
    then relu6 and drop6 in place: the check re-runs fc6 through them."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    w, b = (np.array(blob.data) for blob in net.params["fc6"])
    flat_nhwc = fastconv.nchw_to_nhwc(port["conv3"]).reshape(2, -1)
    port["fc6"] = np.maximum(flat_nhwc @ w.T + b, 0)
    result = check_net(port, net, {"data": x})
    assert (result.first_mismatch.blob, result.first_mismatch.layer_type) == ("fc6",
                                                                              "InnerProduct")
    assert "bottom flattened in NHWC order" in str(result)
    assert "Permute((3, 1, 2)) before Flatten" in str(result)
    # fc7's weights loaded into the Dense kernel with reshape: named too
    port = caffe_blobs(net, x)
    w7, b7 = (np.array(blob.data) for blob in net.params["fc7"])
    port["fc7"] = port["fc6"] @ w7.reshape(20, 10) + b7
    result = check_net(port, net, {"data": x})
    assert result.first_mismatch.blob == "fc7"
    assert "weight matrix reshaped instead of transposed" in str(result)


def test_keras_floor_pooling_is_named(alexnet):
    """pool1 ported as Keras MaxPooling2D(3, 2, 'valid'): 8 rows where Caffe's ceil gives 9."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    port["pool1"] = fastconv.nhwc_to_nchw(fastconv.pool2d_keras(
        fastconv.nchw_to_nhwc(port["norm1"]), 3, 2))
    result = check_net({name: port[name] for name in ("data", "norm1", "pool1")}, net,
                       {"data": x})
    assert (result.first_mismatch.blob, result.first_mismatch.layer_type) == ("pool1", "Pooling")
    assert "shape mismatch: actual (2, 8, 8, 9), expected (2, 8, 9, 9)" in str(result)
    assert "output size rounded down" in str(result)


UPSAMPLER = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 5 dim: 6 } } }
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
        convolution_param { num_output: 4 kernel_h: 4 kernel_w: 3 stride: 2 pad: 1 } }
layer { name: "score" type: "Convolution" bottom: "up" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 } }
"""


def test_uncropped_deconvolution_is_named(tmp_path):
    """A port of the Deconvolution that forgot Caffe's crop of pad (Keras Conv2DTranspose
    'valid' alone): the shapes differ, the deconvolution oracle names the crop."""
    prototxt, weights = random_weights_net(tmp_path, UPSAMPLER)
    net = Net(prototxt, weights)
    x = np.random.default_rng(2).standard_normal((1, 3, 5, 6)).astype(np.float32)
    w, b = (np.array(blob.data) for blob in net.params["up"])
    uncropped = fastconv.deconv2d_caffe(x, w, b, stride=2)
    result = check_net({"data": x, "up": uncropped}, net, {"data": x})
    assert result.first_mismatch.layer_type == "Deconvolution"
    text = str(result)
    assert "shape mismatch: actual (1, 4, 12, 13), expected (1, 4, 10, 11)" in text
    assert "Caffe's pad=1 not cropped" in text
    assert result.not_provided == ("score",)


def test_pre_relu_value_under_the_blobs_name_is_recognised(alexnet):
    """Caffe's conv1 holds relu1's output; a port giving the convolution's output matches the
    earlier value and is told so, without a failure."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    w, b = (np.array(blob.data) for blob in net.params["conv1"])
    port["conv1"] = fastconv.conv2d_caffe(x, w, b, stride=2)
    assert port["conv1"].min() < 0
    result = check_net(port, net, {"data": x})
    assert result
    text = str(result)
    assert result.before_in_place == (("conv1", ("relu1",)),)
    assert "compared as the value before the blob's in-place layers" in text
    assert "conv1 (before relu1)" in text


def lrn_across_channels(x, size, alpha, beta, k):
    """Caffe's LRN ACROSS_CHANNELS in float64, written plainly: y = x * (k + alpha/size *
    sum of x^2 over `size` channels centred on c, zeros outside)^-beta."""
    x = x.astype(np.float64)
    squared = np.pad(x ** 2, ((0, 0), ((size - 1) // 2, size // 2), (0, 0), (0, 0)))
    window = sum(squared[:, i:i + x.shape[1]] for i in range(size))
    return x * (k + alpha / size * window) ** -beta


def test_a_port_missing_an_in_place_relu_is_named(alexnet):
    """The port has no relu1: its conv1 is the convolution (matches Caffe's conv1 before
    relu1), and its norm1 is the LRN of that. The first difference is norm1, explained."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    w, b = (np.array(blob.data) for blob in net.params["conv1"])
    port["conv1"] = fastconv.conv2d_caffe(x, w, b, stride=2)
    port["norm1"] = lrn_across_channels(port["conv1"], 5, 0.01, 0.75, 2).astype(np.float32)
    result = check_net({name: port[name] for name in ("data", "conv1", "norm1")}, net,
                       {"data": x})
    assert result.before_in_place == (("conv1", ("relu1",)),)
    assert (result.first_mismatch.blob, result.first_mismatch.layer_type) == ("norm1", "LRN")
    text = str(result)
    assert ("diagnosis: the port's 'norm1' read 'conv1' before the in-place 'relu1' (ReLU)"
            in text)
    assert "fix: apply 'relu1' (ReLU) to 'conv1' before 'norm1'" in text


def test_lrn_without_k_is_named(alexnet):
    """OpenCV 4.x's LRN ignores k (k=2 here)."""
    net, x = alexnet
    port = caffe_blobs(net, x)
    port["norm1"] = lrn_across_channels(port["conv1"], 5, 0.01, 0.75, 1).astype(np.float32)
    result = check_net(port, net, {"data": x})
    assert result.first_mismatch.blob == "norm1"
    assert "'norm1': LRN's k ignored (computed with k = 1" in str(result)


SMALL_HEAD = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 7 } } }
layer { name: "conv_a" type: "Convolution" bottom: "data" top: "conv_a"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu_a" type: "ReLU" bottom: "conv_a" top: "conv_a" relu_param { negative_slope: 0.2 } }
layer { name: "conv_b" type: "Convolution" bottom: "data" top: "conv_b"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "conv_a" bottom: "conv_b" top: "sum"
        eltwise_param { coeff: 2 coeff: -1 } }
layer { name: "prob" type: "Softmax" bottom: "sum" top: "prob" }
"""


@pytest.mark.parametrize("mistake", ["plain_relu", "sum_without_coeff", "softmax_over_width"])
def test_converter_mistakes_on_layers_without_an_oracle_are_named(mistake, tmp_path):
    """Each port value made with numpy as the converter got it wrong; the rest is Caffe's."""
    net = Net(*random_weights_net(tmp_path, SMALL_HEAD))
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 7)).astype(np.float32)
    port = caffe_blobs(net, x)
    w, b = (np.array(blob.data) for blob in net.params["conv_a"])
    conv_a = fastconv.conv2d_caffe(x, w, b, pad=1)
    if mistake == "plain_relu":
        port["conv_a"] = np.maximum(conv_a, 0)
        blob, expected = "conv_a", "'relu_a': ReLU's negative_slope dropped"
    elif mistake == "sum_without_coeff":
        port["sum"] = port["conv_a"] + port["conv_b"]
        blob, expected = "sum", "'sum': Eltwise SUM coefficients ignored"
    else:
        exp = np.exp(port["sum"] - port["sum"].max(axis=3, keepdims=True))
        port["prob"] = exp / exp.sum(axis=3, keepdims=True)
        blob, expected = "prob", "'prob': Softmax over the last axis instead of Caffe's"
    result = check_net(port, net, {"data": x})
    assert result.first_mismatch.blob == blob
    assert expected in str(result)


def test_keras_layout_transposes_4d_blobs_only(alexnet):
    net, x = alexnet
    port = caffe_blobs(net, x)
    nhwc = {name: (fastconv.nchw_to_nhwc(v) if v.ndim == 4 else v) for name, v in port.items()}
    assert check_net(nhwc, net, {"data": fastconv.nchw_to_nhwc(x)}, layout="keras")
    # NCHW arrays declared as Keras NHWC: the first 4-D blob already differs in shape
    result = check_net(port, net, {"data": fastconv.nchw_to_nhwc(x)}, layout="keras",
                       blobs=["conv1", "fc7"])
    assert not result and result.first_mismatch.blob == "conv1"
    assert "shape mismatch" in str(result)


def test_inputs_default_to_the_ports_input_blobs(alexnet):
    net, x = alexnet
    assert check_net(caffe_blobs(net, x), net)
    # given apart, an input the port changed is the first difference, named as an input
    port = caffe_blobs(net, x)
    port["data"] = port["data"][:, ::-1]
    result = check_net(port, net, {"data": x})
    assert result.first_mismatch.blob == "data"
    assert "'data' is an input: the port's value differs from the array given in inputs" in \
        str(result)


def test_bad_arguments_are_named(alexnet):
    net, x = alexnet
    port = caffe_blobs(net, x)
    with pytest.raises(ValueError, match="does not have: conv9"):
        check_net({"conv9": port["conv1"]}, net, {"data": x})
    with pytest.raises(ValueError, match="layout='nhwc' must be"):
        check_net(port, net, {"data": x}, layout="nhwc")
    with pytest.raises(ValueError, match=r"missing \['data'\]"):
        check_net({"conv1": port["conv1"]}, net, {})
    with pytest.raises(ValueError, match="blobs= asks for pool5"):
        check_net(port, net, {"data": x}, blobs=["pool5"])
    with pytest.raises(ValueError, match=r"shape \(2, 39, 39, 3\), read as NCHW"):
        check_net(port, net, {"data": fastconv.nchw_to_nhwc(x)})


def test_inputs_and_port_arrays_are_not_modified(alexnet):
    net, x = alexnet
    port = caffe_blobs(net, x)
    copies = {name: value.copy() for name, value in port.items()}
    x_copy = x.copy()
    check_net(port, net, {"data": x})
    assert all(np.array_equal(port[name], copies[name]) for name in port)
    assert np.array_equal(x, x_copy)


GOLDEN = Path(__file__).resolve().parent.parent / "data" / "caffe_nets"
GOLDEN_NETS = sorted(path.stem for path in GOLDEN.glob("*.npz"))


@pytest.mark.parametrize("name", GOLDEN_NETS)
def test_real_caffes_blobs_pass_as_a_port_and_one_changed_blob_is_found(name):
    """Real Caffe 1.0's own blobs (tests/data/caffe_nets, recorded by pycaffe in float32 and
    by Net<double>) are a port fastconv did not compute: both precisions must pass the
    tolerance rule; the same blobs with one blob off by 1e-3 relative must fail right there."""
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays["meta"]))
    inputs = {input_name: arrays[f"input/{i}"] for i, input_name in enumerate(meta["inputs"])}
    net = Net(str(GOLDEN / f"{name}.prototxt"), str(GOLDEN / f"{name}.caffemodel"))
    for precision in ("f32", "f64"):
        port = {blob: arrays[f"{precision}/{i}"] for i, (blob, _) in enumerate(meta["blobs"])}
        assert_net_close(port, net, inputs)
    port = {blob: arrays[f"f32/{i}"] for i, (blob, _) in enumerate(meta["blobs"])}
    changed = [blob for blob, _ in meta["blobs"]
               if blob not in inputs and np.abs(port[blob]).max() > 0][-1]
    port[changed] = port[changed] * np.float32(1 + 1e-3)
    result = check_net(port, net, inputs)
    assert not result and result.first_mismatch.blob == changed


def test_relu_keeping_small_values_of_a_large_blob_is_held_to_the_bottoms_scale(tmp_path):
    """An InnerProduct whose outputs are -50 but one of 1e-3, then a ReLU: a correct float32
    port errs on the ReLU's small output as much as on the InnerProduct's (its rounding at the
    scale 50 passes through), so the ReLU blob's tolerance is the InnerProduct's, not 1e-3's.
    The port sums in another order (numpy's float32 product); a wrong ReLU still fails."""
    text = ('layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 512 } } }\n'
            'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
            'inner_product_param { num_output: 8 } }\n'
            'layer { name: "relu" type: "ReLU" bottom: "ip" top: "relu" }\n')
    proto, _ = write_net(tmp_path, text)
    net = Net(str(proto))
    failures = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((1, 512)).astype(np.float32)
        w = rng.standard_normal((8, 512)).astype(np.float32)
        bias = np.full(8, -50.0, np.float32)
        bias[0] = np.float32(-(w[0].astype(np.float64) @ x[0]) + 1e-3)   # ip[0] about 1e-3
        net.params["ip"][0].data[...], net.params["ip"][1].data[...] = w, bias
        ip = (x @ w.T + bias).astype(np.float32)   # float32, numpy's order
        failures += not check_net({"data": x, "ip": ip, "relu": np.maximum(ip, 0)}, net,
                                  {"data": x})
        if seed == 0:
            leaky = np.where(ip > 0, ip, np.float32(0.01) * ip)   # a port's wrong ReLU
            assert not check_net({"data": x, "ip": ip, "relu": leaky}, net, {"data": x})
    assert failures == 0
