"""Threads: results bitwise identical for any thread count and across runs; the GIL is
released and concurrent calls from Python threads are safe and correct."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv
from fastconv import _core

from reference.conv import caffe_conv, gemm
from reference.tolerance import assert_scaled_close, gemm_error_bound

# Each large enough that the engine really splits it over 2 and 3 threads (several MFLOP),
# covering fused im2col, 1x1, grouped, strided and depthwise paths.
CONV_CASES = [
    ((2, 16, 40, 37), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 8, 90, 91), (24, 8, 5, 3), (2, 1), (2, 1), (1, 2), 1),
    ((1, 96, 27, 27), (64, 48, 5, 5), (1, 1), (2, 2), (1, 1), 2),
    ((3, 128, 20, 20), (64, 128, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    ((1, 256, 13, 13), (96, 256, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 64, 9, 9), (192, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),   # rows split
    ((2, 48, 64, 64), (48, 1, 3, 3), (1, 1), (1, 1), (1, 1), 48),
    ((3, 3, 96, 131), (16, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1),   # by-phase copy, threaded
]
DTYPES = [np.float32, np.float64]


def inputs(case, dtype, seed=3):
    x_shape, w_shape = case[:2]
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype))


def run(case, x, w, b):
    _, _, stride, pad, dilation, group = case
    return fastconv.conv2d_caffe(x, w, b, stride=stride, pad=pad, dilation=dilation, group=group)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda case: "x{}w{}".format(*case[:2]))
def test_conv_bitwise_identical_for_any_thread_count(restore_threads, case, dtype):
    x, w, b = inputs(case, dtype)
    results = []
    for threads in (1, 2, 3, 2, 1):
        fastconv.set_num_threads(threads)
        results.append(run(case, x, w, b))
    first = results[0]
    for threads, y in zip((2, 3, 2, 1), results[1:]):
        assert np.array_equal(first.view(np.uint8), y.view(np.uint8)), f"threads={threads}"
    assert_scaled_close(first, caffe_conv(x, w, b, *case[2:]), w[0].size + 1, dtype)


def _bitwise_equal(first, other):
    return all(a is None and b is None or np.array_equal(a.view(np.uint8), b.view(np.uint8))
               for a, b in zip(first, other))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_deconv_and_nd_bitwise_identical_for_any_thread_count(restore_threads, dtype):
    """The gradient path (GEMMs with shared packed operands, im2col/col2im split over
    channels), depthwise gradients, pooling and the N-D path: same bits for 1, 2 and 3
    threads."""
    rng = np.random.default_rng(7)
    # Big enough that each image's GEMMs and its lowering are split over threads.
    x = rng.standard_normal((2, 64, 61, 58)).astype(dtype)
    w = rng.standard_normal((64, 32, 3, 3)).astype(dtype)
    kwargs = dict(stride=(2, 1), pad=(1, 2), dilation=(1, 2), group=2)
    dy = rng.standard_normal(fastconv.conv2d_caffe(x, w, **kwargs).shape).astype(dtype)
    x3 = rng.standard_normal((1, 8, 9, 10, 11)).astype(dtype)
    w3 = rng.standard_normal((16, 8, 3, 3, 3)).astype(dtype)
    # Depthwise (planes split over threads) and pooling (the same), with strides and padding.
    wd = rng.standard_normal((64, 1, 3, 3)).astype(dtype)
    depthwise = dict(stride=(2, 1), pad=(1, 2), dilation=(1, 2), group=64)
    dyd = rng.standard_normal(fastconv.conv2d_caffe(x, wd, **depthwise).shape).astype(dtype)
    pooled = {method: fastconv.pool2d_caffe(x, 3, stride=2, pad=1, method=method)
              for method in ("max", "ave")}
    calls = {
        "depthwise backward": lambda: fastconv.conv2d_caffe_backward(x, wd, dyd, **depthwise),
        "max pooling": lambda: (fastconv.pool2d_caffe(x, 3, stride=2, pad=1, method="max"),
                                fastconv.pool2d_caffe_backward(x, pooled["max"], 3, stride=2,
                                                               pad=1, method="max")),
        "ave pooling": lambda: (fastconv.pool2d_caffe(x, 3, stride=2, pad=1, method="ave"),
                                fastconv.pool2d_caffe_backward(x, pooled["ave"], 3, stride=2,
                                                               pad=1, method="ave")),
        "conv backward": lambda: fastconv.conv2d_caffe_backward(x, w, dy, **kwargs),
        "deconv": lambda: (fastconv.deconv2d_caffe(dy, w, **kwargs),),
        "deconv backward": lambda: fastconv.deconv2d_caffe_backward(dy, w, x, **kwargs),
        "conv3d": lambda: (fastconv.convnd_caffe(x3, w3, pad=1),),
    }
    for name, call in calls.items():
        results = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            results.append(call())
        assert all(_bitwise_equal(results[0], other) for other in results[1:]), name


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_bitwise_identical_for_any_thread_count(restore_threads, dtype):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((300, 700)).astype(dtype)
    b = rng.standard_normal((700, 500)).astype(dtype).T.copy().T  # a transposed operand
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        c = np.empty((300, 500), dtype)
        _core.gemm(a, b, c, False)
        results.append(c)
    assert all(np.array_equal(results[0].view(np.uint8), c.view(np.uint8)) for c in results)
    assert np.all(np.abs(results[0] - gemm(a, b)) <= gemm_error_bound(a, b))


def test_concurrent_python_threads_are_correct(restore_threads):
    fastconv.set_num_threads(2)
    jobs = []
    for index, case in enumerate(CONV_CASES):
        for dtype in DTYPES:
            x, w, b = inputs(case, dtype, seed=index)
            jobs.append((case, x, w, b, caffe_conv(x, w, b, *case[2:]), run(case, x, w, b)))

    def work(job):
        case, x, w, b, _, _ = job
        return [run(case, x, w, b) for _ in range(3)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(work, jobs * 2))
    for (case, x, w, b, reference, serial), ys in zip(jobs * 2, outcomes):
        for y in ys:
            assert np.array_equal(y, serial), case
        assert_scaled_close(ys[0], reference, w[0].size + 1, x.dtype)


def test_set_num_threads_validates(restore_threads):
    fastconv.set_num_threads(3)
    assert fastconv.get_num_threads() == 3
    with pytest.raises(ValueError, match="must be >= 1"):
        fastconv.set_num_threads(0)
    with pytest.raises(TypeError, match="must be an int"):
        fastconv.set_num_threads(2.0)
    with pytest.raises(TypeError, match="must be an int"):
        fastconv.set_num_threads(np.True_)
    limit = 4 * (os.cpu_count() or 1)
    with pytest.raises(ValueError, match=f"n={10**6} threads is more than 4 per CPU"):
        fastconv.set_num_threads(10**6)
    with pytest.raises(ValueError, match=f"at most {limit}"):
        fastconv.set_num_threads(limit + 1)
    assert fastconv.get_num_threads() == 3
    fastconv.set_num_threads(limit)
    assert fastconv.get_num_threads() == limit
    fastconv.set_num_threads(np.int64(2))   # numpy integers, as every other parameter takes
    assert fastconv.get_num_threads() == 2


def test_environment_variable_sets_threads():
    env = dict(os.environ, FASTCONV_NUM_THREADS="3")
    result = subprocess.run(
        [sys.executable, "-c", "import fastconv; print(fastconv.get_num_threads())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == "3"


def test_default_is_every_usable_cpu():
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTCONV_NUM_THREADS", "OMP_NUM_THREADS")}
    result = subprocess.run(
        [sys.executable, "-c", "import fastconv, os; "
         "print(fastconv.get_num_threads(), len(os.sched_getaffinity(0)))"],
        env=env, capture_output=True, text=True, check=True,
    )
    threads, usable = result.stdout.split()
    assert threads == usable
