"""Large outputs reuse the memory of dead ones (fastconv.runtime's output cache), safely.

The cache must never hand out memory an array still uses, must stay within its limit, and its
arrays must be ordinary writable C-contiguous numpy arrays holding the right values (the reused
memory holds the previous output's numbers: every element has to be written again).
"""
import gc

import numpy as np
import pytest

import fastconv
from fastconv import _engine

from reference.conv import caffe_conv

# 1 x 4 x 1024 x 1024 float32 output = 16 MiB, over the cache's 4 MiB threshold.
X_SHAPE, W_SHAPE = (1, 2, 1024, 1024), (4, 2, 1, 1)


@pytest.fixture
def cache_limit():
    """An empty cache with the default limit: what earlier tests' outputs left is freed."""
    previous = fastconv.set_output_cache_limit(0)
    fastconv.set_output_cache_limit(256)
    yield
    fastconv.set_output_cache_limit(previous)


def data_address(array):
    return array.__array_interface__["data"][0]


def inputs(seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(X_SHAPE).astype(np.float32),
            rng.standard_normal(W_SHAPE).astype(np.float32),
            rng.standard_normal(W_SHAPE[0]).astype(np.float32))


def test_dead_output_memory_is_reused_with_every_element_rewritten(cache_limit):
    y = fastconv.conv2d_caffe(*inputs(0))
    assert y.flags.writeable and y.flags.c_contiguous and y.dtype == np.float32
    address = data_address(y)
    del y
    gc.collect()
    x, w, b = inputs(1)
    y = fastconv.conv2d_caffe(x, w, b)
    assert data_address(y) == address
    np.testing.assert_allclose(y, caffe_conv(x, w, b, (1, 1), (0, 0), (1, 1), 1),
                               rtol=1e-5, atol=1e-5)
    y[0, 0, 0, 0] = 7.0   # writable
    assert y[0, 0, 0, 0] == 7.0


def test_memory_of_a_live_view_is_never_handed_out(cache_limit):
    y = fastconv.conv2d_caffe(*inputs(0))
    view = y[0, 1]
    kept = view.copy()
    del y
    gc.collect()
    z = fastconv.conv2d_caffe(*inputs(1))
    assert not np.shares_memory(view, z)
    np.testing.assert_array_equal(view, kept)


def test_limit_bounds_what_is_kept_and_zero_frees_it(cache_limit):
    outputs = [fastconv.conv2d_caffe(*inputs(seed)) for seed in range(6)]
    del outputs
    gc.collect()
    kept = _engine.output_cache_bytes()
    assert 0 < kept <= 256 * 2**20
    assert kept <= 4 * 16 * 2**20          # at most four blocks
    fastconv.set_output_cache_limit(20)    # MiB: one 16 MiB block fits, two do not
    assert _engine.output_cache_bytes() <= 20 * 2**20
    fastconv.set_output_cache_limit(0)
    assert _engine.output_cache_bytes() == 0
    y = fastconv.conv2d_caffe(*inputs(2))
    del y
    gc.collect()
    assert _engine.output_cache_bytes() == 0


def test_backward_outputs_from_reused_memory_are_right(cache_limit):
    x, w, _ = inputs(3)
    dy = np.random.default_rng(4).standard_normal((1, 4, 1024, 1024)).astype(np.float32)
    first = fastconv.conv2d_caffe_backward(x, w, dy, bias=False)
    expected_dx = first[0].copy()
    del first
    gc.collect()
    dx, dw, _ = fastconv.conv2d_caffe_backward(x, w, dy, bias=False)
    np.testing.assert_array_equal(dx, expected_dx)
    want = np.einsum("oc,nohw->nchw", w[:, :, 0, 0].astype(np.float64), dy.astype(np.float64))
    np.testing.assert_allclose(dx, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("megabytes", [-1, float("nan"), "256", True])
def test_limit_is_checked(megabytes):
    with pytest.raises((TypeError, ValueError), match="megabytes"):
        fastconv.set_output_cache_limit(megabytes)
