"""A whole Caffe net as a functional ``keras.Model`` (NHWC), reproducing every blob.

:func:`model_from_caffe` maps each layer of a :class:`fastconv.net.Net` to Keras layers with the
net's weights transposed in: Convolution, Deconvolution and Pooling through
:func:`fastconv.keras.from_caffe` / :func:`~fastconv.keras.pooling_from_caffe` (zero padding +
'valid' where 'same' would differ, Caffe's ceil-mode pooling, ...), the other types through Keras
layers or exact ``keras.ops`` expressions. Layout: 4-D blobs are NHWC; blobs of any other rank
keep Caffe's order, so a 4-D blob is transposed back to NCHW before Caffe flattens or reshapes
it (InnerProduct, Flatten, Reshape) and axis parameters are mapped NCHW -> NHWC (Softmax,
Concat, Slice, Crop, Scale, Bias).

Where Keras cannot express a layer exactly the build stops with NotImplementedError naming the
layer and the reason (e.g. ArgMax: Caffe keeps the last index on ties, Keras the first); it
never approximates silently. Importing this module never imports Keras.
"""
from __future__ import annotations

from .keras_model_layers import LayerBuilders, keras_name, keras_order

# Layers whose output keeps a non-negative input non-negative (MAX pooling may then pad zeros);
# LRN too where its scale is positive (k >= 0 and alpha >= 0).
_SIGN_KEEPING = ("Pooling", "Split", "Dropout", "Concat", "Flatten", "Reshape", "Crop", "Slice")
# Layers whose tops share their bottom's memory in Caffe (ShareData).
_SHARING_DATA = ("Split", "Flatten", "Reshape")
_NON_NEGATIVE_OUTPUT = ("Sigmoid", "AbsVal", "Softmax", "Exp", "BNLL", "Threshold")


class _Builder(LayerBuilders):
    """Walks the net's layers, keeping the Keras tensor of every blob."""

    def __init__(self, net, keras):
        super().__init__(net, keras)
        self.tensors = {}
        self.aliases = {}   # blob -> the blobs whose memory it shares (Split/Flatten/Reshape)

    def keeps_non_negative(self, layer, param):
        """Whether the layer's tops are >= 0 whatever its input, or because its inputs are."""
        if layer.type in _NON_NEGATIVE_OUTPUT or (
                layer.type == "ReLU" and param.relu_param.negative_slope == 0):
            return True
        sign_keeping = layer.type in _SIGN_KEEPING or (
            layer.type == "LRN" and param.lrn_param.k >= 0 and param.lrn_param.alpha >= 0)
        return sign_keeping and all(b in self.non_negative for b in layer.bottoms)

    def add(self, layer, param):
        """Build the Keras layers of one Caffe layer and record its tops' tensors."""
        if layer.type in REFUSED:
            self.refuse(layer, REFUSED[layer.type])
        if layer.type not in BUILDERS:
            self.refuse(layer, "no Keras mapping for this type; mapped types: "
                               + ", ".join(SUPPORTED_TYPES))
        for index, top in enumerate(layer.tops):
            others = sorted(self.aliases.get(top, {top}) - {top})
            if index < len(layer.bottoms) and layer.bottoms[index] == top and others:
                self.refuse(layer, f"runs in place on blob {top!r}, whose memory Caffe shares "
                                   f"with {', '.join(map(repr, others))} (Split, Flatten and "
                                   "Reshape tops share their bottom's data): Caffe's in-place "
                                   "write changes those blobs too, which Keras tensors cannot")
        build = getattr(self, BUILDERS[layer.type])
        tops = build(layer, param, [self.tensors[b] for b in layer.bottoms])
        if layer.type in _SHARING_DATA:
            group = set(layer.tops).union(*(self.aliases.get(b, {b}) for b in layer.bottoms))
            for blob in group:
                self.aliases[blob] = group
        non_negative = self.keeps_non_negative(layer, param)
        for top, tensor in zip(layer.tops, tops):
            self.tensors[top] = tensor
            (self.non_negative.add if non_negative else self.non_negative.discard)(top)


# Caffe layer type -> the LayerBuilders method that maps it (Input layers become keras.Input).
BUILDERS = {
    "Convolution": "convolution", "Deconvolution": "deconvolution", "Pooling": "pooling",
    "InnerProduct": "inner_product", "ReLU": "relu", "PReLU": "prelu", "ELU": "elu",
    "Sigmoid": "sigmoid", "TanH": "tanh", "AbsVal": "absval", "BNLL": "bnll", "Power": "power",
    "Exp": "exp", "Log": "log", "Threshold": "threshold", "LRN": "lrn", "Softmax": "softmax",
    "Concat": "concat", "Slice": "slice", "Split": "split", "Dropout": "dropout",
    "Eltwise": "eltwise", "BatchNorm": "batch_norm", "Scale": "scale", "Bias": "bias",
    "Flatten": "flatten", "Reshape": "reshape", "Crop": "crop", "Silence": "silence",
}
SUPPORTED_TYPES = ("Input",) + tuple(BUILDERS)
# Types fastconv's Net runs that no Keras construction reproduces exactly, with the reason.
REFUSED = {
    "ArgMax": "Caffe's ArgMax sorts (value, index) pairs in descending order, so of equal "
              "values it reports the last index; keras.ops.argmax reports the first",
}


def model_from_caffe(net):
    """A functional ``keras.Model`` computing every blob of ``net`` (a fastconv Net).

    Inputs: a dict of ``keras.Input`` named after the net's input blobs, with the net's current
    shapes (4-D: NHWC) and any batch size. Outputs: a dict, Caffe's blob name -> tensor (4-D
    blobs NHWC, others in Caffe's order), for every blob but the inputs; a blob overwritten by
    in-place layers is given after the last of them, as in pycaffe's ``net.blobs``. Weights are
    the net's current parameter values, in float32. Raises NotImplementedError naming the layer
    and the reason where no Keras construction reproduces Caffe exactly.
    """
    import keras

    builder = _Builder(net, keras)
    inputs = {}
    for name in net.inputs:
        shape = keras_order(builder.shape(name))
        inputs[name] = keras.Input(shape=tuple(shape[1:]), name=keras_name(name))
        builder.tensors[name] = inputs[name]
    for layer in net.layers:
        if layer.type != "Input":
            builder.add(layer, layer.layer_param)
    outputs = {blob: builder.tensors[blob] for blob in net.blobs if blob not in inputs}
    return keras.Model(inputs=inputs, outputs=outputs, name="model_from_caffe")
