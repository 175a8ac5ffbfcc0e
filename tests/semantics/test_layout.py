"""Layout conversions are transposes: round trips are exact and a reshape is not one."""
import numpy as np
import pytest

import fastconv
from reference.conv import caffe_conv


def test_data_round_trip_and_axes():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = fastconv.nchw_to_nhwc(x)
    assert nhwc.shape == (2, 4, 5, 3) and nhwc.flags.c_contiguous
    assert nhwc[1, 2, 3, 0] == x[1, 0, 2, 3]
    np.testing.assert_array_equal(fastconv.nhwc_to_nchw(nhwc), x)


def test_kernel_round_trip_and_axes():
    w = np.arange(6 * 2 * 3 * 4, dtype=np.float64).reshape(6, 2, 3, 4)   # O, I, H, W
    k = fastconv.caffe_to_keras_kernel(w)
    assert k.shape == (3, 4, 2, 6) and k.flags.c_contiguous
    assert k[2, 3, 1, 5] == w[5, 1, 2, 3]
    np.testing.assert_array_equal(fastconv.keras_to_caffe_kernel(k), w)


def test_reshape_is_not_a_conversion():
    w = np.random.default_rng(0).standard_normal((96, 3, 11, 11))
    assert not np.array_equal(w.reshape(11, 11, 3, 96), fastconv.caffe_to_keras_kernel(w))


def test_flip_kernel_turns_convolution_into_cross_correlation():
    """Theano's conv2d flipped the kernel: flipped weights under cross-correlation reproduce it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 1, 6, 7))
    w = rng.standard_normal((1, 1, 3, 2))
    # True convolution written out directly: y[i, j] = sum x[i + a, j + b] * w[kh-1-a, kw-1-b].
    true_conv = np.zeros((4, 6))
    for i in range(4):
        for j in range(6):
            true_conv[i, j] = np.sum(x[0, 0, i:i + 3, j:j + 2] * w[0, 0, ::-1, ::-1])
    flipped = fastconv.flip_kernel(w, layout="caffe")
    np.testing.assert_allclose(fastconv.conv2d_caffe(x, flipped)[0, 0], true_conv, rtol=1e-12)
    np.testing.assert_allclose(caffe_conv(x, flipped)[0, 0], true_conv, rtol=1e-12)
    keras_flipped = fastconv.flip_kernel(fastconv.caffe_to_keras_kernel(w), layout="keras")
    np.testing.assert_array_equal(fastconv.keras_to_caffe_kernel(keras_flipped), flipped)


@pytest.mark.parametrize("fn", [fastconv.nchw_to_nhwc, fastconv.nhwc_to_nchw,
                                fastconv.caffe_to_keras_kernel, fastconv.keras_to_caffe_kernel])
def test_wrong_rank_is_refused(fn):
    with pytest.raises(ValueError, match="must be 4-D"):
        fn(np.zeros((2, 3, 4)))
