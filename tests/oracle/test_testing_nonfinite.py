"""The oracle never passes a wrong non-finite value, and refuses tolerances that would.

NaN must match NaN and an infinity the same infinity, position by position (numpy.testing's
``equal_nan``); a NaN, infinite or negative ``rtol``/``atol`` is a ValueError naming it. The
first two cases are the issue's exact reproductions.
"""
import numpy as np
import pytest

import fastconv
from fastconv.testing import (
    assert_conv_close,
    assert_deconv_close,
    assert_pool_close,
    check_conv,
    check_deconv,
    check_pool,
    compare,
    exact_conv_inputs,
)


def test_nan_replaced_by_a_number_fails():
    x, w, b = exact_conv_inputs((1, 1, 5, 5), (1, 1, 3, 3), seed=0)
    x[0, 0, 2, 2] = np.nan
    with pytest.raises(AssertionError, match="NaN/Inf positions"):
        assert_conv_close(np.nan_to_num(fastconv.conv2d_caffe(x, w, b, pad=1), nan=12345.),
                          x, w, b, pad=1)


def test_zeros_for_an_all_nan_input_fail():
    x, w, b = exact_conv_inputs((1, 1, 5, 5), (1, 1, 3, 3), seed=0)
    with pytest.raises(AssertionError, match="mismatches: 25 of 25"):
        assert_conv_close(np.zeros((1, 1, 5, 5), np.float32), np.full_like(x, np.nan), w, b,
                          pad=1)


def test_nan_and_inf_in_the_right_places_pass():
    x, w, b = exact_conv_inputs((1, 2, 6, 6), (3, 2, 3, 3), seed=1)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 4, 4] = np.inf
    w[:] = np.abs(w) + 1        # positive taps: +inf stays +inf, never inf - inf
    actual = fastconv.conv2d_caffe(x, w, b, pad=1)
    assert np.isnan(actual).any() and np.isposinf(actual).any()
    assert_conv_close(actual, x, w, b, pad=1)
    assert check_conv(actual, x, w, b, pad=1)


def test_wrong_sign_of_infinity_fails():
    x, w, b = exact_conv_inputs((1, 1, 5, 5), (1, 1, 3, 3), seed=0)
    w[:] = 1
    x[0, 0, 2, 2] = np.inf
    right = fastconv.conv2d_caffe(x, w, b, pad=1)
    assert np.isposinf(right).sum() == 9
    wrong = np.where(np.isinf(right), -np.inf, right).astype(np.float32)
    result = check_conv(wrong, x, w, b, pad=1)
    assert not result and result.comparison.nonfinite_mismatches == 9
    nan_for_inf = np.where(np.isinf(right), np.nan, right).astype(np.float32)
    assert not check_conv(nan_for_inf, x, w, b, pad=1)
    inf_for_number = right.copy()
    inf_for_number[0, 0, 0, 0] = np.inf
    assert not check_conv(inf_for_number, x, w, b, pad=1)


@pytest.mark.parametrize("name, value", [
    ("atol", float("nan")), ("atol", float("inf")), ("atol", -1.0),
    ("rtol", float("nan")), ("rtol", float("inf")), ("rtol", -1.0),
])
def test_bad_tolerances_are_refused_by_every_entry_point(name, value):
    x, w, b = exact_conv_inputs((1, 1, 5, 5), (1, 1, 3, 3), seed=0)
    y = fastconv.conv2d_caffe(x, w, b)
    with pytest.raises(ValueError, match=name):
        assert_conv_close(y, x, w, b, **{name: value})
    with pytest.raises(ValueError, match=name):
        check_conv(np.zeros_like(y), x, w, b, **{name: value})   # wrong, so it would diagnose
    dw = np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match=name):
        assert_deconv_close(fastconv.deconv2d_caffe(x, dw), x, dw, **{name: value})
    with pytest.raises(ValueError, match=name):
        assert_pool_close(fastconv.pool2d_caffe(x, 2), x, 2, **{name: value})
    with pytest.raises(ValueError, match=name):
        compare(y, y, **{name: value})


def test_a_correct_result_still_passes_with_explicit_zero_tolerances():
    x, w, b = exact_conv_inputs((1, 2, 6, 6), (3, 2, 3, 3), seed=3)
    assert_conv_close(fastconv.conv2d_caffe(x, w, b), x, w, b, rtol=0, atol=0)


def test_deconv_non_finite():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 4, 4))
    w = rng.standard_normal((2, 3, 3, 3))
    x[0, 1, 2, 2] = np.nan
    right = fastconv.deconv2d_caffe(x, w, stride=2, pad=1)
    assert np.isnan(right).any()
    assert check_deconv(right, x, w, stride=2, pad=1)
    assert not check_deconv(np.nan_to_num(right, nan=0.0), x, w, stride=2, pad=1)
    assert not check_deconv(np.zeros_like(right), np.full_like(x, np.nan), w, stride=2, pad=1)


def test_pool_non_finite():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 3, 3] = -np.inf
    ave = fastconv.pool2d_caffe(x, 2, stride=2, method="ave")
    assert np.isnan(ave[0, 0, 0, 0]) and np.isneginf(ave[0, 0, 1, 1])
    assert check_pool(ave, x, 2, stride=2, method="ave")
    assert not check_pool(np.nan_to_num(ave, nan=0.0, neginf=0.0), x, 2, stride=2, method="ave")
