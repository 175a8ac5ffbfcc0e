"""Reading and writing Caffe's files: both prototxt formats, old-style inputs, V1 and legacy
.caffemodels, double_data, unknown fields, phase rules, and Net.save read back by protobuf."""
import struct

import numpy as np
import pytest

pytest.importorskip("google.protobuf")

from net_files import caffemodel_bytes, write_net  # noqa: E402

from fastconv.net import TEST, Net  # noqa: E402
from fastconv.net.schema import messages  # noqa: E402

NEW_FORMAT = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

V1_FORMAT = """
name: "small"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 blobs_lr: 2
         convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "ip" type: INNER_PRODUCT bottom: "conv" top: "ip" inner_product_param { num_output: 5 } }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }
"""


@pytest.fixture
def small_weights():
    rng = np.random.default_rng(5)
    return {"conv": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                     rng.standard_normal(4).astype(np.float32)],
            "ip": [rng.standard_normal((5, 64)).astype(np.float32),
                   rng.standard_normal(5).astype(np.float32)]}


@pytest.fixture
def image():
    return np.random.default_rng(6).standard_normal((2, 3, 6, 6)).astype(np.float32)


def _run(tmp_path, prototxt, weights, image, **options):
    proto, model = write_net(tmp_path, prototxt, weights, **options)
    net = Net(str(proto), str(model), TEST)
    return net, net.forward(data=image)["prob"].copy()


def test_v1_net_and_legacy_blobs_match_the_new_format(tmp_path, small_weights, image):
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    _, expected = _run(tmp_path / "new", NEW_FORMAT, small_weights, image)
    old_net, got = _run(tmp_path / "old", V1_FORMAT, small_weights, image, v1=True,
                        legacy_dims=True)
    np.testing.assert_array_equal(got, expected)
    # Caffe's upgrade: the inputs become an Input layer named "input", placed first.
    assert old_net._layer_names == ["input", "conv", "relu", "ip", "prob"]
    assert [layer.type for layer in old_net.layers] == ["Input", "Convolution", "ReLU",
                                                        "InnerProduct", "Softmax"]
    assert old_net.params["ip"][0].data.shape == (5, 64)


@pytest.mark.parametrize("options", [dict(double=True), dict(legacy_dims=True)])
def test_weight_encodings(tmp_path, small_weights, image, options):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, expected = _run(tmp_path / "a", NEW_FORMAT, small_weights, image)
    _, got = _run(tmp_path / "b", NEW_FORMAT, small_weights, image, **options)
    np.testing.assert_array_equal(got, expected)


def test_input_shape_form(tmp_path, small_weights, image):
    text = NEW_FORMAT.replace(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 '
        'dim: 6 dim: 6 } } }',
        'input: "data" input_shape { dim: 2 dim: 3 dim: 6 dim: 6 }')
    net, _ = _run(tmp_path, text, small_weights, image)
    assert net.inputs == ["data"]
    assert net.blobs["data"].shape == (2, 3, 6, 6)


def _field(number, wire_type, payload=b""):
    """A protobuf field's raw bytes (key, then the payload as given)."""
    key = number << 3 | wire_type
    out = bytearray()
    while True:
        out.append((key & 0x7F) | (0x80 if key > 0x7F else 0))
        key >>= 7
        if not key:
            break
    return bytes(out) + payload


def _length_delimited(number, payload):
    return _field(number, 2, _varint(len(payload)) + payload)


def _varint(value):
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def test_unknown_fields_training_layers_and_unpacked_values(tmp_path, small_weights, image):
    (tmp_path / "a").mkdir()
    _, expected = _run(tmp_path / "a", NEW_FORMAT, small_weights, image)
    weight, bias = small_weights["conv"]
    weight_blob = (_length_delimited(7, _length_delimited(1, b"".join(map(_varint, weight.shape))))
                   + _length_delimited(5, weight.astype("<f4").tobytes()))
    # The bias as unpacked floats (wire type 5, one field per value): protobuf readers must
    # accept it although Caffe declares the field packed.
    bias_blob = (_length_delimited(7, _length_delimited(1, _varint(4)))
                 + b"".join(_field(5, 5, struct.pack("<f", value)) for value in bias))
    # Fields this schema does not know, at the net and the layer level (training snapshots and
    # newer Caffe versions carry such), between the blobs.
    conv_layer = (_length_delimited(1, b"conv") + _length_delimited(2, b"Convolution")
                  + _length_delimited(7, weight_blob) + _field(999, 0, b"\x05")
                  + _length_delimited(7, bias_blob))
    training_layers = caffemodel_bytes({"ip": small_weights["ip"]}, extra_layers=[
        ("loss", "SoftmaxWithLoss"), ("data_train", "Data")])
    model = (_length_delimited(77, b"future field") + _length_delimited(100, conv_layer)
             + training_layers)
    proto, _ = write_net(tmp_path, NEW_FORMAT)
    (tmp_path / "w.caffemodel").write_bytes(model)
    net = Net(str(proto), str(tmp_path / "w.caffemodel"))
    np.testing.assert_array_equal(net.forward(data=image)["prob"], expected)
    assert "loss" not in net.layer_dict


@pytest.mark.parametrize("dtype, field", [(np.float32, "data"), (np.float64, "double_data")])
def test_save_is_a_caffemodel_protobuf_reads(tmp_path, small_weights, image, dtype, field):
    proto, model = write_net(tmp_path, NEW_FORMAT, small_weights)
    net = Net(str(proto), str(model), dtype=dtype)
    expected = net.forward(data=image)["prob"].copy()
    net.save(tmp_path / "saved.caffemodel")
    saved = messages()["NetParameter"].FromString((tmp_path / "saved.caffemodel").read_bytes())
    assert [layer.name for layer in saved.layer] == net._layer_names
    conv = saved.layer[1]
    assert conv.type == "Convolution" and conv.convolution_param.num_output == 4
    assert [list(blob.shape.dim) for blob in conv.blobs] == [[4, 3, 3, 3], [4]]
    np.testing.assert_array_equal(np.array(getattr(conv.blobs[0], field)),
                                  small_weights["conv"][0].ravel())
    again = Net(str(proto), str(tmp_path / "saved.caffemodel"), dtype=dtype)
    np.testing.assert_array_equal(again.forward(data=image)["prob"], expected)


def test_phase_level_and_stage_rules(tmp_path):
    text = """
input: "data" input_shape { dim: 1 dim: 2 }
layer { name: "train_only" type: "ReLU" bottom: "data" top: "a" include { phase: TRAIN } }
layer { name: "test_only" type: "ReLU" bottom: "data" top: "a" include { phase: TEST } }
layer { name: "not_test" type: "TanH" bottom: "a" top: "b" exclude { phase: TEST } }
layer { name: "staged" type: "TanH" bottom: "a" top: "c" include { stage: "deploy" } }
layer { name: "leveled" type: "TanH" bottom: "a" top: "d" include { min_level: 1 } }
layer { name: "not_staged" type: "AbsVal" bottom: "a" top: "e" exclude { stage: "deploy" } }
layer { name: "data_layer" type: "Data" top: "x" data_param { source: "db" batch_size: 4 }
        transform_param { mirror: true } include { phase: TRAIN } }
"""
    proto, _ = write_net(tmp_path, text)
    plain = Net(str(proto))
    assert plain._layer_names == ["input", "test_only", "not_staged"]
    staged = Net(str(proto), stages=["deploy"], level=1)
    assert staged._layer_names == ["input", "test_only", "a_test_only_0_split", "staged",
                                   "leveled"]


def test_streaming_reader_agrees_with_protobuf(tmp_path):
    # A model with every BlobProto field (diffs too, which the reader skips), parameters and
    # training fields on the layers: the reader's layers and blobs equal protobuf's parse.
    from fastconv.net.files import read_caffemodel

    rng = np.random.default_rng(9)
    net = messages()["NetParameter"](name="all-fields")
    for index in range(3):
        layer = net.layer.add(name=f"l{index}", type="Convolution", bottom=["a"], top=["b"])
        layer.convolution_param.num_output = 3 + index
        layer.convolution_param.kernel_size.extend([3, 1 + index])
        layer.param.add(lr_mult=1, decay_mult=0)
        layer.include.add(phase=1)
        for count in (6, 1 + index):
            blob = layer.blobs.add()
            values = rng.standard_normal(count)
            if count == 6:
                blob.shape.dim.extend([2, 3])
                blob.data.extend(values.tolist())
                blob.diff.extend(values.tolist())
            else:
                blob.num, blob.channels, blob.height, blob.width = 1, 1, 1, count
                blob.double_data.extend(values.tolist())
                blob.double_diff.extend(values.tolist())
    path = tmp_path / "all.caffemodel"
    path.write_bytes(net.SerializeToString())
    layers = read_caffemodel(str(path))
    assert len(layers) == 3
    for (layer, blobs), original in zip(layers, net.layer):
        expected = messages()["LayerParameter"]()
        expected.CopyFrom(original)
        del expected.blobs[:]
        assert layer == expected
        assert [blob.shape for blob in blobs] == [(2, 3), (1, 1, 1, len(original.blobs[1]
                                                                         .double_data))]
        assert [blob.legacy for blob in blobs] == [False, True]
        np.testing.assert_array_equal(blobs[0].data, np.float32(original.blobs[0].data))
        assert blobs[0].data.dtype == np.float32 and blobs[1].data.dtype == np.float64
        np.testing.assert_array_equal(blobs[1].data, original.blobs[1].double_data)


def test_prototxt_with_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "bom.prototxt"
    path.write_bytes(b"\xef\xbb\xbf" + NEW_FORMAT.replace("\n", "\r\n").encode())
    assert Net(str(path))._layer_names == ["data", "conv", "relu", "ip", "prob"]
