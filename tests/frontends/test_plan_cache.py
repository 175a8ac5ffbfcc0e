"""Repeated calls take a cached plan (conv2d_caffe, and conv2d_keras on NHWC data): the plan
holds the checked geometry only, never data, and never lets through a call the checks refuse."""
import numpy as np
import pytest

import fastconv

from reference.conv import caffe_conv
from reference.tolerance import assert_scaled_close


def reference_nhwc(x_nhwc, kernel, bias, stride, groups):
    """The float64 reference of the same convolution ('valid', no dilation), NHWC out."""
    y = caffe_conv(x_nhwc.transpose(0, 3, 1, 2), kernel.transpose(3, 2, 0, 1), bias,
                   (stride, stride), (0, 0), (1, 1), groups)
    return y.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups", [1, 2])
def test_repeated_keras_calls_compute_each_calls_data(dtype, groups):
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((3, 3, 4 // groups, 6)).astype(dtype)
    for call in range(4):   # the first call stores the plan, the others take it
        x = rng.standard_normal((2, 9, 8, 4)).astype(dtype)
        bias = rng.standard_normal(6).astype(dtype) if call % 2 else None
        y = fastconv.conv2d_keras(x, kernel, bias, strides=2, dilation_rate=1, groups=groups)
        assert y.shape == (2, 4, 3, 6) and y.dtype == dtype
        assert_scaled_close(y, reference_nhwc(x, kernel, bias, 2, groups),
                            int(np.prod(kernel.shape[:3])), dtype)


def test_a_refused_call_stays_refused_after_valid_ones():
    x = np.ones((1, 6, 6, 2), np.float32)
    kernel = np.ones((3, 3, 2, 5), np.float32)
    fastconv.conv2d_keras(x, kernel, padding="valid")
    fastconv.conv2d_keras(x, kernel, padding="valid")
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv2d_keras(x, kernel, padding="full")
    with pytest.raises(ValueError, match="bias"):
        fastconv.conv2d_keras(x, kernel, np.ones(4, np.float32), padding="valid")


def test_caffe_and_keras_plans_for_the_same_shapes_do_not_mix():
    # (2, 4, 4, 4) is an NCHW image to conv2d_caffe and an NHWC one to conv2d_keras: the same
    # x, and kernels of one shape family, must get each front end's own geometry.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    w = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
    kernel = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    for _ in range(2):
        y_caffe = fastconv.conv2d_caffe(x, w)
        y_keras = fastconv.conv2d_keras(x, kernel)
        np.testing.assert_allclose(y_caffe, np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y_keras, np.einsum("nhwc,co->nhwo", x, kernel[0, 0]),
                                   rtol=1e-5, atol=1e-5)
