"""pycaffe's deploy API on fastconv.net.Net: constructor forms, blobs and params, forward's
arguments, in-place layers, Caffe's split layers, reshape, float64, the lazy protobuf import."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("google.protobuf")

from net_files import input_layer, write_net  # noqa: E402

from fastconv.net import TEST, TRAIN, Net  # noqa: E402

# data -> conv1 -> relu1 (in place) -> [pool1, ip1]: conv1 after relu1 feeds two layers.
BRANCHING = input_layer({"data": (2, 3, 6, 6)}) + """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "zeta"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "alpha"
        inner_product_param { num_output: 3 } }
"""


@pytest.fixture
def weights():
    rng = np.random.default_rng(11)
    return {"conv1": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                      rng.standard_normal(4).astype(np.float32)],
            "ip1": [rng.standard_normal((3, 64)).astype(np.float32),
                    rng.standard_normal(3).astype(np.float32)]}


@pytest.fixture
def files(tmp_path, weights):
    proto, model = write_net(tmp_path, BRANCHING, weights)
    return str(proto), str(model)


@pytest.fixture
def image():
    return np.random.default_rng(12).standard_normal((2, 3, 6, 6)).astype(np.float32)


def conv_relu_reference(x, w, b):
    """ReLU of a valid 3x3 convolution, float64, by direct summation."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    out = np.zeros((x.shape[0], w.shape[0], 4, 4))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + 4, j:j + 4], w[:, :, i, j])
    return np.maximum(out + b.reshape(1, -1, 1, 1), 0)


def test_constructor_forms(files, image):
    proto, model = files
    results = [Net(proto, model, TEST), Net(proto, TEST, weights=model),
               Net(proto, weights=model, phase=TEST), Net(proto, model)]
    outputs = [net.forward(data=image)["alpha"] for net in results]
    for output in outputs[1:]:
        np.testing.assert_array_equal(output, outputs[0])
    assert np.any(Net(proto, None, TEST).params["conv1"][0].data == 0)


@pytest.mark.parametrize("phase, error, match", [(TRAIN, ValueError, "TEST phase only"),
                                                 (7, ValueError, "phase=7")])
def test_only_test_phase(files, phase, error, match):
    with pytest.raises(error, match=match):
        Net(files[0], files[1], phase)


def test_blobs_in_place_and_splits(files, weights, image):
    net = Net(*files)
    assert net._layer_names == ["input", "conv1", "relu1", "conv1_relu1_0_split", "pool1", "ip1"]
    assert list(net.blobs) == ["data", "conv1", "conv1_relu1_0_split_0",
                               "conv1_relu1_0_split_1", "zeta", "alpha"]
    assert net.bottom_names["pool1"] == ["conv1_relu1_0_split_0"]
    assert net.bottom_names["ip1"] == ["conv1_relu1_0_split_1"]
    assert net.layer_dict["conv1_relu1_0_split"].type == "Split"
    # Caffe's outputs: the blobs nobody consumes, in sorted order.
    assert net.inputs == ["data"] and net.outputs == ["alpha", "zeta"]
    out = net.forward(data=image)
    assert sorted(out) == ["alpha", "zeta"]
    expected = conv_relu_reference(image, *weights["conv1"])
    # The in-place ReLU overwrote the convolution's blob; the splits show the same values.
    for name in ("conv1", "conv1_relu1_0_split_0", "conv1_relu1_0_split_1"):
        np.testing.assert_allclose(net.blobs[name].data, expected, rtol=0, atol=1e-5)
    flat = expected.reshape(2, -1)
    np.testing.assert_allclose(out["alpha"], flat @ weights["ip1"][0].T.astype(np.float64)
                               + weights["ip1"][1], rtol=0, atol=1e-4)


def test_blob_consumed_by_in_place_layer_and_an_earlier_one(tmp_path):
    # pool reads conv1 before relu1 rewrites it in place: Caffe splits conv1 between them, so
    # relu1 is no longer in place and conv1 has two producers, which Caffe refuses.
    text = input_layer({"data": (1, 1, 4, 4)}) + """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 1 kernel_size: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv1" top: "pool"
        pooling_param { kernel_size: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
"""
    proto, _ = write_net(tmp_path, text)
    with pytest.raises(ValueError, match="'conv1' is produced by several layers"):
        Net(str(proto))


def test_split_of_an_input_and_multiple_tops(tmp_path):
    text = input_layer({"a": (1, 4), "b": (1, 2)}) + """
layer { name: "s" type: "Slice" bottom: "a" top: "a1" top: "a2" slice_param { axis: 1 } }
layer { name: "e1" type: "Eltwise" bottom: "a2" bottom: "b" bottom: "a2" top: "e1" }
layer { name: "e2" type: "Eltwise" bottom: "b" bottom: "a1" top: "e2" }
"""
    proto, _ = write_net(tmp_path, text)
    net = Net(str(proto))
    assert net._layer_names == ["input", "b_input_1_split", "s", "a2_s_1_split", "e1", "e2"]
    assert net.bottom_names["e1"] == ["a2_s_1_split_0", "b_input_1_split_0", "a2_s_1_split_1"]
    assert net.bottom_names["e2"] == ["b_input_1_split_1", "a1"]
    out = net.forward(a=np.array([[1.0, 2.0, 3.0, 4.0]]), b=np.array([[10.0, 20.0]]))
    np.testing.assert_array_equal(out["e1"], [[16.0, 28.0]])
    np.testing.assert_array_equal(out["e2"], [[11.0, 22.0]])


def test_forward_start_end_blobs_and_inputs_untouched(files, weights, image):
    net = Net(*files)
    original = image.copy()
    out = net.forward(end="conv1", data=image)
    assert list(out) == ["conv1"]
    np.testing.assert_array_equal(image, original)
    net.blobs["alpha"].data[...] = 0
    out = net.forward(start="ip1", blobs=["data"])
    assert sorted(out) == ["alpha", "data", "zeta"]
    assert np.any(out["alpha"] != 0)
    with pytest.raises(ValueError, match="not a layer"):
        net.forward(start="nope")
    with pytest.raises(ValueError, match="inputs are \\['data'\\]"):
        net.forward(image=image)


def test_in_place_layer_on_the_input_does_not_touch_the_callers_array(tmp_path):
    text = input_layer({"data": (1, 4)}) + \
        'layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }'
    proto, _ = write_net(tmp_path, text)
    net = Net(str(proto))
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    out = net.forward(data=x)
    np.testing.assert_array_equal(out["data"], [[0, 2, 0, 4]])
    np.testing.assert_array_equal(x, [[-1.0, 2.0, -3.0, 4.0]])


def test_params_are_writable_and_layers_expose_caffe_metadata(files, image):
    net = Net(*files)
    conv = net.layer_dict["conv1"]
    assert conv.type == "Convolution" and conv.bottoms == ["data"] and conv.tops == ["conv1"]
    assert conv.config["kernel"] == (3, 3) and conv.config["group"] == 1
    assert list(net.params) == ["conv1", "ip1"]
    assert net.params["conv1"] is conv.blobs
    net.params["conv1"][0].data[...] = 0
    net.params["conv1"][1].data[...] = [1, -1, 2, 0]
    out = net.forward(data=image)
    np.testing.assert_array_equal(net.blobs["conv1"].data[0, :, 0, 0], [1, 0, 2, 0])
    # A layer runs on given bottoms without touching the net's blobs.
    direct = net.layer_dict["ip1"].forward(net.blobs["conv1_relu1_0_split_1"].data)
    np.testing.assert_array_equal(direct[0], out["alpha"])


def test_reshape_and_blob_properties(files, image):
    net = Net(*files)
    data = net.blobs["data"]
    assert (data.num, data.channels, data.height, data.width, data.count) == (2, 3, 6, 6, 216)
    assert net.blobs["alpha"].height == 1
    data.reshape(5, 3, 6, 6)
    net.reshape()
    assert net.blobs["conv1"].shape == (5, 4, 4, 4)
    assert net.blobs["zeta"].shape == (5, 4, 2, 2)
    assert net.forward(data=np.ones((5, 3, 6, 6)))["alpha"].shape == (5, 3)
    # A bigger image no longer fits the InnerProduct's weights (Caffe fails the same way).
    data.reshape(5, 3, 8, 8)
    with pytest.raises(ValueError, match="layer 'ip1' \\(InnerProduct\\).*64 inputs.*144"):
        net.reshape()


def test_float64_net(files, weights, image):
    net = Net(*files, dtype=np.float64)
    out = net.forward(data=image)
    assert all(blob.data.dtype == np.float64 for blob in net.blobs.values())
    assert all(b.data.dtype == np.float64 for blobs in net.params.values() for b in blobs)
    np.testing.assert_allclose(net.blobs["conv1"].data,
                               conv_relu_reference(image, *weights["conv1"]), rtol=0,
                               atol=1e-12)
    assert out["alpha"].dtype == np.float64


def test_unsupported_layer_type_is_named(tmp_path):
    text = input_layer({"data": (1, 2)}) + \
        'layer { name: "odd" type: "Python" bottom: "data" top: "y" python_param { module: "m" } }'
    proto, _ = write_net(tmp_path, text)
    with pytest.raises(ValueError, match="layer 'odd' has type 'Python'.*supported types: "
                                         "AbsVal, ArgMax, BNLL"):
        Net(str(proto))


def test_without_protobuf_net_names_the_extra(tmp_path):
    proto, _ = write_net(tmp_path, input_layer({"data": (1, 2)}))
    script = ("import sys\n"
              "sys.modules['google'] = None\n"
              "sys.modules['google.protobuf'] = None\n"
              "import fastconv.net\n"
              "try:\n"
              f"    fastconv.net.Net({str(proto)!r})\n"
              "except ImportError as error:\n"
              "    print(error)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, check=True)
    assert "pip install fastconv[caffe]" in result.stdout


def test_fillers_without_weights(tmp_path):
    # Caffe's defaults when no .caffemodel supplies a layer: Scale 1, PReLU 0.25, BatchNorm 0,
    # constant fillers as given, and the bilinear upsampling kernel of FCN's Deconvolution.
    text = input_layer({"data": (1, 2, 3, 3)}) + """
layer { name: "scale" type: "Scale" bottom: "data" top: "s" scale_param { bias_term: true } }
layer { name: "prelu" type: "PReLU" bottom: "s" top: "p" }
layer { name: "bn" type: "BatchNorm" bottom: "p" top: "b" }
layer { name: "conv" type: "Convolution" bottom: "b" top: "c" convolution_param {
        num_output: 3 kernel_size: 1 weight_filler { type: "constant" value: 0.5 }
        bias_filler { type: "constant" value: -1 } } }
layer { name: "up" type: "Deconvolution" bottom: "c" top: "u" convolution_param {
        num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false
        weight_filler { type: "bilinear" } } }
"""
    proto, _ = write_net(tmp_path, text)
    net = Net(str(proto))
    values = {name: [blob.data.tolist() for blob in blobs] for name, blobs in net.params.items()}
    assert values["scale"] == [[1.0, 1.0], [0.0, 0.0]]
    assert values["prelu"] == [[0.25, 0.25]]
    assert values["bn"] == [[0.0, 0.0], [0.0, 0.0], [0.0]]
    assert np.all(net.params["conv"][0].data == 0.5) and np.all(net.params["conv"][1].data == -1)
    taps = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_array_equal(net.params["up"][0].data[2, 0], np.outer(taps, taps))


def test_blob_arrays_keep_their_identity_across_forwards(files, image):
    # pycaffe: an array taken from blob.data before a forward shows the new values after it.
    net = Net(*files)
    first = net.forward(data=image)["alpha"].copy()
    held = net.blobs["alpha"].data
    second = net.forward(data=2 * image)["alpha"]
    assert second is held
    assert not np.array_equal(held, first)


SHARED = input_layer({"data": (1, 1, 2, 2)}) + """
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" param { name: "w" }
        convolution_param { num_output: 1 kernel_size: 1 bias_term: false } }
layer { name: "c2" type: "Convolution" bottom: "data" top: "c2" param { name: "w" }
        convolution_param { num_output: 1 kernel_size: 1 bias_term: false } }
"""


@pytest.mark.parametrize("stored, expected", [
    # Both layers hold one blob; Caffe copies the file's layers into it in order: last wins.
    ({"c1": [np.ones((1, 1, 1, 1))], "c2": [np.full((1, 1, 1, 1), 3.0)]}, (3.0, 3.0)),
    ({"c2": [np.full((1, 1, 1, 1), 3.0)], "c1": [np.ones((1, 1, 1, 1))]}, (1.0, 1.0)),
    # A sharing layer missing from the file holds the shared blob all the same.
    ({"c1": [np.full((1, 1, 1, 1), 3.0)]}, (3.0, 3.0)),
    ({"c2": [np.full((1, 1, 1, 1), 2.0)]}, (2.0, 2.0)),
])
def test_named_parameters_are_shared_as_caffe_shares_them(tmp_path, stored, expected):
    """param { name: "w" } in two layers: one blob (checked against real Caffe 1.0 by a
    random-net campaign: c1 = 1, c2 = 3 in the file gives 3 for both)."""
    proto, model = write_net(tmp_path, SHARED, stored)
    net = Net(str(proto), str(model))
    outputs = net.forward(data=np.ones((1, 1, 2, 2), np.float32))
    assert (outputs["c1"][0, 0, 0, 0], outputs["c2"][0, 0, 0, 0]) == expected
    assert net.params["c1"][0] is net.params["c2"][0]


def test_named_parameters_of_different_shapes_are_refused(tmp_path):
    text = SHARED.replace('layer { name: "c2" type: "Convolution" bottom: "data" top: "c2" '
                          'param { name: "w" }\n        convolution_param { num_output: 1 ',
                          'layer { name: "c2" type: "Convolution" bottom: "data" top: "c2" '
                          'param { name: "w" }\n        convolution_param { num_output: 2 ')
    proto, _ = write_net(tmp_path, text)
    with pytest.raises(ValueError, match="layer 'c2' shares parameter 'w'.*share_mode STRICT"):
        Net(str(proto))
