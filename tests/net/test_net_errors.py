"""Bad input: every mistake raises a clear Python exception naming where it is (the line, the
layer, the shapes, the file), never a crash or a silently wrong net."""
import numpy as np
import pytest

pytest.importorskip("google.protobuf")

from net_files import caffemodel_bytes, input_layer, write_net  # noqa: E402

from fastconv.net import Net  # noqa: E402

CONV = input_layer({"data": (1, 3, 6, 6)}) + """
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 2 } }
"""


def _weights(conv_shape=(4, 3, 3, 3)):
    rng = np.random.default_rng(3)
    return {"conv": [rng.standard_normal(conv_shape).astype(np.float32),
                     np.zeros(4, np.float32)],
            "ip": [rng.standard_normal((2, 64)).astype(np.float32), np.zeros(2, np.float32)]}


def _net(tmp_path, text, weights=None):
    proto, model = write_net(tmp_path, text, weights)
    return Net(str(proto), str(model) if model else None)


@pytest.mark.parametrize("text, match", [
    ('name: "x"\nlayer {\n  name: "a" type: "ReLU"\n  bottom: "b" top: "b" }\n}\n',
     "line 5"),
    ('name: "x"\nlayer { name: "a" type: "ReLU"\n  negative_slop: 0.1 }\n',
     'line 3.*no field named "negative_slop"'),
    ('layer { name: "p" type: "Pooling" pooling_param { pool: MEDIAN } }', "line 1.*MEDIAN"),
])
def test_prototxt_syntax_errors_name_the_line(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        _net(tmp_path, text)


def test_binary_file_as_prototxt(tmp_path):
    path = tmp_path / "swapped.prototxt"
    path.write_bytes(caffemodel_bytes(_weights()))
    with pytest.raises(ValueError, match="not a text prototxt"):
        Net(str(path))


@pytest.mark.parametrize("text, match", [
    (input_layer({"data": (1, 2)}) +
     'layer { name: "r" type: "ReLU" bottom: "date" top: "r" }',
     "layer 'r' \\(ReLU\\) takes bottom 'date'.*no earlier layer produces"),
    (input_layer({"a": (1, 2, 3), "b": (1, 2, 4)}) +
     'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }',
     "layer 'sum' \\(Eltwise\\): bottom 'b' of shape \\(1, 2, 4\\) differs from bottom 'a' of "
     "shape \\(1, 2, 3\\)"),
    (input_layer({"a": (1, 2, 3), "b": (1, 3, 4)}) +
     'layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "c" }',
     "layer 'cat' \\(Concat\\): bottom 'b' of shape \\(1, 3, 4\\) does not fit bottom 'a'"),
    (input_layer({"a": (1, 2, 3, 3), "b": (1, 2, 5, 5)}) +
     'layer { name: "crop" type: "Crop" bottom: "a" bottom: "b" top: "c" }',
     "layer 'crop' \\(Crop\\): crop of axis 2 is out of bounds"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "p" type: "Pooling" bottom: "a" top: "p" pooling_param { kernel_size: 5 } }',
     "layer 'p' \\(Pooling\\): bottom 'a' of shape \\(1, 2, 3, 3\\) is too small"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 5 } }',
     "layer 'c' \\(Convolution\\): spatial size 3 with kernel 5.*output size of -1"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 1 stride_h: 2 } }',
     "layer 'c' \\(Convolution\\): stride_h needs stride_w too"),
    (input_layer({"a": (1, 3, 3, 3)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 1 group: 2 } }',
     "group=2 does not divide num_output=2|group=2 does not divide the 3 channels"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "p" type: "Pooling" bottom: "a" top: "p" '
     'pooling_param { pool: STOCHASTIC kernel_size: 2 } }', "STOCHASTIC"),
    (input_layer({"a": (1, 2, 4)}) +
     'layer { name: "r" type: "Reshape" bottom: "a" top: "b" reshape_param { shape { dim: 3 '
     'dim: -1 } } }', "layer 'r' \\(Reshape\\): bottom 'a' of shape \\(1, 2, 4\\) \\(8 values\\)"),
    (input_layer({"a": (1, 2)}) +
     'layer { name: "r" type: "ReLU" bottom: "a" top: "b" include { phase: TEST } '
     'exclude { stage: "x" } }', "both include and exclude"),
    (input_layer({"a": (1, 2)}) +
     'layer { name: "f" type: "Flatten" bottom: "a" top: "a" }', "cannot run in place"),
    (input_layer({"a": (1, 2)}) +
     'layer { name: "d" type: "Dropout" bottom: "a" top: "a" phase: TRAIN }', "TRAIN phase"),
    # Nets real Caffe 1.0 aborts on (found by a random-net campaign against it).
    (input_layer({"a": (1, 2)}) +
     'layer { name: "abs" type: "AbsVal" bottom: "a" top: "a" }',
     "layer 'abs' \\(AbsVal\\): cannot run in place.*Caffe refuses this too"),
    (input_layer({"a": (1, 2, 1, 1, 1)}) +
     'layer { name: "pr" type: "PReLU" bottom: "a" top: "b" }', "layer 'pr'.*needs 2 to 4 axes"),
    (input_layer({"a": (3,)}) +
     'layer { name: "bn" type: "BatchNorm" bottom: "a" top: "b" }',
     "layer 'bn'.*needs at least 2 axes"),
    (input_layer({"a": (1, 2, 3)}) +
     'layer { name: "s" type: "Scale" bottom: "a" top: "b" scale_param { axis: 5 num_axes: 0 } }',
     "layer 's'.*scale_param.axis"),
    (input_layer({"a": (1, 2, 3)}) +
     'layer { name: "l" type: "Log" bottom: "a" top: "b" log_param { base: 1 } }',
     "layer 'l'.*base=1: 1 / log\\(base\\) is not finite"),
    (input_layer({"a": (1, 2, 3), "b": (1, 2, 3)}) +
     'layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "a" }',
     "layer 'cat'.*cannot run in place.*Caffe does not check this"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" convolution_param { '
     'num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 0 } } }',
     "layer 'c' \\(Convolution\\), parameter blob 0: gaussian filler with std 0"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" convolution_param { '
     'num_output: 2 kernel_h: 1 kernel_w: 2 weight_filler { type: "bilinear" } } }',
     "layer 'c'.*bilinear filler on a blob of shape \\(2, 2, 1, 2\\)"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" convolution_param { '
     'num_output: 2 kernel_size: 1 bias_filler { type: "uniform" min: 1 max: 0 } } }',
     "layer 'c'.*parameter blob 1: uniform filler with min 1.0 > max 0.0"),
    (input_layer({"a": (1, 2, 3, 3)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" convolution_param { '
     'num_output: 2 kernel_size: 1 weight_filler { type: "gauss" } } }',
     "layer 'c'.*filler type 'gauss' is not one of Caffe's"),
    (input_layer({"a": (1, 1, 4, 4)}) +
     'layer { name: "p" type: "Pooling" bottom: "a" top: "p" '
     'pooling_param { pool: MAX kernel_size: 1 stride: 2 } }',
     "layer 'p'.*last window entirely past the input"),
    (input_layer({"a": (1, 1, 2, 2, 2, 2)}) +
     'layer { name: "c" type: "Convolution" bottom: "a" top: "c" '
     'convolution_param { num_output: 1 kernel_size: 1 } }',
     "layer 'c'.*has 4 spatial axes.*fastconv convolves 1 to 3"),
    (input_layer({"a": (1, 2, 3), "b": (1, 2, 3)}) +
     'layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "p" '
     'eltwise_param { operation: PROD coeff: 1 coeff: 2 } }',
     "layer 'e'.*coeff is not allowed with operation PROD"),
])
def test_bad_nets_name_the_layer(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        _net(tmp_path, text)


def _layer_on(shape, layer, param):
    return (input_layer({"data": shape}) +
            f'layer {{ name: "l" type: "{layer}" bottom: "data" top: "out" {param} }}')


@pytest.mark.parametrize("text, blob", [
    (_layer_on((1, 3, 8, 8), "Convolution",
               "convolution_param { num_output: 2000000000 kernel_size: 3 }"),
     "parameter blob 0"),
    (_layer_on((1, 3, 8, 8), "InnerProduct", "inner_product_param { num_output: 1000000000 }"),
     "parameter blob 0"),
    (_layer_on((1, 3, 8, 8), "Convolution",
               "convolution_param { num_output: 2 kernel_size: 3 pad: 2000000000 }"),
     "top 'out'"),
    (_layer_on((1, 3, 8, 8), "Deconvolution",
               "convolution_param { num_output: 2 kernel_size: 3 stride: 2000000000 }"),
     "top 'out'"),
    (_layer_on((1, 3, 8, 8), "Pooling",
               "pooling_param { kernel_size: 2000000000 pad: 1999999999 }"),
     "top 'out'"),
    (_layer_on((2, 4, 6, 6), "LRN", "lrn_param { local_size: 2000000001 }"),
     "its padded squares"),
])
def test_blobs_beyond_int_max_are_refused_naming_the_layer(tmp_path, text, blob):
    """Caffe aborts on a blob of more than INT_MAX elements (blob.cpp's Reshape); so does the
    Net, naming the layer and the blob, before allocating anything."""
    with pytest.raises(ValueError, match=f"layer 'l' .*{blob}.*more than INT_MAX"):
        _net(tmp_path, text)


def test_weight_shape_mismatch_names_layer_and_shapes(tmp_path):
    with pytest.raises(ValueError, match="layer 'conv' \\(Convolution\\): weights blob 0 has "
                                         "shape \\(4, 2, 3, 3\\).*but \\(4, 3, 3, 3\\)"):
        _net(tmp_path, CONV, _weights(conv_shape=(4, 2, 3, 3)))


def test_weight_count_mismatch(tmp_path):
    weights = _weights()
    weights["conv"] = weights["conv"][:1]
    with pytest.raises(ValueError, match="layer 'conv' \\(Convolution\\): the weights file has "
                                         "1 blobs for it, the prototxt makes 2"):
        _net(tmp_path, CONV, weights)


def test_channels_changed_after_setup(tmp_path):
    net = _net(tmp_path, CONV, _weights())
    net.blobs["data"].reshape(1, 4, 6, 6)
    with pytest.raises(ValueError, match="layer 'conv' \\(Convolution\\): bottom 'data' of "
                                         "shape \\(1, 4, 6, 6\\) has 4 channels.*\\(4, 3, 3, 3\\)"):
        net.forward()


def test_input_that_does_not_fit(tmp_path):
    net = _net(tmp_path, CONV, _weights())
    with pytest.raises(ValueError, match="input 'data' of shape \\(2, 3, 6, 6\\).*batch"):
        net.forward(data=np.zeros((2, 3, 6, 6)))
    with pytest.raises(ValueError, match="input 'data' of shape \\(1, 3, 5, 5\\) does not fit"):
        net.forward(data=np.zeros((1, 3, 5, 5)))


def _write_model(tmp_path, payload):
    proto, _ = write_net(tmp_path, CONV)
    model = tmp_path / "bad.caffemodel"
    model.write_bytes(payload)
    return str(proto), str(model)


def test_truncated_caffemodel(tmp_path):
    good = caffemodel_bytes(_weights())
    # Cut inside the conv weights' payload, inside a length prefix, and everywhere in between:
    # always a clear error or (at a boundary between whole fields) a shorter, valid file.
    for cut in list(range(1, 60)) + [len(good) // 2, len(good) - 1]:
        proto, model = _write_model(tmp_path, good[:cut])
        try:
            Net(proto, model)
        except ValueError as error:
            assert "bad.caffemodel" in str(error)
    proto, model = _write_model(tmp_path, good[:len(good) // 2])
    with pytest.raises(ValueError, match="truncated"):
        Net(proto, model)


@pytest.mark.parametrize("payload, match", [
    (bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
     "not a valid Caffe .caffemodel|holds no layers"),
    (b'name: "a prototxt"\nlayer { name: "x" }\n', "not a valid Caffe .caffemodel"),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "HDF5"),
    (b"", "holds no layers"),
])
def test_non_caffe_files(tmp_path, payload, match):
    proto, model = _write_model(tmp_path, payload)
    with pytest.raises(ValueError, match=match):
        Net(proto, model)


def test_bad_filler_refused_even_with_weights(tmp_path):
    """Caffe runs every filler while it builds the net, before it reads the weights file."""
    text = CONV.replace("convolution_param { num_output: 4 kernel_size: 3 }",
                        'convolution_param { num_output: 4 kernel_size: 3 '
                        'weight_filler { type: "gaussian" std: -1 } }')
    with pytest.raises(ValueError, match="layer 'conv'.*gaussian filler with std -1.0.*weights "
                                         "file or not"):
        _net(tmp_path, text, _weights())


def test_a_mask_top_only_with_max_pooling(tmp_path):
    text = input_layer({"a": (1, 1, 4, 4)}) + (
        'layer { name: "p" type: "Pooling" bottom: "a" top: "p" top: "m" '
        'pooling_param { pool: AVE kernel_size: 2 stride: 2 } }')
    with pytest.raises(ValueError, match="layer 'p'.*second top.*only given by MAX pooling"):
        _net(tmp_path, text)
