"""fastconv against Keras's Conv2D (TensorFlow backend): both layouts, 'valid' and 'same',
dilation, groups, and the seed's port with a reshaped kernel versus a transposed one.

Each Keras layer is built once per configuration. Both libraries are compared with the float64
reference's per-element error bound, so neither is trusted more than the other.
"""
import zlib

import numpy as np
import pytest

import fastconv
from keras_support import gpu_devices, keras_module, run_keras_conv2d
from reference.conv import caffe_conv, conv_nd
from reference.sizes import keras_out_size_and_pad_before
from reference.tolerance import error_bound, max_violation

keras = keras_module()


def keras_reference(x_nchw, w_oihw, b, strides, padding, dilation):
    """Keras Conv2D in float64 from the plain reference: explicit TF 'same' padding split."""
    sizes = [keras_out_size_and_pad_before(size, k, s, d, padding) for size, k, s, d in
             zip(x_nchw.shape[2:], w_oihw.shape[2:], strides, dilation)]
    out, before = [size for size, _ in sizes], [pad for _, pad in sizes]
    return lambda xa, wa, ba: conv_nd(xa, wa, ba, strides, before, out, dilation,
                                      x_nchw.shape[1] // w_oihw.shape[1])


# (H, W, C, filters, (kh, kw), strides, padding, dilation, groups, bias)
# Keras refuses strides > 1 together with dilation > 1, so no case combines them.
CONFIGS = [
    (12, 11, 3, 4, (3, 3), (1, 1), "valid", (1, 1), 1, True),
    (12, 11, 3, 4, (3, 2), (2, 1), "valid", (1, 1), 1, False),
    (12, 12, 3, 5, (3, 3), (1, 1), "same", (1, 1), 1, True),    # total 2: even split
    (12, 12, 3, 5, (4, 4), (1, 1), "same", (1, 1), 1, True),    # total 3: extra at bottom/right
    (13, 12, 2, 4, (3, 3), (2, 2), "same", (1, 1), 1, True),    # odd/even input, stride 2
    (224 // 8, 224 // 8, 3, 4, (7, 7), (2, 2), "same", (1, 1), 1, True),  # ResNet stem shape
    (14, 15, 4, 6, (3, 2), (1, 1), "same", (2, 3), 1, True),    # dilation, same
    (14, 15, 4, 6, (3, 3), (1, 1), "valid", (2, 2), 1, False),  # dilation, valid
    (10, 9, 6, 4, (3, 3), (1, 2), "valid", (1, 1), 2, True),    # groups
    (10, 10, 8, 8, (3, 3), (2, 2), "same", (1, 1), 4, True),    # groups, same, stride 2
]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: "H{}W{}C{}F{}k{}s{}{}d{}g{}b{}".format(*c))
def keras_case(request):
    h, w, c, filters, kernel, strides, padding, dilation, groups, with_bias = request.param
    rng = np.random.default_rng(zlib.crc32(repr(request.param).encode()))
    x_nhwc = rng.standard_normal((2, h, w, c)).astype(np.float32)
    kernel_hwio = rng.standard_normal((*kernel, c // groups, filters)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32) if with_bias else None
    y_keras = run_keras_conv2d(x_nhwc, kernel_hwio, bias, strides=strides, padding=padding,
                               dilation_rate=dilation, groups=groups)
    return dict(x=x_nhwc, kernel=kernel_hwio, bias=bias, strides=strides, padding=padding,
                dilation=dilation, groups=groups, y_keras=y_keras)


def test_conv2d_keras_matches_keras(keras_case):
    c = keras_case
    y = fastconv.conv2d_keras(c["x"], c["kernel"], c["bias"], strides=c["strides"],
                              padding=c["padding"], dilation_rate=c["dilation"], groups=c["groups"])
    assert y.shape == c["y_keras"].shape
    x_nchw = fastconv.nhwc_to_nchw(c["x"])
    w_oihw = fastconv.keras_to_caffe_kernel(c["kernel"])
    reference = keras_reference(x_nchw, w_oihw, c["bias"], c["strides"], c["padding"], c["dilation"])
    expected = fastconv.nchw_to_nhwc(reference(x_nchw, w_oihw, c["bias"]))
    bound = fastconv.nchw_to_nhwc(error_bound(x_nchw, w_oihw, c["bias"], np.float32, reference))
    assert max_violation(y, expected, bound) <= 1.0, "fastconv vs float64"
    assert max_violation(c["y_keras"], expected, bound) <= 1.0, "Keras vs float64"
    # The two float32 results agree within the sum of their bounds.
    assert max_violation(y, c["y_keras"], 2 * bound) <= 1.0


def test_channels_first_matches_keras_through_transposes(keras_case):
    """TF's CPU conv refuses NCHW, so channels_first is checked against the NHWC Keras run."""
    c = keras_case
    y = fastconv.conv2d_keras(fastconv.nhwc_to_nchw(c["x"]), c["kernel"], c["bias"],
                              strides=c["strides"], padding=c["padding"],
                              dilation_rate=c["dilation"], groups=c["groups"],
                              data_format="channels_first")
    y_nhwc = fastconv.nchw_to_nhwc(y)
    scale = np.abs(c["y_keras"]).max()
    np.testing.assert_allclose(y_nhwc, c["y_keras"], rtol=0, atol=1e-5 * scale)


def test_caffe_pad_ported_as_zero_padding_plus_valid():
    """The faithful port of Caffe's symmetric pad is ZeroPadding2D(pad) + padding='valid', even
    where 'same' gives the same shape (k=3, s=2, pad=1 on an even input) but other numbers."""
    import tensorflow as tf

    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y_caffe = fastconv.conv2d_caffe(x, w, b, stride=2, pad=1)

    padded = keras.layers.ZeroPadding2D(1)(tf.constant(fastconv.nchw_to_nhwc(x)))
    y_port = run_keras_conv2d(np.asarray(padded), fastconv.caffe_to_keras_kernel(w), b,
                              strides=2, padding="valid")
    y_same = run_keras_conv2d(fastconv.nchw_to_nhwc(x), fastconv.caffe_to_keras_kernel(w), b,
                              strides=2, padding="same")
    scale = np.abs(y_caffe).max()
    assert y_same.shape == y_port.shape == (1, 8, 8, 4)
    np.testing.assert_allclose(fastconv.nhwc_to_nchw(y_port), y_caffe, rtol=0, atol=1e-5 * scale)
    assert np.abs(fastconv.nhwc_to_nchw(y_same) - y_caffe).max() > 0.1 * scale
    # ... and fastconv's Keras mode reproduces the 'same' numbers, not Caffe's.
    y_fc_same = fastconv.conv2d_keras(fastconv.nchw_to_nhwc(x), fastconv.caffe_to_keras_kernel(w),
                                      b, strides=2, padding="same")
    np.testing.assert_allclose(y_fc_same, y_same, rtol=0, atol=1e-5 * scale)


@pytest.fixture(scope="module")
def seed_port():
    """The seed's layer: 1x500x500x3 input, 96 filters 11x11 stride 4, ReLU, Caffe weights."""
    rng = np.random.default_rng(500)
    x = rng.random((1, 3, 500, 500), dtype=np.float32)
    w = (rng.random((96, 3, 11, 11), dtype=np.float32) - 0.5)
    b = rng.random(96, dtype=np.float32) - 0.5
    y_caffe = np.maximum(fastconv.conv2d_caffe(x, w, b, stride=4), 0)
    x_nhwc = fastconv.nchw_to_nhwc(x)
    right = run_keras_conv2d(x_nhwc, fastconv.caffe_to_keras_kernel(w), b, strides=4,
                             padding="valid", activation="relu")
    wrong = run_keras_conv2d(x_nhwc, w.reshape(11, 11, 3, 96), b, strides=4,
                             padding="valid", activation="relu")
    return x, w, b, y_caffe, right, wrong


def test_seed_transposed_port_matches_caffe_semantics(seed_port):
    x, w, b, y_caffe, right, _ = seed_port
    assert right.shape == (1, 123, 123, 96)
    assert y_caffe.shape == (1, 96, 123, 123)
    reference = np.maximum(caffe_conv(x, w, b, (4, 4), (0, 0), (1, 1), 1), 0)
    bound = error_bound(x, w, b, np.float32,
                        lambda xa, wa, ba: caffe_conv(xa, wa, ba, (4, 4), (0, 0), (1, 1), 1))
    assert max_violation(y_caffe, reference, bound) <= 1.0
    assert max_violation(fastconv.nhwc_to_nchw(right), reference, bound) <= 1.0


def test_seed_reshaped_kernel_gives_different_numbers(seed_port):
    """The question's mistake: w.reshape(11, 11, 3, 96) has the right shape, wrong meaning."""
    _, _, _, y_caffe, _, wrong = seed_port
    relative = np.abs(fastconv.nhwc_to_nchw(wrong) - y_caffe).max() / np.abs(y_caffe).max()
    assert relative > 0.3


@pytest.mark.skipif(not gpu_devices(), reason="no GPU visible to TensorFlow")
@pytest.mark.parametrize("config", CONFIGS[:6], ids=lambda c: "H{}W{}C{}F{}k{}s{}{}d{}g{}b{}".format(*c))
def test_conv2d_keras_matches_keras_on_gpu(config):
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)  # full float32, not TF32
    h, w, c, filters, kernel, strides, padding, dilation, groups, with_bias = config
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, h, w, c)).astype(np.float32)
    k = rng.standard_normal((*kernel, c // groups, filters)).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32) if with_bias else None
    y_gpu = run_keras_conv2d(x, k, b, device="/GPU:0", strides=strides, padding=padding,
                             dilation_rate=dilation, groups=groups)
    y = fastconv.conv2d_keras(x, k, b, strides=strides, padding=padding, dilation_rate=dilation,
                              groups=groups)
    np.testing.assert_allclose(y, y_gpu, rtol=0, atol=1e-5 * np.abs(y).max())
