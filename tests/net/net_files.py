"""Small Caffe nets for the tests: prototxt text and .caffemodel bytes made with protobuf's own
serialisation (not fastconv's reader or writer), so the files are independent of the code under
test."""
from __future__ import annotations

import numpy as np

from fastconv.net.schema import messages


def caffemodel_bytes(weights, *, v1=False, legacy_dims=False, double=False, extra_layers=()):
    """A binary NetParameter holding ``weights`` {layer name: [arrays]}.

    ``v1`` writes V1 ``layers`` (field 2), ``legacy_dims`` the 4-D num/channels/height/width
    sizes instead of ``shape``, ``double`` the values as ``double_data``. ``extra_layers`` are
    (name, type) of layers with no counterpart in the prototxt (training layers).
    """
    net = messages()["NetParameter"](name="from-test")
    for name, arrays in weights.items():
        layer = net.layers.add(name=name) if v1 else net.layer.add(name=name, type="Any")
        for array in arrays:
            blob = layer.blobs.add()
            array = np.asarray(array)
            if legacy_dims:
                dims = (1,) * (4 - array.ndim) + array.shape
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.dim.extend(array.shape)
            (blob.double_data if double else blob.data).extend(array.ravel().tolist())
    for name, layer_type in extra_layers:
        net.layer.add(name=name, type=layer_type, bottom=["data"], top=["loss"])
    return net.SerializeToString()


def write_net(tmp_path, prototxt, weights=None, **options):
    """(prototxt path, caffemodel path or None) written under ``tmp_path``."""
    proto_path = tmp_path / "deploy.prototxt"
    proto_path.write_text(prototxt)
    if weights is None:
        return proto_path, None
    model_path = tmp_path / "weights.caffemodel"
    model_path.write_bytes(caffemodel_bytes(weights, **options))
    return proto_path, model_path


def input_layer(shapes):
    """An Input layer with one top per {name: shape}."""
    tops = " ".join(f'top: "{name}"' for name in shapes)
    dims = " ".join("shape { " + " ".join(f"dim: {d}" for d in shape) + " }"
                    for shape in shapes.values())
    return f'layer {{ name: "input" type: "Input" {tops} input_param {{ {dims} }} }}\n'


def one_layer_net(tmp_path, layer_text, inputs, weights=None, dtype=np.float32, **options):
    """A Net of Input layer(s) for ``inputs`` {name: array} + the given layer text, run once.

    Returns (net, outputs of the forward).
    """
    from fastconv.net import Net

    text = input_layer({name: array.shape for name, array in inputs.items()}) + layer_text
    proto, model = write_net(tmp_path, text, weights, **options)
    net = Net(str(proto), str(model) if model else None, dtype=dtype)
    return net, net.forward(**inputs)
