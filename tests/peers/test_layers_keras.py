"""Keras-layout layers and N-D/backward Caffe layers against Keras 3 / TensorFlow on the CPU.

Each Keras layer is built once per configuration (module-scoped), since TensorFlow is slow to
build. Everything runs in float32, TensorFlow's native type, and is compared relative to the
output's scale with sum_tolerance(K) for K-term sums (tests/reference/tolerance.py: random-sign
rounding growth of both engines, with a safety factor; TensorFlow's oneDNN kernels reorder sums
freely). MAX pooling
selects one input value, so it must agree exactly.
"""
import math
import os

import numpy as np
import pytest

import fastconv
from reference.tolerance import scale_error, sum_tolerance

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Conv2DTranspose

# (kernel, strides, padding, output_padding, dilation_rate). Keras refuses strides > 1 with
# dilation > 1, and TensorFlow's CPU kernel refuses dilation > 1 for the transpose at all, so
# dilated transposes are covered by tests/semantics/test_deconv.py (against PyTorch) instead.
TRANSPOSE_CASES = [
    ((3, 2), (2, 1), "valid", None),
    ((3, 2), (2, 3), "same", None),
    ((4, 4), (2, 2), "same", None),       # even kernel: pad_total odd, extra cell bottom/right
    ((4, 3), (2, 2), "same", (1, 0)),
    ((2, 2), (3, 2), "valid", (2, 1)),
    ((1, 5), (3, 3), "valid", None),      # stride > extent: trailing zeros rows
]


@pytest.fixture(scope="module", params=TRANSPOSE_CASES, ids=str)
def transpose_case(request):
    kernel, strides, padding, output_padding = request.param
    x = random((2, 5, 6, 3), 1)
    layer = keras.layers.Conv2DTranspose(4, kernel, strides=strides, padding=padding,
                                         output_padding=output_padding)
    layer.build(x.shape)
    layer.kernel.assign(random(layer.kernel.shape, 2))
    layer.bias.assign(random(layer.bias.shape, 3))
    y = np.asarray(layer(x))
    return request.param, x, np.asarray(layer.kernel), np.asarray(layer.bias), y


def test_conv2d_transpose_matches_keras(transpose_case):
    (kernel, strides, padding, output_padding), x, k, b, expected = transpose_case
    kwargs = dict(strides=strides, padding=padding, output_padding=output_padding)
    y = fastconv.conv2d_transpose_keras(x, k, b, **kwargs)
    assert y.shape == expected.shape
    assert scale_error(y, expected) < sum_tolerance(x.shape[3] * kernel[0] * kernel[1])
    # channels_first gives the same numbers in NCHW.
    y_first = fastconv.conv2d_transpose_keras(x.transpose(0, 3, 1, 2), k, b,
                                              data_format="channels_first", **kwargs)
    np.testing.assert_array_equal(y_first, y.transpose(0, 3, 1, 2))


# (strides, padding, output_padding) around the edge of what Keras accepts, kernel 4x4 on 4x4.
TRANSPOSE_EDGE_CASES = [
    (2, "same", 0),    # even kernel: the 6x6 output's forward convolution gives 3x3, not 4x4
    (2, "same", 1),
    (2, "valid", 0),
    (2, "valid", 2),   # output_padding must be < strides
    (2, "same", -1),
]


@pytest.mark.parametrize("strides, padding, output_padding", TRANSPOSE_EDGE_CASES, ids=str)
def test_conv2d_transpose_refuses_what_keras_refuses(strides, padding, output_padding):
    # Keras's refusals are worded differently by each backend and CPU (TensorFlow's oneDNN
    # kernel raises its own error): only whether Keras refuses is compared, never its words.
    x = random((1, 4, 4, 2), 4)
    k = random((4, 4, 3, 2), 5)
    kwargs = dict(strides=strides, padding=padding, output_padding=output_padding)
    try:
        expected = np.asarray(keras.layers.Conv2DTranspose(3, 4, use_bias=False, **kwargs)(x))
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match="output_padding="):
            fastconv.conv2d_transpose_keras(x, k, **kwargs)
    else:
        assert fastconv.conv2d_transpose_keras(x, k, **kwargs).shape == expected.shape


def test_conv2d_transpose_argument_errors_name_the_parameter():
    x = random((1, 4, 4, 2), 4)
    k = random((4, 4, 3, 2), 5)
    with pytest.raises(ValueError, match="output_padding=2 must be >= 0 and strictly less"):
        fastconv.conv2d_transpose_keras(x, k, strides=2, output_padding=2)
    with pytest.raises(ValueError, match=r"kernel.shape\[3\]=2 must equal the input channels"):
        fastconv.conv2d_transpose_keras(random((1, 4, 4, 3), 6), k)
    with pytest.raises(ValueError, match="padding="):
        fastconv.conv2d_transpose_keras(x, k, padding="causal")


# ---------------------------------------------------------------------------------------------
# MaxPooling2D / AveragePooling2D

POOL_CASES = [
    ((3, 3), (2, 2), "valid"),
    ((3, 3), (2, 2), "same"),
    ((2, 3), None, "valid"),
    ((3, 2), (1, 3), "same"),
    ((4, 4), (3, 2), "same"),
]


@pytest.fixture(scope="module", params=[(c, m) for c in POOL_CASES for m in ("max", "ave")],
                ids=str)
def pool_case(request):
    (pool_size, strides, padding), method = request.param
    x = random((2, 11, 12, 3), 7)
    layer_type = keras.layers.MaxPooling2D if method == "max" else keras.layers.AveragePooling2D
    y = np.asarray(layer_type(pool_size, strides=strides, padding=padding)(x))
    return request.param, x, y


def test_pool2d_matches_keras(pool_case):
    ((pool_size, strides, padding), method), x, expected = pool_case
    y = fastconv.pool2d_keras(x, pool_size, strides, padding, method)
    assert y.shape == expected.shape
    if method == "max":
        np.testing.assert_array_equal(y, expected)
    else:
        assert scale_error(y, expected) < sum_tolerance(pool_size[0] * pool_size[1])


def test_caffe_pooling_difference_on_keras():
    """3x3/2 on 112x112: Caffe 56, Keras MaxPooling2D 'valid' 55; 'same' reproduces Caffe's
    numbers here (see tests/semantics/test_pooling.py for the rule)."""
    x = random((1, 112, 112, 2), 8)
    valid = np.asarray(keras.layers.MaxPooling2D(3, strides=2, padding="valid")(x))
    same = np.asarray(keras.layers.MaxPooling2D(3, strides=2, padding="same")(x))
    caffe = fastconv.pool2d_caffe(x.transpose(0, 3, 1, 2), 3, stride=2)
    assert valid.shape[1:3] == (55, 55) and caffe.shape[2:] == (56, 56)
    np.testing.assert_array_equal(same.transpose(0, 3, 1, 2), caffe)


# ---------------------------------------------------------------------------------------------
# Conv1D / Conv3D against convnd_caffe (Keras kernel (*k, C, F) -> Caffe (F, C, *k))

ND_CASES = [
    (1, (13,), (3,), (2,), (1,)),
    (1, (13,), (4,), (1,), (2,)),
    (3, (6, 7, 8), (3, 2, 1), (1, 2, 3), (1, 1, 1)),
    (3, (6, 7, 8), (2, 3, 2), (1, 1, 1), (2, 1, 2)),
]


@pytest.fixture(scope="module", params=ND_CASES, ids=str)
def nd_case(request):
    rank, spatial, kernel, strides, dilation = request.param
    x = random((2, *spatial, 4), 9)
    layer_type = keras.layers.Conv1D if rank == 1 else keras.layers.Conv3D
    layer = layer_type(5, kernel, strides=strides, dilation_rate=dilation)
    layer.build(x.shape)
    layer.kernel.assign(random(layer.kernel.shape, 10))
    layer.bias.assign(random(layer.bias.shape, 11))
    return request.param, x, np.asarray(layer.kernel), np.asarray(layer.bias), np.asarray(layer(x))


def test_convnd_matches_keras(nd_case):
    (rank, _, kernel, strides, dilation), x, k, b, expected = nd_case
    to_first = (0, rank + 1, *range(1, rank + 1))
    w = k.transpose(rank + 1, rank, *range(rank))
    y = fastconv.convnd_caffe(x.transpose(to_first), w, b, stride=strides, dilation=dilation)
    y_last = y.transpose(0, *range(2, rank + 2), 1)
    assert y_last.shape == expected.shape
    assert scale_error(y_last, expected) < sum_tolerance(x.shape[-1] * math.prod(kernel))


# ---------------------------------------------------------------------------------------------
# Conv2D gradients through tf.GradientTape

GRAD_CASES = [
    ((3, 2), (2, 1), (1, 1), "valid"),
    ((3, 3), (1, 1), (2, 1), "valid"),
    ((5, 4), (1, 1), (1, 1), "same"),   # pad_total 4 and 3: odd on w, extra cell at the right
]


@pytest.fixture(scope="module", params=GRAD_CASES, ids=str)
def grad_case(request):
    kernel, strides, dilation, padding = request.param
    x = tf.constant(random((2, 9, 10, 4), 12))
    layer = keras.layers.Conv2D(6, kernel, strides=strides, dilation_rate=dilation,
                                padding=padding)
    layer.build(x.shape)
    layer.kernel.assign(random(layer.kernel.shape, 13))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    dy = tf.constant(random(y.shape, 14))
    dx, dk, db = tape.gradient(y, [x, layer.kernel, layer.bias], output_gradients=dy)
    return request.param, np.asarray(x), np.asarray(layer.kernel), np.asarray(dy), (
        np.asarray(dx), np.asarray(dk), np.asarray(db))


def test_conv2d_gradients_match_gradient_tape(grad_case):
    (kernel, strides, dilation, padding), x, k, dy, (ex, ek, eb) = grad_case
    pad = (0, 0)
    x_nchw = x.transpose(0, 3, 1, 2)
    if padding == "same":
        # Caffe pads symmetrically; Keras "same" puts the odd cell after. Pad the input
        # explicitly (a faithful port: ZeroPadding2D + "valid") and crop the gradient back.
        totals = [d * (kk - 1) for kk, d in zip(kernel, dilation)]
        before = [t // 2 for t in totals]
        x_nchw = np.pad(x_nchw, [(0, 0), (0, 0)] + [(b, t - b) for b, t in zip(before, totals)])
    dx, dw, db = fastconv.conv2d_caffe_backward(
        x_nchw, k.transpose(3, 2, 0, 1), dy.transpose(0, 3, 1, 2), stride=strides, pad=pad,
        dilation=dilation)
    if padding == "same":
        dx = dx[:, :, before[0]:before[0] + x.shape[1], before[1]:before[1] + x.shape[2]]
    positions = dy.shape[0] * dy.shape[1] * dy.shape[2]
    assert scale_error(dx.transpose(0, 2, 3, 1), ex) < sum_tolerance(6 * kernel[0] * kernel[1])
    assert scale_error(dw.transpose(2, 3, 1, 0), ek) < sum_tolerance(positions)
    assert scale_error(db, eb) < sum_tolerance(positions)
