"""Every layer type and parameter of fastconv.net against a plain float64 numpy reference
written here from Caffe's formula, in float32 (Caffe's rounding, compared relative to the
output's scale) and in float64 (tight)."""
import itertools
import math

import numpy as np
import pytest

pytest.importorskip("google.protobuf")

from net_files import one_layer_net  # noqa: E402

DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: 2e-6, np.float64: 1e-12}


def assert_close(actual, expected, dtype, factor=1.0):
    """Max error relative to the output's scale (elementwise relative error is meaningless
    near zero)."""
    actual = np.asarray(actual)
    assert actual.dtype == dtype
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.abs(expected).max()), 1e-30)
    error = float(np.abs(actual.astype(np.float64) - expected).max()) / scale
    assert error <= TOLERANCE[dtype] * factor, f"relative error {error:.3g}"


def rand(rng, *shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape).astype(np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# References (float64), from Caffe's definitions


def conv_reference(x, w, b, stride, pad, dilation, group):
    x, w = x.astype(np.float64), w.astype(np.float64)
    rank = x.ndim - 2
    kernel = w.shape[2:]
    out = [(x.shape[2 + a] + 2 * pad[a] - (dilation[a] * (kernel[a] - 1) + 1)) // stride[a] + 1
           for a in range(rank)]
    padded = np.pad(x, [(0, 0), (0, 0)] + [(pad[a], pad[a] + dilation[a] * kernel[a] + stride[a])
                                           for a in range(rank)])
    out_per_group, in_per_group = w.shape[0] // group, w.shape[1]
    y = np.zeros((x.shape[0], w.shape[0], *out))
    for tap in itertools.product(*[range(k) for k in kernel]):
        window = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                       for t, d, s, o in zip(tap, dilation, stride, out))
        for g in range(group):
            patch = padded[(slice(None), slice(g * in_per_group, (g + 1) * in_per_group))
                           + window]
            taps = w[(slice(g * out_per_group, (g + 1) * out_per_group), slice(None)) + tap]
            y[:, g * out_per_group:(g + 1) * out_per_group] += np.tensordot(
                taps, patch, axes=([1], [1])).swapaxes(0, 1)
    if b is not None:
        y += b.astype(np.float64).reshape((-1,) + (1,) * rank)
    return y


def deconv_reference(x, w, b, stride, pad, dilation, group):
    """Each input pixel scatters its weighted kernel into the output (the conv's adjoint)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    in_per_group, out_per_group = c // group, w.shape[1]
    kh, kw = w.shape[2:]
    full = np.zeros((n, out_per_group * group, stride[0] * (h - 1) + dilation[0] * (kh - 1) + 1,
                     stride[1] * (wd - 1) + dilation[1] * (kw - 1) + 1))
    for i, j in itertools.product(range(kh), range(kw)):
        for g in range(group):
            part = np.tensordot(x[:, g * in_per_group:(g + 1) * in_per_group],
                                w[g * in_per_group:(g + 1) * in_per_group, :, i, j],
                                axes=([1], [0])).transpose(0, 3, 1, 2)
            full[:, g * out_per_group:(g + 1) * out_per_group,
                 i * dilation[0]:i * dilation[0] + stride[0] * (h - 1) + 1:stride[0],
                 j * dilation[1]:j * dilation[1] + stride[1] * (wd - 1) + 1:stride[1]] += part
    y = full[:, :, pad[0]:full.shape[2] - pad[0], pad[1]:full.shape[3] - pad[1]]
    return y + b.astype(np.float64).reshape(-1, 1, 1) if b is not None else y


def pool_reference(x, kernel, stride, pad, method):
    x = x.astype(np.float64)
    n, c, h, w = x.shape
    sizes = []
    for size, k, s, p in zip((h, w), kernel, stride, pad):
        out = int(math.ceil((size + 2 * p - k) / s)) + 1
        if (pad[0] or pad[1]) and (out - 1) * s >= size + p:
            out -= 1
        sizes.append(out)
    y = np.zeros((n, c, *sizes))
    for oh, ow in itertools.product(range(sizes[0]), range(sizes[1])):
        hs, ws = oh * stride[0] - pad[0], ow * stride[1] - pad[1]
        he, we = min(hs + kernel[0], h + pad[0]), min(ws + kernel[1], w + pad[1])
        divisor = (he - hs) * (we - ws)
        window = x[:, :, max(hs, 0):min(he, h), max(ws, 0):min(we, w)]
        y[:, :, oh, ow] = (window.max(axis=(2, 3)) if method == "MAX"
                           else window.sum(axis=(2, 3)) / divisor)
    return y


# ---------------------------------------------------------------------------------------------
# The convolution family


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, kernel, group, bias, expect", [
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
     (3, 2), 1, True, dict(stride=(2, 1), pad=(1, 0), dilation=(1, 1))),
    ("kernel_size: 3 stride: 2 pad: 2 dilation: 2", (3, 3), 2, True,
     dict(stride=(2, 2), pad=(2, 2), dilation=(2, 2))),
    ("kernel_size: 2 kernel_size: 3 stride: 1 stride: 2 pad: 0 pad: 1 dilation: 2 dilation: 1 "
     "bias_term: false", (2, 3), 1, False, dict(stride=(1, 2), pad=(0, 1), dilation=(2, 1))),
    ("kernel_h: 3 kernel_w: 3 pad_h: 1", (3, 3), 1, True,
     dict(stride=(1, 1), pad=(1, 0), dilation=(1, 1))),
])
def test_convolution(tmp_path, rng, dtype, params, kernel, group, bias, expect):
    x = rand(rng, 2, 4, 9, 8)
    w = rand(rng, 6, 4 // group, *kernel)
    b = rand(rng, 6)
    text = (f'layer {{ name: "conv" type: "Convolution" bottom: "x" top: "y" '
            f'convolution_param {{ num_output: 6 group: {group} {params} }} }}')
    weights = {"conv": [w, b] if bias else [w]}
    net, out = one_layer_net(tmp_path, text, {"x": x}, weights, dtype)
    assert_close(out["y"], conv_reference(x, w, b if bias else None, group=group, **expect),
                 dtype)
    assert [p.data.shape for p in net.params["conv"]] == [w.shape] + ([b.shape] if bias else [])
    assert net.layer_dict["conv"].config["kernel"] == kernel


@pytest.mark.parametrize("dtype", DTYPES)
def test_convolution_3d_and_two_bottoms(tmp_path, rng, dtype):
    x1, x2 = rand(rng, 1, 2, 5, 6, 4), rand(rng, 1, 2, 5, 6, 4)
    w, b = rand(rng, 3, 2, 3, 2, 2), rand(rng, 3)
    text = ('layer { name: "conv" type: "Convolution" bottom: "a" bottom: "c" top: "y1" '
            'top: "y2" convolution_param { num_output: 3 kernel_size: 3 kernel_size: 2 '
            'kernel_size: 2 pad: 1 stride: 2 } }')
    _, out = one_layer_net(tmp_path, text, {"a": x1, "c": x2}, {"conv": [w, b]}, dtype)
    for x, name in ((x1, "y1"), (x2, "y2")):
        assert_close(out[name], conv_reference(x, w, b, (2, 2, 2), (1, 1, 1), (1, 1, 1), 1),
                     dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, kernel, group, expect", [
    ("kernel_size: 4 stride: 2 pad: 1", (4, 4), 1,
     dict(stride=(2, 2), pad=(1, 1), dilation=(1, 1))),
    ("kernel_h: 3 kernel_w: 2 stride_h: 3 stride_w: 2 dilation: 2", (3, 2), 2,
     dict(stride=(3, 2), pad=(0, 0), dilation=(2, 2))),
])
def test_deconvolution(tmp_path, rng, dtype, params, kernel, group, expect):
    x = rand(rng, 2, 4, 5, 6)
    w, b = rand(rng, 4, 6 // group, *kernel), rand(rng, 6)
    text = (f'layer {{ name: "up" type: "Deconvolution" bottom: "x" top: "y" '
            f'convolution_param {{ num_output: 6 group: {group} {params} }} }}')
    _, out = one_layer_net(tmp_path, text, {"x": x}, {"up": [w, b]}, dtype)
    assert_close(out["y"], deconv_reference(x, w, b, group=group, **expect), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, kernel, stride, pad, method", [
    ("pool: MAX kernel_size: 3 stride: 2", (3, 3), (2, 2), (0, 0), "MAX"),
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1", (3, 3), (2, 2), (1, 1), "AVE"),
    ("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1", (3, 2),
     (2, 3), (1, 1), "MAX"),
    ("pool: AVE kernel_h: 2 kernel_w: 4 stride: 3", (2, 4), (3, 3), (0, 0), "AVE"),
])
def test_pooling(tmp_path, rng, dtype, params, kernel, stride, pad, method):
    x = rand(rng, 2, 3, 10, 11)
    text = (f'layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y" '
            f'pooling_param {{ {params} }} }}')
    _, out = one_layer_net(tmp_path, text, {"x": x}, None, dtype)
    assert_close(out["y"], pool_reference(x, kernel, stride, pad, method), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(tmp_path, rng, dtype, method):
    x = rand(rng, 2, 3, 5, 7)
    text = (f'layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y" '
            f'pooling_param {{ pool: {method} global_pooling: true }} }}')
    _, out = one_layer_net(tmp_path, text, {"x": x}, None, dtype)
    x64 = x.astype(np.float64)
    expected = x64.max(axis=(2, 3)) if method == "MAX" else x64.mean(axis=(2, 3))
    assert_close(out["y"], expected[:, :, None, None], dtype)


# ---------------------------------------------------------------------------------------------
# InnerProduct


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis, transpose, bias", [(1, False, True), (2, True, True),
                                                   (-1, False, False)])
def test_inner_product(tmp_path, rng, dtype, axis, transpose, bias):
    x = rand(rng, 2, 3, 4, 5)
    inputs = int(np.prod(x.shape[axis % 4:]))
    w = rand(rng, inputs, 7) if transpose else rand(rng, 7, inputs)
    b = rand(rng, 7)
    text = (f'layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param '
            f'{{ num_output: 7 axis: {axis} transpose: {str(transpose).lower()} '
            f'bias_term: {str(bias).lower()} }} }}')
    _, out = one_layer_net(tmp_path, text, {"x": x}, {"ip": [w, b] if bias else [w]}, dtype)
    lead = x.shape[:axis % 4]
    matrix = x.astype(np.float64).reshape(int(np.prod(lead)), inputs)
    expected = matrix @ (w.astype(np.float64) if transpose else w.astype(np.float64).T)
    if bias:
        expected = expected + b
    assert_close(out["y"], expected.reshape(lead + (7,)), dtype)


# ---------------------------------------------------------------------------------------------
# Element-wise layers


def _neuron(tmp_path, dtype, text, x, weights=None):
    layer = f'layer {{ name: "f" bottom: "x" top: "y" {text} }}'
    return one_layer_net(tmp_path, layer, {"x": x}, weights, dtype)[1]["y"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("text, reference, positive", [
    ('type: "ReLU"', lambda x: np.maximum(x, 0), False),
    ('type: "ReLU" relu_param { negative_slope: 0.125 }', lambda x: np.where(x > 0, x, x / 8),
     False),
    ('type: "ELU"', lambda x: np.where(x > 0, x, np.exp(x) - 1), False),
    ('type: "ELU" elu_param { alpha: 0.5 }', lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)),
     False),
    ('type: "Sigmoid"', lambda x: 1 / (1 + np.exp(-x)), False),
    ('type: "TanH"', np.tanh, False),
    ('type: "AbsVal"', np.abs, False),
    ('type: "BNLL"', lambda x: np.log(1 + np.exp(x)), False),
    ('type: "Power" power_param { power: 2.5 scale: 0.5 shift: 1.5 }',
     lambda x: (1.5 + 0.5 * x) ** 2.5, True),
    ('type: "Power" power_param { power: 0 scale: 3 }', lambda x: np.ones_like(x), False),
    ('type: "Exp"', np.exp, False),
    ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.25 }', lambda x: 2 ** (0.25 + 0.5 * x),
     False),
    ('type: "Log"', np.log, True),
    ('type: "Log" log_param { base: 10 scale: 2 shift: 0.5 }',
     lambda x: np.log10(0.5 + 2 * x), True),
    ('type: "Threshold" threshold_param { threshold: 0.25 }',
     lambda x: (x > 0.25).astype(np.float64), False),
    ('type: "Dropout" dropout_param { dropout_ratio: 0.7 }', lambda x: x, False),
])
def test_neuron_layers(tmp_path, rng, dtype, text, reference, positive):
    x = rand(rng, 2, 3, 4, 5, low=0.05 if positive else -3, high=3)
    assert_close(_neuron(tmp_path, dtype, text, x), reference(x.astype(np.float64)), dtype,
                 factor=4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shared", [False, True])
def test_prelu(tmp_path, rng, dtype, shared):
    x = rand(rng, 2, 3, 4, 5)
    slopes = rand(rng) if shared else rand(rng, 3)
    text = f'type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} }}'
    y = _neuron(tmp_path, dtype, text, x, {"f": [slopes]})
    slope = np.asarray(slopes, np.float64).reshape((1, -1, 1, 1) if not shared else ())
    assert_close(y, np.where(x > 0, x, slope * x), dtype)


# ---------------------------------------------------------------------------------------------
# Normalisation


@pytest.mark.parametrize("dtype", DTYPES)
# Parameters exact in float32: Caffe's float fields hold them, Net<double> widens them exactly.
@pytest.mark.parametrize("size, alpha, beta, k", [(5, 2**-7, 0.75, 1.0), (3, 0.5, 0.625, 2.0),
                                                   (1, 0.375, 0.875, 0.5)])
def test_lrn_across_channels(tmp_path, rng, dtype, size, alpha, beta, k):
    x = rand(rng, 2, 7, 4, 3, low=-2, high=2)
    text = (f'type: "LRN" lrn_param {{ local_size: {size} alpha: {alpha} beta: {beta} k: {k} }}')
    y = _neuron(tmp_path, dtype, text, x)
    x64 = x.astype(np.float64)
    pre = (size - 1) // 2
    scale = np.empty_like(x64)
    for c in range(7):
        window = x64[:, max(c - pre, 0):min(c - pre + size, 7)]
        scale[:, c] = k + alpha / size * (window ** 2).sum(axis=1)
    assert_close(y, x64 * scale ** -beta, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [3, 5])
def test_lrn_within_channel(tmp_path, rng, dtype, size):
    x = rand(rng, 2, 3, 6, 7, low=-2, high=2)
    text = (f'type: "LRN" lrn_param {{ local_size: {size} alpha: 0.375 beta: 0.625 k: 5 '
            'norm_region: WITHIN_CHANNEL }')
    y = _neuron(tmp_path, dtype, text, x)
    pad = (size - 1) // 2
    average = pool_reference(x.astype(np.float64) ** 2, (size, size), (1, 1), (pad, pad), "AVE")
    # k is ignored by Caffe in WITHIN_CHANNEL mode.
    assert_close(y, x * (1 + 0.375 * average) ** -0.625, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax(tmp_path, rng, dtype, axis):
    x = rand(rng, 2, 3, 4, 5, low=-5, high=5)
    y = _neuron(tmp_path, dtype, f'type: "Softmax" softmax_param {{ axis: {axis} }}', x)
    e = np.exp(x.astype(np.float64))
    assert_close(y, e / e.sum(axis=axis, keepdims=True), dtype, factor=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("factor", [0.5, 0.0])
def test_batch_norm_global_stats(tmp_path, rng, dtype, factor):
    x = rand(rng, 2, 3, 4, 5, low=-2, high=2)
    mean, var = rand(rng, 3), rand(rng, 3, low=0.5, high=2)
    text = 'type: "BatchNorm" batch_norm_param { eps: 0.0009765625 }'
    y = _neuron(tmp_path, dtype, text, x, {"f": [mean, var, np.array([factor], np.float32)]})
    scale = 0.0 if factor == 0 else 1 / factor
    m = (mean.astype(np.float64) * scale).reshape(1, 3, 1, 1)
    v = (var.astype(np.float64) * scale).reshape(1, 3, 1, 1)
    assert_close(y, (x - m) / np.sqrt(v + 2**-10), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_batch_stats_updates_averages(tmp_path, rng, dtype):
    x = rand(rng, 2, 3, 4, 5, low=-2, high=2)
    stored = [rand(rng, 3), rand(rng, 3, low=0.5, high=2), np.array([2.0], np.float32)]
    text = 'type: "BatchNorm" batch_norm_param { use_global_stats: false }'
    net, out = one_layer_net(tmp_path, f'layer {{ name: "f" bottom: "x" top: "y" {text} }}',
                             {"x": x}, {"f": stored}, dtype)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 2, 3))
    var = ((x64 - mean.reshape(1, 3, 1, 1)) ** 2).mean(axis=(0, 2, 3))
    eps = float(np.float32(1e-5))  # the default, held as a float
    assert_close(out["y"], (x64 - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1)
                                                                    + eps), dtype)
    params = net.params["f"]
    fraction = float(np.float32(0.999))  # moving_average_fraction's default, a float
    assert_close(params[2].data, np.array([2.0 * fraction + 1]), dtype)
    assert_close(params[0].data, mean + fraction * stored[0].astype(np.float64), dtype)
    assert_close(params[1].data, 40 / 39 * var + fraction * stored[1].astype(np.float64), dtype)


# ---------------------------------------------------------------------------------------------
# Scale and Bias


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, operand_shape, axis", [
    ("", (3,), 1),
    ("bias_term: true", (3,), 1),
    ("axis: 2 num_axes: 2 bias_term: true", (4, 5), 2),
    ("axis: 0 num_axes: -1", (2, 3, 4, 5), 0),
    ("num_axes: 0 bias_term: true", (), 0),
    ("axis: -2 num_axes: 1", (4,), 2),
])
def test_scale_with_parameter(tmp_path, rng, dtype, params, operand_shape, axis):
    x = rand(rng, 2, 3, 4, 5)
    scale, bias = rand(rng, *operand_shape), rand(rng, *operand_shape)
    with_bias = "bias_term" in params
    y = _neuron(tmp_path, dtype, f'type: "Scale" scale_param {{ {params} }}', x,
                {"f": [scale, bias] if with_bias else [scale]})
    shape = operand_shape + (1,) * (4 - axis - len(operand_shape))
    expected = x * scale.astype(np.float64).reshape(shape)
    if with_bias:
        expected = expected + bias.astype(np.float64).reshape(shape)
    assert_close(y, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer_type, params", [("Scale", "scale_param { axis: 1 }"),
                                                ("Scale", "scale_param { bias_term: true }"),
                                                ("Bias", "bias_param { axis: 1 }")])
def test_scale_and_bias_from_second_bottom(tmp_path, rng, dtype, layer_type, params):
    x, operand = rand(rng, 2, 3, 4, 5), rand(rng, 3, 4)
    bias = rand(rng, 3, 4)
    with_bias = "bias_term" in params
    text = (f'layer {{ name: "f" type: "{layer_type}" bottom: "x" bottom: "s" top: "y" '
            f'{params} }}')
    net, out = one_layer_net(tmp_path, text, {"x": x, "s": operand},
                             {"f": [bias]} if with_bias else None, dtype)
    s64 = operand.astype(np.float64)[None, :, :, None]
    expected = x * s64 if layer_type == "Scale" else x + s64
    if with_bias:
        expected = expected + bias.astype(np.float64)[None, :, :, None]
        assert [blob.shape for blob in net.params["f"]] == [(3, 4)]
    assert_close(out["y"], expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_with_parameter(tmp_path, rng, dtype):
    x, bias = rand(rng, 2, 3, 4, 5), rand(rng, 3, 4)
    y = _neuron(tmp_path, dtype, 'type: "Bias" bias_param { num_axes: 2 }', x, {"f": [bias]})
    assert_close(y, x + bias.astype(np.float64)[None, :, :, None], dtype)


# ---------------------------------------------------------------------------------------------
# Blob plumbing


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, axis", [("", 1), ("concat_param { axis: 2 }", 2),
                                          ("concat_param { concat_dim: 0 }", 0),
                                          ("concat_param { axis: -1 }", 3)])
def test_concat(tmp_path, rng, dtype, params, axis):
    shapes = [[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 5]]
    for index, shape in enumerate(shapes):
        shape[axis] += index
    a, b, c = (rand(rng, *shape) for shape in shapes)
    text = (f'layer {{ name: "cat" type: "Concat" bottom: "a" bottom: "b" bottom: "c" '
            f'top: "y" {params} }}')
    _, out = one_layer_net(tmp_path, text, {"a": a, "b": b, "c": c}, None, dtype)
    assert_close(out["y"], np.concatenate([a, b, c], axis=axis).astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_slice(tmp_path, rng, dtype):
    x = rand(rng, 2, 6, 4, 6)
    text = ('layer { name: "s" type: "Slice" bottom: "x" top: "a" top: "b" top: "c" '
            'slice_param { axis: 1 slice_point: 1 slice_point: 4 } }\n'
            'layer { name: "e" type: "Slice" bottom: "x" top: "d" top: "f" '
            'slice_param { slice_dim: 3 } }\n'
            'layer { name: "g" type: "Slice" bottom: "x" top: "h" top: "i" '
            'slice_param { axis: -2 } }')
    _, out = one_layer_net(tmp_path, text, {"x": x}, None, dtype)
    x64 = x.astype(np.float64)
    expected = {"a": x64[:, :1], "b": x64[:, 1:4], "c": x64[:, 4:], "d": x64[..., :3],
                "f": x64[..., 3:], "h": x64[:, :, :2], "i": x64[:, :, 2:]}
    for name, part in expected.items():
        assert_close(out[name], part, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("operation, coeff, reference", [
    ("SUM", "", lambda a, b, c: a + b + c),
    ("SUM", "coeff: 0.5 coeff: -2 coeff: 3", lambda a, b, c: 0.5 * a - 2 * b + 3 * c),
    ("PROD", "", lambda a, b, c: a * b * c),
    ("MAX", "", lambda a, b, c: np.maximum(np.maximum(a, b), c)),
])
def test_eltwise(tmp_path, rng, dtype, operation, coeff, reference):
    a, b, c = (rand(rng, 2, 3, 4, 5) for _ in range(3))
    text = (f'layer {{ name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
            f'eltwise_param {{ operation: {operation} {coeff} }} }}')
    _, out = one_layer_net(tmp_path, text, {"a": a, "b": b, "c": c}, None, dtype)
    assert_close(out["y"], reference(*(v.astype(np.float64) for v in (a, b, c))), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, shape", [("", (2, 60)),
                                           ("flatten_param { axis: 2 }", (2, 3, 20)),
                                           ("flatten_param { axis: 1 end_axis: 2 }", (2, 12, 5)),
                                           ("flatten_param { axis: 0 end_axis: -2 }", (24, 5))])
def test_flatten(tmp_path, rng, dtype, params, shape):
    x = rand(rng, 2, 3, 4, 5)
    y = _neuron(tmp_path, dtype, f'type: "Flatten" {params}', x)
    assert_close(y, x.astype(np.float64).reshape(shape), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, shape", [
    ("shape { dim: 0 dim: -1 }", (2, 60)),
    ("shape { dim: 0 dim: 2 dim: -1 dim: 5 }", (2, 2, 6, 5)),
    ("shape { dim: 6 dim: 2 } axis: 1 num_axes: 2", (2, 6, 2, 5)),
    ("shape { dim: 1 } axis: 1 num_axes: 0", (2, 1, 3, 4, 5)),
    # A negative axis counts from after the last axis: -3 keeps the first two.
    ("shape { dim: -1 } axis: -3", (2, 3, 20)),
    # 0 copies the bottom's axis at the same position: axis 1 (size 2), not a replaced one.
    ("shape { dim: 3 dim: 0 } axis: 0 num_axes: 1", (3, 2, 2, 4, 5)),
])
def test_reshape(tmp_path, rng, dtype, params, shape):
    x = rand(rng, 2, 3, 4, 5) if "dim: 3 dim: 0" not in params else rand(rng, 6, 2, 4, 5)
    y = _neuron(tmp_path, dtype, f'type: "Reshape" reshape_param {{ {params} }}', x)
    assert_close(y, x.astype(np.float64).reshape(shape), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params, index", [
    ("", (slice(None), slice(None), slice(0, 3), slice(0, 2))),
    ("crop_param { axis: 2 offset: 1 }", (slice(None), slice(None), slice(1, 4), slice(1, 3))),
    ("crop_param { axis: 1 offset: 1 offset: 2 offset: 3 }",
     (slice(None), slice(1, 3), slice(2, 5), slice(3, 5))),
    ("crop_param { axis: -1 offset: 4 }", (slice(None), slice(None), slice(None), slice(4, 6))),
])
def test_crop(tmp_path, rng, dtype, params, index):
    x = rand(rng, 2, 4, 6, 7)
    reference_shape = [2, 4, 6, 7]
    for axis, part in enumerate(index):
        if part.start is not None:
            reference_shape[axis] = part.stop - part.start
    if params == "":
        reference_shape[2:] = [3, 2]
    ref = rand(rng, *reference_shape)
    text = f'layer {{ name: "crop" type: "Crop" bottom: "x" bottom: "r" top: "y" {params} }}'
    _, out = one_layer_net(tmp_path, text, {"x": x, "r": ref}, None, dtype)
    assert_close(out["y"], x[index].astype(np.float64), dtype)


def _argmax_rows(rows, top_k):
    """Indices of the top_k largest values, ties to the larger index (Caffe sorts (value,
    index) pairs in descending order)."""
    return [sorted(range(len(row)), key=lambda j: (row[j], j), reverse=True)[:top_k]
            for row in rows]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("top_k, out_max_val", [(1, False), (3, False), (2, True)])
def test_argmax_flattened(tmp_path, dtype, top_k, out_max_val):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 5, (3, 2, 2, 3)).astype(np.float32)  # many ties
    text = (f'type: "ArgMax" argmax_param {{ top_k: {top_k} '
            f'out_max_val: {str(out_max_val).lower()} }}')
    y = _neuron(tmp_path, dtype, text, x)
    rows = x.reshape(3, -1)
    indices = np.array(_argmax_rows(rows, top_k), np.float64)
    if out_max_val:
        values = np.take_along_axis(rows, indices.astype(int), axis=1)
        expected = np.stack([indices, values], axis=1)
    else:
        expected = indices[:, None, :]
    assert_close(y, expected[..., None], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_max_val", [False, True])
def test_argmax_axis(tmp_path, dtype, out_max_val):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 4, (2, 5, 3, 2)).astype(np.float32)
    text = (f'type: "ArgMax" argmax_param {{ axis: 1 top_k: 2 '
            f'out_max_val: {str(out_max_val).lower()} }}')
    y = _neuron(tmp_path, dtype, text, x)
    moved = np.moveaxis(x, 1, -1).reshape(-1, 5)
    indices = np.array(_argmax_rows(moved, 2), np.float64)
    result = np.take_along_axis(moved, indices.astype(int), axis=1) if out_max_val else indices
    assert_close(y, np.moveaxis(result.reshape(2, 3, 2, 2), -1, 1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_convolution_axis_2(tmp_path, rng, dtype):
    # axis: 2 makes the axes before the channels independent images (Caffe's conv axis).
    x = rand(rng, 2, 3, 4, 5, 6)
    w, b = rand(rng, 2, 4, 3, 3), rand(rng, 2)
    text = ('layer { name: "conv" type: "Convolution" bottom: "x" top: "y" '
            'convolution_param { num_output: 2 kernel_size: 3 pad: 1 axis: 2 } }')
    _, out = one_layer_net(tmp_path, text, {"x": x}, {"conv": [w, b]}, dtype)
    expected = conv_reference(x.reshape(6, 4, 5, 6), w, b, (1, 1), (1, 1), (1, 1), 1)
    assert_close(out["y"], expected.reshape(2, 3, 2, 5, 6), dtype)
