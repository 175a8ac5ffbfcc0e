"""Caffe's LRN (fastconv.lrn_caffe): ACROSS_CHANNELS bit for bit against Caffe's CPU algorithm
written here in numpy (lrn_layer.cpp: the squares padded with zeros, the first channel's
window summed term by term, each next channel's sum as the previous one plus the entering term
minus the leaving one, every operation rounded in the dtype; then scale^-beta by the C
library's powf or pow, as Caffe's caffe_powx, times x), on random data, signed zeros, infinities and NaN, with odd
parameters (k = -0, a negative alpha, windows wider than the channels), on arrays split between
threads; and against a float64 sum written plainly. Float32 with beta 0.75 (the engine's sqrt
route for the power) on special values, exact powers and a million scales. WITHIN_CHANNEL and
the argument errors."""
import numpy as np
import pytest

import fastconv
from c_programs import build_and_run

from reference.libm import IS_GLIBC, libm_power
from reference.pool import caffe_pool2d, caffe_pool2d_bits
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
    return libm_power(scale, -dtype(beta)) * x


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


@pytest.mark.skipif(not IS_GLIBC, reason="the engines return glibc's powf near midpoints")
def test_three_quarter_power_is_powf(kernel):
    """Half a million scales spread over [1, 16) and far beyond: the sqrt route's float32
    power is powf's, element for element, including where glibc's powf rounds the other way
    from the exact power (about one positive float in 1,600; the reproducer is Caffe 1.0's own output
    for the scale 3.2451541: 0x3ed3c281, where the exact power rounds to 0x3ed3c280)."""
    rng = np.random.default_rng(11)
    x = rng.uniform(0.0, 4.0, (1, 1, 500, 1000)).astype(np.float32)
    x.reshape(-1)[::3] *= np.float32(1000.0)
    y = fastconv.lrn_caffe(x, local_size=1, alpha=1.0, k=1.0)
    assert_same_bits(y, caffe_lrn_across(x, 1, 1.0, 0.75, 1.0))
    exact = np.power(np.float64(np.float32(3.2451541)), -0.75).astype(np.float32)
    caffe = fastconv.lrn_caffe(np.ones((1, 1, 1, 1), np.float32), local_size=1, alpha=1.0,
                               k=float(np.float32(3.2451541) - np.float32(1)))
    assert caffe.view(np.uint32).item() == 0x3ED3C281 != exact.view(np.uint32)


@pytest.mark.skipif(not IS_GLIBC, reason="the engines return glibc's powf near midpoints")
def test_three_quarter_power_of_scales_just_above_one_is_powf(kernel):
    """k = 1 with small window sums: scales 1 + m units of the last place for every m from 0
    to past the engines' table of powf's results (512 of them), then a stretch beyond, each
    power powf's own (for odd m below about 150 the exact power lies a hair from a midpoint)."""
    squares = np.arange(0, 3000, dtype=np.float64) * 2.0**-23
    x = np.sqrt(np.repeat(squares, 3)).astype(np.float32).reshape(1, 1, 100, 90)
    scale = np.float32(1) + x * x
    units = scale.view(np.int32) - np.float32(1).view(np.int32)
    assert set(range(600)) <= set(units.ravel().tolist())
    y = fastconv.lrn_caffe(x, local_size=1, alpha=1.0, k=1.0)
    assert_same_bits(y, caffe_lrn_across(x, 1, 1.0, 0.75, 1.0))


@pytest.mark.skipif(not IS_GLIBC, reason="checks glibc's powf")
def test_three_quarter_power_over_every_float(tmp_path):
    """float_rounding.h's fc_three_quarter_powf, the engines' formula, against glibc's
    powf(s, -0.75f) for all 2^32 float bit patterns (tests/engine/c/lrn_power_exhaustive.c):
    the same bits everywhere, NaN for NaN. This is what lets the engines skip powf for all but
    the elements near a rounding midpoint."""
    result = build_and_run("lrn_power_exhaustive", tmp_path, ["-O2", "-std=gnu11", "-fopenmp"])
    assert result.returncode == 0, result.stdout
    assert "differ: 0 " in result.stdout, result.stdout


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


@pytest.mark.skipif(not IS_GLIBC, reason="the reference is glibc's powf, as Caffe's")
@pytest.mark.parametrize("dtype", DTYPES)
def test_within_channel_bit_for_bit(dtype):
    """Caffe's composition in its own operations, each rounded in the dtype: a PowerLayer's
    powf(x, 2) (not always x * x rounded: for about one float in 500 it rounds the other
    way), AVE pooling in Caffe's order, the PowerLayer's scale, shift and powf(., -beta), the
    Eltwise product."""
    rng = np.random.default_rng(8)
    x = rng.uniform(-2, 2, (4, 8, 16, 16)).astype(dtype)
    y = fastconv.lrn_caffe(x, local_size=5, alpha=0.375, beta=0.625, k=5.0,
                           norm_region="WITHIN_CHANNEL")
    squares = libm_power(x, 2)
    if dtype == np.float32:
        assert np.count_nonzero(squares != x * x) > 0   # the case that tells the two apart
    pooled = caffe_pool2d_bits(squares, (5, 5), (1, 1), (2, 2), "ave")
    shifted = pooled * dtype(0.375) + dtype(1)
    assert_same_bits(y, x * libm_power(shifted, -dtype(0.625)))


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4)])
def test_empty_axes(shape, region):
    y = fastconv.lrn_caffe(np.zeros(shape, np.float32), norm_region=region)
    assert y.shape == shape and y.dtype == np.float32


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
