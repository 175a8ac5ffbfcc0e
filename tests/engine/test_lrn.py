"""Caffe's LRN (fastconv.lrn_caffe): ACROSS_CHANNELS bit for bit against Caffe's CPU algorithm
written here in numpy (lrn_layer.cpp: the squares padded with zeros, the first channel's window
summed term by term, each next channel's sum as the previous one plus the entering term minus
the leaving one, every operation rounded in the dtype; then scale^-beta, float32 through
float64 as glibc's powf, times x), on random data, signed zeros, infinities and NaN, with odd
parameters (k = -0, a negative alpha, windows wider than the channels), on arrays split between
threads; and against a float64 sum written plainly. Float32 with beta 0.75 (the engine's sqrt
route for the power) on special values, exact powers and a million scales. WITHIN_CHANNEL and
the argument errors."""
import numpy as np
import pytest

import fastconv

from reference.pool import caffe_pool2d
from reference.tolerance import assert_same_bits

DTYPES = [np.float32, np.float64]
# (N, C, H, W, local_size, alpha, beta, k): AlexNet's norm1 shape at batch 2, small ones with
# a window as wide as or wider than the channels, k = -0 with a negative alpha (where adding
# the padding's alpha * 0 = -0 keeps a -0 sum, and +0 would not), one channel.
CASES = [
    (2, 96, 55, 55, 5, 1e-4, 0.75, 1.0),
    (2, 7, 4, 3, 5, 2**-7, 0.75, 1.0),
    (1, 3, 9, 31, 7, -0.3, 0.625, -0.0),
    (3, 1, 5, 5, 3, 0.5, 0.875, 2.0),
    (1, 4, 3, 3, 9, 1.0, 0.5, 0.0),
]


def caffe_lrn_across(x, size, alpha, beta, k):
    dtype = x.dtype.type
    channels, pre = x.shape[1], (size - 1) // 2
    alpha_over_size = dtype(alpha) / dtype(size)
    padded = np.zeros((x.shape[0], channels + size - 1) + x.shape[2:], x.dtype)
    padded[:, pre:pre + channels] = x * x
    scale = np.empty_like(x)
    scale[:, 0] = dtype(k)
    for c in range(size):
        scale[:, 0] += alpha_over_size * padded[:, c]
    for c in range(1, channels):
        scale[:, c] = scale[:, c - 1] + alpha_over_size * padded[:, c + size - 1]
        scale[:, c] -= alpha_over_size * padded[:, c - 1]
    power = np.power(scale.astype(np.float64), -np.float64(dtype(beta))).astype(x.dtype)
    return power * x


def with_special_values(x):
    flat = x.reshape(-1)
    flat[::7] = -0.0
    flat[::53] = np.inf
    flat[::61] = np.nan
    flat[::67] = -np.inf
    return x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # inf - inf in the window, as in Caffe
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c, h, w, size, alpha, beta, k", CASES)
def test_across_channels_bit_for_bit(dtype, n, c, h, w, size, alpha, beta, k):
    rng = np.random.default_rng(size * c)
    x = with_special_values(rng.standard_normal((n, c, h, w)).astype(dtype))
    original = x.copy()
    y = fastconv.lrn_caffe(x, local_size=size, alpha=alpha, beta=beta, k=k)
    assert_same_bits(y, caffe_lrn_across(x, size, alpha, beta, k))
    assert_same_bits(x, original)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the reference pow of 0, -3, inf
def test_three_quarter_power_special_values_on_every_engine(kernel):
    """beta = 0.75 in float32 takes the engine's sqrt route (csrc/engine.template.h); with
    local_size 1, alpha -1 and k = 0 the scale is -x², so each special scale is reached: 0 and
    -0 (power inf: 0 * inf is NaN, as pow gives Caffe), negative (NaN), -inf (pow's +0, where
    sqrt(-inf) is NaN), NaN; with alpha 1, +inf (+0) and powers of 16 (exact). The reference
is the float64 pow rounded once."""
    values = np.array([0.0, -0.0, 1.0, -3.0, np.inf, -np.inf, np.nan, 0.5, 2.0**-70, 2.0**60],
                      np.float32)
    x = values.reshape(1, 1, 2, 5)
    negative = fastconv.lrn_caffe(x, local_size=1, alpha=-1.0, k=0.0)
    assert_same_bits(negative, caffe_lrn_across(x, 1, -1.0, 0.75, 0.0))
    # A finite x under a -inf scale (an infinite neighbour, alpha < 0): x * +0.
    beside_inf = fastconv.lrn_caffe(np.array([np.inf, 2.0], np.float32).reshape(1, 2, 1, 1),
                                    local_size=3, alpha=-3.0, k=0.0)
    assert_same_bits(beside_inf[:, 1:], np.zeros((1, 1, 1, 1), np.float32))
    positive = fastconv.lrn_caffe(x, local_size=1, alpha=1.0, k=0.0)
    assert_same_bits(positive, caffe_lrn_across(x, 1, 1.0, 0.75, 0.0))
    # Scales 16^j (x = 4^j, scale = x²): x * 16^(-0.75 j) = 4^j * 8^-j = 2^-j, exactly.
    fours = (4.0 ** np.arange(-8, 9)).astype(np.float32).reshape(1, 1, 1, -1)
    exact = fastconv.lrn_caffe(fours, local_size=1, alpha=1.0, k=0.0)
    assert_same_bits(exact, (2.0 ** -np.arange(-8, 9)).astype(np.float32).reshape(1, 1, 1, -1))


def test_three_quarter_power_is_the_rounded_power(kernel):
    """A million scales spread over [1, 16) and beyond: the sqrt route's float32 power rounds as
    the exact power (float64's pow, rounded once); it may differ only within 2^-51 of a
    rounding boundary, under one element in 10^7, and then by one ulp."""
    rng = np.random.default_rng(11)
    x = rng.uniform(0.0, 4.0, (1, 1, 1000, 1000)).astype(np.float32)
    x.reshape(-1)[::3] *= np.float32(1000.0)
    y = fastconv.lrn_caffe(x, local_size=1, alpha=1.0, k=1.0)
    expected = caffe_lrn_across(x, 1, 1.0, 0.75, 1.0)
    ulps = np.abs(y.view(np.int32).astype(np.int64) - expected.view(np.int32))
    assert ulps.max() <= 1 and np.count_nonzero(ulps) <= 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_across_channels_against_a_plain_float64_sum(dtype):
    """The running window's cancellations stay within rounding: a plain sum of each window in
    float64, then the same formula."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (2, 11, 6, 5)).astype(dtype)
    size, alpha, beta, k = 5, 0.375, 0.75, 2.0
    y = fastconv.lrn_caffe(x, local_size=size, alpha=alpha, beta=beta, k=k)
    x64, pre = x.astype(np.float64), (size - 1) // 2
    scale = np.stack([k + alpha / size * (x64[:, max(c - pre, 0):c - pre + size] ** 2).sum(1)
                      for c in range(11)], axis=1)
    np.testing.assert_allclose(y, x64 * scale ** -beta, rtol=40 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_within_channel(dtype):
    rng = np.random.default_rng(6)
    x = rng.uniform(-2, 2, (2, 3, 6, 7)).astype(dtype)
    y = fastconv.lrn_caffe(x, local_size=3, alpha=0.375, beta=0.625, k=5.0,
                           norm_region="WITHIN_CHANNEL")
    average = caffe_pool2d(x.astype(np.float64) ** 2, (3, 3), (1, 1), (1, 1), "ave")
    # k is not used by Caffe in WITHIN_CHANNEL mode.
    np.testing.assert_allclose(y, x * (1 + 0.375 * average) ** -0.625,
                               rtol=40 * np.finfo(dtype).eps, atol=0)


def test_defaults_are_lrn_params():
    x = np.random.default_rng(7).uniform(-2, 2, (1, 6, 3, 3)).astype(np.float32)
    assert_same_bits(fastconv.lrn_caffe(x), caffe_lrn_across(x, 5, 1.0, 0.75, 1.0))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"local_size": 4}, ValueError, "lrn_param.local_size"),
    ({"local_size": 0}, ValueError, "lrn_param.local_size"),
    ({"local_size": 2.5}, TypeError, "lrn_param.local_size"),
    ({"alpha": "1"}, TypeError, "lrn_param.alpha"),
    ({"beta": None}, TypeError, "lrn_param.beta"),
    ({"norm_region": "across"}, ValueError, "lrn_param.norm_region"),
])
def test_errors_name_lrn_param(kwargs, error, message):
    with pytest.raises(error, match=message):
        fastconv.lrn_caffe(np.zeros((1, 3, 2, 2), np.float32), **kwargs)


def test_four_axes():
    with pytest.raises(ValueError, match="4 axes"):
        fastconv.lrn_caffe(np.zeros((3, 2, 2), np.float32))
