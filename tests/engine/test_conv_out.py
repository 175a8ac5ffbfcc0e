"""conv2d_caffe(..., out=array): the result written into the caller's array (a Net's top blob),
bit for bit the result of the call without it, on the first call and on the cached fast path;
anything that does not fit is refused with a message naming ``out``, on either path."""
import numpy as np
import pytest

import fastconv

from reference.conv import caffe_conv
from reference.tolerance import assert_scaled_close


def layer(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, 6, 15, 13)).astype(dtype),
            rng.standard_normal((8, 3, 3, 3)).astype(dtype),
            rng.standard_normal(8).astype(dtype))


KWARGS = dict(stride=2, pad=1, group=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_gets_the_result_bit_for_bit(dtype):
    x, w, b = layer(dtype)
    expected = fastconv.conv2d_caffe(x, w, b, **KWARGS)
    assert_scaled_close(expected, caffe_conv(x, w, b, (2, 2), (1, 1), (1, 1), 2), 27, dtype)
    for _ in range(2):   # the first call checks and caches the plan, the second takes it
        out = np.full(expected.shape, np.nan, dtype)
        assert fastconv.conv2d_caffe(x, w, b, out=out, **KWARGS) is out
        assert np.array_equal(out.view(np.uint8), expected.view(np.uint8))
    # A Fortran-ordered x skips the fast path: the checked path writes out as well.
    out = np.full(expected.shape, np.nan, dtype)
    assert fastconv.conv2d_caffe(np.asfortranarray(x), w, b, out=out, **KWARGS) is out
    assert np.array_equal(out.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("make_out, message", [
    (lambda y, x: np.empty(y.shape[:-1] + (y.shape[-1] + 1,), np.float32),
     r"out must be a writeable C-contiguous float32 array of the output's shape \(2, 8, 8, 7\)"),
    (lambda y, x: np.empty(y.shape, np.float64), r"out must be .* float32 array"),
    (lambda y, x: np.empty(y.shape[::-1], np.float32).T, r"out must be .*C-contiguous"),
    (lambda y, x: np.frombuffer(bytes(y.nbytes), np.float32).reshape(y.shape),
     r"out must be a writeable"),
    (lambda y, x: x.reshape(-1)[:y.size].reshape(y.shape), r"out overlaps an input"),
])
def test_out_that_does_not_fit_is_refused_on_both_paths(make_out, message):
    x, w, b = layer()
    y = fastconv.conv2d_caffe(x, w, b, **KWARGS)   # caches the plan: the fast path is open
    original = x.copy()
    for _ in range(2):
        with pytest.raises(ValueError, match=message):
            fastconv.conv2d_caffe(x, w, b, out=make_out(y, x), **KWARGS)
    assert np.array_equal(x, original)
