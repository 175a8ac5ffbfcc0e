"""``after=``: the oracles check a layer's output the port gave after its activation (a Keras
``Conv2D(activation='relu')``, Caffe's blob after an in-place ReLU). Each mistaken output is
made here by the plain float64 references of tests/reference and then put through the
activation; the mistake must be named with ``after`` and only then, a right output must pass
and a slightly wrong one fail."""
import numpy as np
import pytest

import fastconv
from fastconv.testing import assert_conv_close, check_conv, check_deconv, check_pool
from reference.conv import caffe_conv
from reference.deconv import caffe_deconv2d
from reference.pool import caffe_pool2d

RNG = np.random.default_rng(20261203)
X, W, B = (RNG.standard_normal(shape).astype(np.float32)
           for shape in ((2, 4, 9, 8), (6, 4, 3, 3), (6,)))


def relu(y):
    return np.maximum(y, 0)


def leaky(y):
    return np.maximum(y, 0) + 0.1 * np.minimum(y, 0)


def names(result):
    assert not result, "the mistaken output unexpectedly passed"
    return [d.name for d in result.diagnoses]


def test_a_flipped_kernel_under_a_relu_is_named_only_through_after():
    actual = relu(caffe_conv(X, W[:, :, ::-1, ::-1], B, pad=(1, 1))).astype(np.float32)
    assert "kernel_flipped" not in names(check_conv(actual, X, W, B, pad=1))
    result = check_conv(actual, X, W, B, pad=1, after=relu)
    assert names(result)[0] == "kernel_flipped"
    assert "diagnosis: kernel spatially flipped" in str(result)


def test_a_reshaped_kernel_under_a_leaky_relu_in_keras_layout_is_named():
    """after= works in the caller's layout: NHWC for layout='keras'."""
    x_nhwc = fastconv.nchw_to_nhwc(X)
    kernel = fastconv.caffe_to_keras_kernel(W)
    reshaped = W.reshape(3, 3, 4, 6)       # loaded with reshape instead of transpose
    y = caffe_conv(X, fastconv.keras_to_caffe_kernel(reshaped), B, pad=(1, 1))
    actual = fastconv.nchw_to_nhwc(leaky(y)).astype(np.float32)
    result = check_conv(actual, x_nhwc, kernel, B, layout="keras", padding="same", after=leaky)
    assert names(result)[0] == "kernel_reshaped_caffe_to_keras"


def test_right_output_after_relu_passes_and_a_1e_3_error_fails():
    right = relu(fastconv.conv2d_caffe(X, W, B, pad=1))
    assert not check_conv(right, X, W, B, pad=1)        # without after: the negatives differ
    assert_conv_close(right, X, W, B, pad=1, after=relu)
    wrong = right.copy()
    index = np.unravel_index(np.argmax(wrong), wrong.shape)
    wrong[index] *= np.float32(1.001)
    result = check_conv(wrong, X, W, B, pad=1, after=relu)
    assert not result and result.comparison.mismatches == 1 and names(result) == []


def test_the_tolerance_follows_a_scaling_after():
    """A layer after the convolution that multiplies by 1000 (an in-place Scale): a float32
    port's rounding scales with it, and the tolerance must too (and no further)."""
    def scale(y):
        return 1000.0 * y
    right = np.float32(1000) * fastconv.conv2d_caffe(X, W, B, pad=1)
    assert check_conv(right, X, W, B, pad=1, after=scale)
    assert not check_conv(right * np.float32(1 + 1e-4), X, W, B, pad=1, after=scale)


def test_an_uncropped_deconvolution_under_a_relu_is_named():
    x, w, b = X[:, :, :5, :6], RNG.standard_normal((4, 3, 4, 3)), RNG.standard_normal(3)
    actual = relu(caffe_deconv2d(x, w, b, stride=(2, 2)))       # pad=1 never cropped
    result = check_deconv(actual, x, w, b, stride=2, pad=1, after=relu)
    assert names(result)[0] == "deconv_pad_not_cropped"


def test_floor_pooling_under_a_per_channel_scale_is_named():
    gamma = np.array([0.5, -2.0, 3.0, 1.5])

    def scale(y):
        return y * gamma[None, :, None, None]
    ceil = caffe_pool2d(X, (3, 3), (2, 2))                       # 4 x 4 windows on 9 x 8
    actual = scale(ceil[:, :, :4, :3])                          # floor: 4 x 3
    assert ceil.shape[2:] == (4, 4)
    result = check_pool(actual, X, 3, stride=2, after=scale)
    assert names(result)[0] == "floor_instead_of_ceil"


def test_after_must_be_a_function():
    with pytest.raises(TypeError, match="after=0 must be a function"):
        check_conv(relu(fastconv.conv2d_caffe(X, W, B)), X, W, B, after=0)
