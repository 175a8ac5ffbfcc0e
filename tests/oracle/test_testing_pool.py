"""fastconv.testing's Pooling oracle: the reference against the plain Caffe reference in
tests/reference/pool.py, correct outputs pass, and each porting mistake, made for real
(by PyTorch or Keras where installed, else by numpy code written here), is named."""
import numpy as np
import pytest

import fastconv
from fastconv.testing import assert_pool_close, check_pool, pool_reference
from fastconv.testing.pool import PoolProblem, PoolRules, plain_pool
from reference.pool import FLT_MAX, caffe_pool2d

RNG = np.random.default_rng(11)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


CASES = [  # kernel, stride, pad, size
    ((3, 3), (2, 2), (1, 1), (8, 8)),
    ((2, 2), (2, 2), (1, 1), (5, 5)),      # the clip drops a window
    ((3, 2), (2, 3), (1, 0), (7, 9)),      # pad on one axis clips the other
    ((3, 3), (1, 1), (0, 0), (6, 5)),
    ((4, 3), (3, 2), (2, 1), (9, 7)),
]


@pytest.mark.parametrize("method", ["max", "ave"])
@pytest.mark.parametrize("kernel, stride, pad, size", CASES)
def test_reference_and_plain_variant_match_a_plain_caffe_pooling(method, kernel, stride, pad, size):
    x = normal(2, 3, *size)
    expected = caffe_pool2d(x, kernel, stride, pad, method)
    got = pool_reference(x, kernel, stride=stride, pad=pad, method=method)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)
    # The numpy code that computes the mistaken variants, run with Caffe's own rules.
    problem = PoolProblem(x.astype(np.float64), kernel, stride, pad, method, False, False,
                          PoolRules(), fastconv_reference=False)
    plain, defined = plain_pool(problem)
    assert defined is None
    np.testing.assert_allclose(plain, expected, rtol=1e-13, atol=0)
    assert_pool_close(fastconv.pool2d_caffe(x, kernel, stride=stride, pad=pad, method=method),
                      x, kernel, stride=stride, pad=pad, method=method)


def test_keras_layout_and_global_pooling_pass():
    x = normal(2, 7, 6, 3)
    y = fastconv.nchw_to_nhwc(fastconv.pool2d_caffe(fastconv.nhwc_to_nchw(x), 3, stride=2, pad=1))
    assert_pool_close(y, x, 3, stride=2, pad=1, layout="keras")
    assert check_pool(np.asarray(x.mean(axis=(1, 2), keepdims=True)), x, None,
                      global_pooling=True, method="ave", layout="keras")


def test_max_pooling_drops_nan_as_caffe_does():
    x = np.full((1, 1, 4, 4), np.nan, np.float32)
    x[0, 0, 0, 0], x[0, 0, 3, 3], x[0, 0, 2, 2] = 1, -2, -np.inf
    expected = caffe_pool2d(x, (2, 2), (2, 2))
    assert expected[0, 0, 0, 1] == -FLT_MAX            # an all-NaN window
    assert expected[0, 0, 1, 1] == -2                   # NaN and -inf never win
    y = fastconv.pool2d_caffe(x, 2, stride=2)
    np.testing.assert_array_equal(y, expected)
    assert_pool_close(y, x, 2, stride=2)
    numpy_max = x.reshape(1, 1, 2, 2, 2, 2).max(axis=(3, 5))   # propagates NaN
    result = check_pool(numpy_max, x, 2, stride=2)
    assert [d.name for d in result.diagnoses] == ["max_nan_propagated"]


def names(result):
    assert not result, "the mistaken output unexpectedly passed"
    return [d.name for d in result.diagnoses]


def test_floor_instead_of_ceil_pytorch_default():
    torch = pytest.importorskip("torch")
    x = normal(1, 2, 8, 8)
    actual = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, stride=2).numpy()
    assert actual.shape == (1, 2, 3, 3)             # Caffe: 4x4
    result = check_pool(actual, x, 3, stride=2)
    assert names(result) == ["floor_instead_of_ceil"]
    assert "ceil_mode=True" in str(result)


def test_ave_divisor_without_padding_pytorch():
    torch = pytest.importorskip("torch")
    x = normal(1, 2, 7, 7)
    actual = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 3, stride=2, padding=1,
                                            ceil_mode=True, count_include_pad=False).numpy()
    # (Keras 'same' makes the same windows here, and counts the same way: both reproduce it.)
    assert "ave_padding_not_counted" in names(check_pool(actual, x, 3, stride=2, pad=1,
                                                         method="ave"))
    # PyTorch's count_include_pad=True with ceil_mode is Caffe's rule: it passes.
    right = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 3, stride=2, padding=1,
                                           ceil_mode=True).numpy()
    assert_pool_close(right, x, 3, stride=2, pad=1, method="ave")


def test_ave_divisor_full_kernel():
    """A port that zero-pads far enough for every window and divides by kernel_h*kernel_w."""
    x = normal(1, 2, 6, 6)                          # k3/s2/p0: the last window overruns by 1
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (0, 1), (0, 1)))
    actual = np.stack([[padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum(axis=(2, 3)) / 9
                        for j in range(3)] for i in range(3)]).transpose(2, 3, 0, 1)
    assert names(check_pool(actual.astype(np.float32), x, 3, stride=2, method="ave")) == [
        "ave_divisor_full_kernel"]


def test_last_window_clip_missing():
    x = normal(1, 2, 5, 5)
    actual = caffe_pool2d(x, (2, 2), (2, 2), (1, 1), "ave", clip=False)
    assert actual.shape == (1, 2, 4, 4)             # Caffe: 3x3
    assert names(check_pool(actual, x, 2, stride=2, pad=1, method="ave")) == [
        "last_window_not_clipped"]
    # MAX: the dropped window has no input cell; whatever the port puts there is not judged.
    actual = caffe_pool2d(x, (2, 2), (2, 2), (1, 1), "max", clip=False)
    assert names(check_pool(actual, x, 2, stride=2, pad=1)) == ["last_window_not_clipped"]


def test_output_left_in_nhwc():
    x = normal(2, 3, 8, 8)
    y = fastconv.pool2d_caffe(x, 3, stride=2, pad=1)
    assert names(check_pool(y.transpose(0, 2, 3, 1), x, 3, stride=2, pad=1)) == ["output_in_nhwc"]


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip("keras")
    return keras


def run_keras(layers, x_nhwc):
    y = x_nhwc
    for layer in layers:
        y = layer(y)
    return np.asarray(y)


def test_keras_same_pooling_is_named(keras):
    x = normal(1, 8, 8, 3)
    actual = run_keras([keras.layers.MaxPooling2D(2, strides=2, padding="same")], x)
    result = check_pool(actual, x, 2, stride=2, pad=1, layout="keras")
    assert names(result) == ["keras_same_pooling"]
    assert "shape mismatch" in str(result)


def test_keras_default_strides_are_named(keras):
    x = normal(1, 9, 9, 2)
    actual = run_keras([keras.layers.MaxPooling2D(3)], x)      # strides=None: the pool size
    assert names(check_pool(actual, x, 3, layout="keras")) == ["stride_defaulted_to_kernel"]


def test_keras_zero_padding_then_valid_is_a_named_pair(keras):
    x = -np.abs(normal(1, 8, 8, 2)) - 0.1      # negative: a padding zero wins at the border
    actual = run_keras([keras.layers.ZeroPadding2D(1),
                        keras.layers.MaxPooling2D(3, strides=2, padding="valid")], x)
    assert actual.shape == (1, 4, 4, 2)             # Caffe: 5x5
    assert names(check_pool(actual, x, 3, stride=2, pad=1, layout="keras")) == [
        "floor_instead_of_ceil+max_padding_as_zero"]


def test_bad_calls_are_refused_clearly():
    x = normal(1, 2, 5, 5)
    with pytest.raises(ValueError, match="layout"):
        check_pool(x, x, 2, layout="nchw")
    with pytest.raises(ValueError, match="pad"):
        check_pool(x, x, 2, pad=2)                  # Caffe: pad < kernel
    with pytest.raises(ValueError, match="method"):
        check_pool(x, x, 2, method="median")
