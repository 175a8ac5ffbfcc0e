"""The per-type builders of fastconv.keras_model: one method per Caffe layer type, mapping that
layer (with the net's weights transposed in) to Keras layers or exact ``keras.ops`` expressions.
Layout as fastconv.keras_model's docstring says: 4-D blobs NHWC, other ranks in Caffe's order.
Importing this module never imports Keras (the caller passes the ``keras`` module in).
"""
from __future__ import annotations

import re

import numpy as np

from .keras_layers import from_caffe, pooling_from_caffe

NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


def _keras_axis(axis, ndim):
    """Caffe axis (negative allowed) of a blob with ``ndim`` axes -> the Keras tensor's axis."""
    axis = axis + ndim if axis < 0 else axis
    return NCHW_TO_NHWC_AXIS[axis] if ndim == 4 else axis


def _to_keras(array):
    """A Caffe-ordered constant for a blob of Caffe shape ``array.shape`` -> Keras order."""
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)) if array.ndim == 4 else array


def _param_dict(message):
    """The fields set in a protobuf parameter message, as from_caffe's ``params`` dict."""
    return {field.name: (list(value) if _repeated(field) else value)
            for field, value in message.ListFields()}


def _repeated(field):
    # protobuf 5.x and later say ``is_repeated``; older releases only have ``label``.
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


class LayerBuilders:
    """Builds the Keras layers of one Caffe layer at a time from the bottoms' Keras tensors;
    fastconv.keras_model walks the net and keeps ``non_negative`` up to date."""

    def __init__(self, net, keras):
        self.net = net
        self.keras = keras
        self.ops = keras.ops
        self.non_negative = set()   # blobs known to be >= 0 at the point they are read

    def shape(self, blob):
        return tuple(self.net.blobs[blob].shape)

    def weights(self, layer):
        return [np.array(b.data, dtype=np.float32) for b in self.net.params[layer.name]] \
            if layer.name in self.net.params else []

    def lambda_layer(self, layer, function):
        return self.keras.layers.Lambda(function, name=keras_name(layer.name))

    def refuse(self, layer, why):
        raise NotImplementedError(f"layer {layer.name!r} ({layer.type}): {why}")

    def to_caffe_order(self, tensor, ndim):
        return self.keras.layers.Permute((3, 1, 2))(tensor) if ndim == 4 else tensor

    def from_caffe_order(self, tensor, ndim):
        return self.keras.layers.Permute((2, 3, 1))(tensor) if ndim == 4 else tensor

    # --- one method per Caffe layer type: (layer, its parameter message, bottom tensors)
    # -> top tensors, in the order of the layer's tops.

    def convolution(self, layer, param, bottoms):
        return [self.conv_family(layer, param, bottoms, "Convolution")]

    def deconvolution(self, layer, param, bottoms):
        return [self.conv_family(layer, param, bottoms, "Deconvolution")]

    def conv_family(self, layer, param, bottoms, layer_type):
        shape = self.shape(layer.bottoms[0])
        if len(shape) != 4:
            self.refuse(layer, f"bottom {layer.bottoms[0]!r} is {len(shape)}-D; Keras's "
                               "Conv2D/Conv2DTranspose take 4-D (N-D convolution is not mapped)")
        weights = self.weights(layer)
        try:
            keras_layers = from_caffe(_param_dict(param.convolution_param), weights[0],
                                      weights[1] if len(weights) > 1 else None,
                                      layer_type=layer_type, input_size=shape[2:])
        except NotImplementedError as why:
            self.refuse(layer, str(why))
        return _chain(keras_layers, bottoms[0])

    def pooling(self, layer, param, bottoms):
        if len(layer.tops) > 1:
            self.refuse(layer, "its second top, the index of each window's maximum, has no "
                               "Keras layer")
        shape = self.shape(layer.bottoms[0])
        try:
            keras_layers = pooling_from_caffe(
                _param_dict(param.pooling_param), input_size=shape[2:],
                assume_nonnegative=layer.bottoms[0] in self.non_negative)
        except NotImplementedError as why:
            self.refuse(layer, str(why))
        return [_chain(keras_layers, bottoms[0])]

    def inner_product(self, layer, param, bottoms):
        ip = param.inner_product_param
        ndim = len(self.shape(layer.bottoms[0]))
        axis = ip.axis + ndim if ip.axis < 0 else ip.axis
        if axis != 1:
            self.refuse(layer, f"axis: {ip.axis} (only axis 1, Caffe's default, flattens into a "
                               "Keras Dense)")
        weights = self.weights(layer)
        # Caffe flattens NCHW: channel-major. Back to NCHW first, or the rows of the weight
        # matrix meet the wrong pixels (the classic port mistake).
        flat = self.keras.layers.Flatten()(self.to_caffe_order(bottoms[0], ndim)) \
            if ndim > 2 else bottoms[0]
        kernel = weights[0] if ip.transpose else weights[0].T
        dense = self.keras.layers.Dense(ip.num_output, use_bias=ip.bias_term,
                                        name=keras_name(layer.name))
        dense.build((None, kernel.shape[0]))
        dense.set_weights([np.ascontiguousarray(kernel)] + weights[1:2])
        return [dense(flat)]

    def relu(self, layer, param, bottoms):
        slope = param.relu_param.negative_slope
        if slope < 0:   # Caffe takes it; Keras's ReLU refuses: Caffe's formula instead
            ops, factor = self.ops, np.float32(slope)
            return [self.lambda_layer(layer, lambda x: ops.maximum(x, 0.0) +
                                      factor * ops.minimum(x, 0.0))(bottoms[0])]
        return [self.keras.layers.ReLU(negative_slope=slope, name=keras_name(layer.name))(
            bottoms[0])]

    def prelu(self, layer, param, bottoms):
        ndim = len(self.shape(layer.bottoms[0]))
        slopes = self.weights(layer)[0]
        shared = list(range(1, ndim)) if param.prelu_param.channel_shared else \
            [a for a in range(1, ndim) if a != _keras_axis(1, ndim)]
        prelu = self.keras.layers.PReLU(shared_axes=shared or None, name=keras_name(layer.name))
        keras_shape = [1 if a in shared else n for a, n in enumerate(keras_order(
            self.shape(layer.bottoms[0])))][1:]
        prelu.build((None,) + tuple(keras_order(self.shape(layer.bottoms[0]))[1:]))
        prelu.set_weights([slopes.reshape(keras_shape)])
        return [prelu(bottoms[0])]

    def elu(self, layer, param, bottoms):
        return [self.keras.layers.ELU(alpha=param.elu_param.alpha,
                                      name=keras_name(layer.name))(bottoms[0])]

    def sigmoid(self, layer, param, bottoms):
        return [self.keras.layers.Activation("sigmoid", name=keras_name(layer.name))(bottoms[0])]

    def tanh(self, layer, param, bottoms):
        return [self.keras.layers.Activation("tanh", name=keras_name(layer.name))(bottoms[0])]

    def absval(self, layer, param, bottoms):
        return [self.lambda_layer(layer, self.ops.abs)(bottoms[0])]

    def bnll(self, layer, param, bottoms):
        return [self.lambda_layer(layer, self.ops.softplus)(bottoms[0])]

    def power(self, layer, param, bottoms):
        p = param.power_param
        ops = self.ops
        power, scale, shift = p.power, p.scale, p.shift
        return [self.lambda_layer(layer, lambda x: ops.power(shift + scale * x, power))(
            bottoms[0])]

    def exp(self, layer, param, bottoms):
        p = param.exp_param
        # Caffe: base^(shift + scale*x) = base^shift * exp(ln(base)*scale * x); base -1 is e.
        log_base = 1.0 if p.base == -1 else float(np.log(p.base))
        inner, outer = log_base * p.scale, float(np.exp(log_base * p.shift))
        ops = self.ops
        return [self.lambda_layer(layer, lambda x: outer * ops.exp(inner * x))(bottoms[0])]

    def log(self, layer, param, bottoms):
        p = param.log_param
        base_scale = 1.0 if p.base == -1 else float(1 / np.log(p.base))
        scale, shift = p.scale, p.shift
        ops = self.ops
        return [self.lambda_layer(layer, lambda x: base_scale * ops.log(shift + scale * x))(
            bottoms[0])]

    def threshold(self, layer, param, bottoms):
        threshold = param.threshold_param.threshold
        ops = self.ops
        return [self.lambda_layer(layer, lambda x: ops.cast(x > threshold, x.dtype))(bottoms[0])]

    def lrn(self, layer, param, bottoms):
        p = param.lrn_param
        size, alpha, beta, k = p.local_size, p.alpha, p.beta, p.k
        ops = self.ops
        if len(self.shape(layer.bottoms[0])) != 4:
            self.refuse(layer, "LRN needs a 4-D bottom (Caffe's requirement)")
        if p.norm_region == 0:   # ACROSS_CHANNELS: window of `size` channels, zeros outside
            before = (size - 1) // 2

            def across(x):
                padded = ops.pad(ops.square(x), [[0, 0], [0, 0], [0, 0],
                                                 [before, size - 1 - before]])
                channels = ops.shape(x)[-1]
                window = sum(padded[..., i:i + channels] for i in range(size))
                return x * ops.power(k + (alpha / size) * window, -beta)
            return [self.lambda_layer(layer, across)(bottoms[0])]
        # WITHIN_CHANNEL: Caffe's own construction (k not used): AVE pooling of x*x with the
        # Pooling layer's divisor, then (1 + alpha * pooled)^-beta times x.
        squared = self.keras.layers.Lambda(ops.square)(bottoms[0])
        pooled = _chain(pooling_from_caffe({"pool": "AVE", "kernel_size": size, "stride": 1,
                                            "pad": (size - 1) // 2},
                                           input_size=self.shape(layer.bottoms[0])[2:]), squared)
        return [self.lambda_layer(layer, lambda xs: xs[0] * ops.power(1 + alpha * xs[1], -beta))(
            [bottoms[0], pooled])]

    def softmax(self, layer, param, bottoms):
        axis = _keras_axis(param.softmax_param.axis, len(self.shape(layer.bottoms[0])))
        ops = self.ops

        def caffe_softmax(x):
            # Caffe's steps, exp(x - max) / sum: a NaN anywhere in a slice makes the whole
            # slice NaN through the sum (TensorFlow's fused softmax kept the others finite).
            shifted = ops.exp(x - ops.max(x, axis=axis, keepdims=True))
            return shifted / ops.sum(shifted, axis=axis, keepdims=True)
        return [self.lambda_layer(layer, caffe_softmax)(bottoms[0])]

    def concat(self, layer, param, bottoms):
        p = param.concat_param
        axis = p.concat_dim if p.HasField("concat_dim") else p.axis
        ndim = len(self.shape(layer.bottoms[0]))
        return [self.keras.layers.Concatenate(axis=_keras_axis(axis, ndim),
                                              name=keras_name(layer.name))(bottoms)]

    def slice(self, layer, param, bottoms):
        p = param.slice_param
        caffe_axis = p.slice_dim if p.HasField("slice_dim") else p.axis
        shape = self.shape(layer.bottoms[0])
        axis = _keras_axis(caffe_axis, len(shape))
        sizes = [self.shape(top)[caffe_axis] for top in layer.tops]
        starts = np.cumsum([0] + sizes[:-1])
        ops = self.ops
        return [self.keras.layers.Lambda(
            lambda x, start=int(start), size=size: ops.slice(
                x, [start if a == axis else 0 for a in range(len(shape))],
                [size if a == axis else ops.shape(x)[a] for a in range(len(shape))]),
            name=keras_name(f"{layer.name}_{i}"))(bottoms[0])
            for i, (start, size) in enumerate(zip(starts, sizes))]

    def split(self, layer, param, bottoms):
        return [self.keras.layers.Identity(name=keras_name(f"{layer.name}_{i}"))(bottoms[0])
                for i in range(len(layer.tops))]

    def silence(self, layer, param, bottoms):
        return []   # no tops: the bottoms are simply not outputs of anything here

    def dropout(self, layer, param, bottoms):
        return [self.keras.layers.Identity(name=keras_name(layer.name))(bottoms[0])]

    def eltwise(self, layer, param, bottoms):
        p = param.eltwise_param
        name = keras_name(layer.name)
        if p.operation == 0:     # PROD (the Net has checked coeff: one per bottom, not PROD)
            return [self.keras.layers.Multiply(name=name)(bottoms)]
        if set(layer.tops) & set(layer.bottoms):
            # Caffe sets the top (0, or -FLT_MAX for MAX) before it reads the bottom it
            # overwrites; a Keras layer reads every input as it was.
            self.refuse(layer, "runs in place: Caffe's SUM and MAX then read the top they "
                               "have already reset in place of that bottom")
        if p.operation == 2:     # MAX (Caffe ignores coeff there)
            return [self.keras.layers.Maximum(name=name)(bottoms)]
        coeffs = list(p.coeff) or [1.0] * len(bottoms)
        if all(c == 1 for c in coeffs):
            return [self.keras.layers.Add(name=name)(bottoms)]

        def weighted_sum(xs):
            # A zero coefficient skips its bottom (the BLAS axpy returns at once): an inf or
            # NaN there does not reach the sum.
            terms = [coeff * x for coeff, x in zip(coeffs, xs) if coeff != 0]
            if not terms:
                return self.ops.zeros_like(xs[0])
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            return total
        return [self.lambda_layer(layer, weighted_sum)(bottoms)]

    def batch_norm(self, layer, param, bottoms):
        p = param.batch_norm_param
        if p.HasField("use_global_stats") and not p.use_global_stats:
            self.refuse(layer, "use_global_stats: false normalizes with the batch's own "
                               "statistics, which a Keras inference model does not do")
        mean, variance, factor = self.weights(layer)[:3]
        scale = 0.0 if factor[0] == 0 else 1.0 / factor[0]
        ndim = len(self.shape(layer.bottoms[0]))
        norm = self.keras.layers.BatchNormalization(axis=_keras_axis(1, ndim), epsilon=p.eps,
                                                    center=False, scale=False,
                                                    name=keras_name(layer.name))
        norm.build(keras_order(self.shape(layer.bottoms[0])))
        norm.set_weights([mean * scale, variance * scale])
        return [norm(bottoms[0], training=False)]

    def scale(self, layer, param, bottoms):
        p = param.scale_param
        return [self.affine(layer, bottoms, p.axis, p.num_axes, multiply=True,
                            bias_term=p.bias_term)]

    def bias(self, layer, param, bottoms):
        p = param.bias_param
        return [self.affine(layer, bottoms, p.axis, p.num_axes, multiply=False, bias_term=True)]

    def affine(self, layer, bottoms, axis, num_axes, *, multiply, bias_term):
        """Scale (``multiply``, plus a bias parameter with ``bias_term``) and Bias: an operand
        spanning Caffe axes ``axis``.. of the bottom (a parameter of ``num_axes`` axes, or a
        second bottom), broadcast over the other axes as Caffe does."""
        shape = self.shape(layer.bottoms[0])
        ndim = len(shape)
        axis = axis + ndim if axis < 0 else axis
        if len(bottoms) > 1:
            if axis != 0:
                self.refuse(layer, f"axis: {axis} with a second bottom: that bottom has no "
                                   "batch axis, which every Keras tensor has (axis: 0 maps)")
            span = len(self.shape(layer.bottoms[1]))
        else:
            span = ndim - axis if num_axes == -1 else num_axes
        broadcast = (1,) * axis + shape[axis:axis + span] + (1,) * (ndim - axis - span)
        constants = [_to_keras(np.reshape(w, broadcast)) for w in self.weights(layer)]
        ops = self.ops

        def operand(tensor):   # the second bottom, broadcastable against the Keras tensor
            if span == 4:   # a 4-D second bottom is NHWC here: back to Caffe's order first
                tensor = ops.transpose(tensor, (0, 3, 1, 2))
            tensor = ops.reshape(tensor, (-1,) + broadcast[1:])
            return ops.transpose(tensor, (0, 2, 3, 1)) if ndim == 4 else tensor

        if len(bottoms) > 1:
            if not multiply:
                return self.lambda_layer(layer, lambda xs: xs[0] + operand(xs[1]))(bottoms)
            if bias_term:
                return self.lambda_layer(
                    layer, lambda xs: xs[0] * operand(xs[1]) + constants[0])(bottoms)
            return self.lambda_layer(layer, lambda xs: xs[0] * operand(xs[1]))(bottoms)
        if not multiply:
            return self.lambda_layer(layer, lambda x: x + constants[0])(bottoms[0])
        if bias_term:
            return self.lambda_layer(layer, lambda x: x * constants[0] + constants[1])(bottoms[0])
        return self.lambda_layer(layer, lambda x: x * constants[0])(bottoms[0])

    def flatten(self, layer, param, bottoms):
        return [self.caffe_reshape(layer, bottoms[0])]

    def reshape(self, layer, param, bottoms):
        return [self.caffe_reshape(layer, bottoms[0])]

    def caffe_reshape(self, layer, tensor):
        """Flatten/Reshape: Caffe reshapes its NCHW memory, so reshape in Caffe's order to the
        top shape the net computed (dims 0 and -1 already resolved)."""
        bottom, top = self.shape(layer.bottoms[0]), self.shape(layer.tops[0])
        if top[0] != bottom[0]:
            self.refuse(layer, f"reshapes the batch axis ({bottom} -> {top}); a Keras model "
                               "keeps the batch axis")
        caffe_order = self.to_caffe_order(tensor, len(bottom))
        reshaped = self.keras.layers.Reshape(top[1:], name=keras_name(layer.name))(caffe_order)
        return self.from_caffe_order(reshaped, len(top))

    def crop(self, layer, param, bottoms):
        p = param.crop_param
        shape, reference = self.shape(layer.bottoms[0]), self.shape(layer.bottoms[1])
        ndim = len(shape)
        axis = p.axis + ndim if p.axis < 0 else p.axis
        if axis == 0:
            self.refuse(layer, "crops the batch axis; a Keras model keeps the batch axis")
        offsets = list(p.offset)
        starts = []
        for a in range(ndim):
            if a < axis:
                starts.append(0)
            else:
                starts.append(0 if not offsets else offsets[0] if len(offsets) == 1
                              else offsets[a - axis])
        sizes = [shape[a] if a < axis else reference[a] for a in range(ndim)]
        if ndim == 4:
            starts, sizes = keras_order(starts), keras_order(sizes)
        ops = self.ops
        return [self.lambda_layer(layer, lambda x: ops.slice(x, starts, [ops.shape(x)[0]]
                                                             + list(sizes[1:])))(bottoms[0])]


def _chain(keras_layers, tensor):
    for keras_layer in keras_layers:
        tensor = keras_layer(tensor)
    return tensor


def keras_order(values):
    values = list(values)
    return values if len(values) != 4 else [values[0], values[2], values[3], values[1]]


def keras_name(name):
    """Keras layer names allow letters, digits, '_', '-' and '.'; Caffe's may hold '/'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
