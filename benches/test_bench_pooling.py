"""Caffe Pooling, forward and backward: fastconv against TensorFlow and PyTorch on real layer
shapes.

    PYTHONPATH=. python -m pytest benches/test_bench_pooling.py --benchmark-json=pooling.json
    python benches/report.py pooling.json

Every library computes Caffe's pooling (output size rounded up, MAX ignoring the padding, AVE
dividing by the window clipped to ``in + pad``) on inputs prepared outside the timed region:
fastconv's ``pool2d_caffe`` on NCHW; PyTorch's ``max_pool2d``/``avg_pool2d`` with
``ceil_mode=True`` (and ``count_include_pad=True``), on NCHW; TensorFlow's ``max_pool2d`` on
NHWC, its CPU layout, with explicit padding that reaches Caffe's last window, and for AVE the
zero padding a Keras port adds (``ZeroPadding2D``) before ``avg_pool2d``. The backward (the
input's gradient for a given output gradient) against PyTorch's own backward operators
(``max_pool2d_with_indices_backward``, ``avg_pool2d_backward``), called directly. For MAX,
PyTorch scatters dy through the indices its forward returned (Caffe's mask), while fastconv's
``pool2d_caffe_backward`` takes x and finds each window's first maximum again. Every result is checked against a
float64 numpy reference written here before it is timed.
"""
import functools
import os
import platform
import time
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastconv

# As in test_bench_conv.py: no idle numpy BLAS workers spinning while the libraries are timed.
_BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
LIBRARIES = ["fastconv", "tensorflow", "torch"]
SECONDS_PER_BENCHMARK = 1.0
SETTLE_SECONDS = 1.0  # lets the previous library's thread pool go idle first
MAX_ROUNDS = 100


@dataclass(frozen=True)
class Pooling:
    name: str
    x_shape: tuple  # N, C, H, W
    kernel: int
    stride: int
    pad: int
    method: str

    def output_size(self, size):
        """Caffe's rule for one axis (pooling_layer.cpp)."""
        out = -(-(size + 2 * self.pad - self.kernel) // self.stride) + 1
        if self.pad and (out - 1) * self.stride >= size + self.pad:
            out -= 1
        return out

    @property
    def y_shape(self):
        n, c, h, w = self.x_shape
        return (n, c, self.output_size(h), self.output_size(w))

    @property
    def bytes_moved(self):
        """Input read once and output written once, float32."""
        return 4 * (np.prod(self.x_shape) + np.prod(self.y_shape))


POOLINGS = [
    Pooling("alexnet_pool1", (1, 96, 55, 55), 3, 2, 0, "max"),
    Pooling("alexnet_pool1_b32", (32, 96, 55, 55), 3, 2, 0, "max"),
    Pooling("vgg_pool1_b8", (8, 64, 224, 224), 2, 2, 0, "max"),
    Pooling("resnet_pool1", (1, 64, 112, 112), 3, 2, 1, "max"),  # Caffe: 57, Keras 'same': 56
    Pooling("inception_ave_3x3_p1", (1, 192, 28, 28), 3, 1, 1, "ave"),
    Pooling("googlenet_ave_5x5_s3_b8", (8, 512, 14, 14), 5, 3, 0, "ave"),
    Pooling("resnet_global_ave_b8", (8, 2048, 7, 7), 7, 1, 0, "ave"),
]


@functools.lru_cache(maxsize=None)
def input_of(pooling):
    return np.random.default_rng(0).standard_normal(pooling.x_shape).astype(np.float32)


@functools.lru_cache(maxsize=2)
def reference(pooling):
    """float64 Caffe pooling, window offset by window offset over strided views."""
    x = input_of(pooling).astype(np.float64)
    n, c, h, w = x.shape
    k, s, p = pooling.kernel, pooling.stride, pooling.pad
    _, _, oh, ow = pooling.y_shape
    # Room for every window, even those Caffe clips at the far edge.
    far_h, far_w = (oh - 1) * s + k - h - p, (ow - 1) * s + k - w - p
    fill = -np.inf if pooling.method == "max" else 0.0
    padded = np.full((n, c, p + h + max(far_h, 0), p + w + max(far_w, 0)), fill)
    padded[:, :, p:p + h, p:p + w] = x
    if pooling.method == "ave":
        # Padding cells up to in + pad count in AVE's divisor; cells beyond do not.
        inside = np.zeros(padded.shape[2:])
        inside[:h + 2 * p, :w + 2 * p] = 1.0
    result = np.full((n, c, oh, ow), fill)
    divisor = np.zeros((oh, ow))
    for i in range(k):
        for j in range(k):
            window = padded[:, :, i:i + (oh - 1) * s + 1:s, j:j + (ow - 1) * s + 1:s]
            if pooling.method == "max":
                result = np.maximum(result, window)
            else:
                result = result + window
                divisor += inside[i:i + (oh - 1) * s + 1:s, j:j + (ow - 1) * s + 1:s]
    return result if pooling.method == "max" else result / divisor


@functools.lru_cache(maxsize=None)
def output_gradient_of(pooling):
    return np.random.default_rng(1).standard_normal(pooling.y_shape).astype(np.float32)


@functools.lru_cache(maxsize=2)
def reference_backward(pooling):
    """float64 gradient of Caffe's pooling: MAX routes each dy to its window's first maximum
    (taps in row-major order; the random inputs have no ties), AVE spreads dy / divisor over
    the window; the padding cells' share is dropped."""
    x = input_of(pooling).astype(np.float64)
    dy = output_gradient_of(pooling).astype(np.float64)
    n, c, h, w = x.shape
    k, s, p = pooling.kernel, pooling.stride, pooling.pad
    _, _, oh, ow = pooling.y_shape
    far_h, far_w = (oh - 1) * s + k - h - p, (ow - 1) * s + k - w - p
    shape = (n, c, p + h + max(far_h, 0), p + w + max(far_w, 0))
    padded = np.full(shape, -np.inf)
    padded[:, :, p:p + h, p:p + w] = x
    grad = np.zeros(shape)
    if pooling.method == "max":
        best, taken = reference(pooling), np.zeros(dy.shape, bool)
    else:
        inside = np.zeros(shape[2:])
        inside[:h + 2 * p, :w + 2 * p] = 1.0
        divisor = sum(inside[i:i + (oh - 1) * s + 1:s, j:j + (ow - 1) * s + 1:s]
                      for i in range(k) for j in range(k))
    for i in range(k):
        for j in range(k):
            at = (slice(None), slice(None), slice(i, i + (oh - 1) * s + 1, s),
                  slice(j, j + (ow - 1) * s + 1, s))
            if pooling.method == "max":
                first = (padded[at] == best) & ~taken
                grad[at] += np.where(first, dy, 0.0)
                taken |= first
            else:
                grad[at] += dy / divisor
    return grad[:, :, p:p + h, p:p + w]


def check(y, pooling, expected=None):
    expected = reference(pooling) if expected is None else expected
    assert y.shape == expected.shape, (pooling.name, y.shape, expected.shape)
    error = np.max(np.abs(y - expected))
    assert error <= 1e-5 * max(1.0, np.max(np.abs(expected))), (pooling.name, error)


def fastconv_call(pooling, x):
    def run():
        return fastconv.pool2d_caffe(x, pooling.kernel, stride=pooling.stride, pad=pooling.pad,
                                     method=pooling.method)
    return run, (lambda y: y)


def tensorflow_call(pooling, x):
    tf = pytest.importorskip("tensorflow")
    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    k, s, p = pooling.kernel, pooling.stride, pooling.pad
    _, _, h, w = pooling.x_shape
    _, _, oh, ow = pooling.y_shape
    # Padding after the input up to Caffe's last window (ceil rounding), never negative.
    after_h, after_w = max(0, (oh - 1) * s + k - h - p), max(0, (ow - 1) * s + k - w - p)
    if pooling.method == "max":
        paddings = [[0, 0], [p, after_h], [p, after_w], [0, 0]]

        @tf.function
        def run():
            return tf.nn.max_pool2d(x_nhwc, k, s, paddings)
    else:
        if after_h > p or after_w > p:
            pytest.skip("AVE windows past in + pad: TensorFlow has no Caffe divisor for them")

        @tf.function
        def run():
            padded = tf.pad(x_nhwc, [[0, 0], [p, after_h], [p, after_w], [0, 0]])
            return tf.nn.avg_pool2d(padded, k, s, "VALID")
    return run, (lambda y: y.numpy().transpose(0, 3, 1, 2))


def torch_call(pooling, x):
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x)
    k, s, p = pooling.kernel, pooling.stride, pooling.pad

    def run():
        with torch.inference_mode():
            if pooling.method == "max":
                return torch.nn.functional.max_pool2d(xt, k, s, p, ceil_mode=True)
            return torch.nn.functional.avg_pool2d(xt, k, s, p, ceil_mode=True,
                                                  count_include_pad=True)
    return run, (lambda y: y.numpy())


CALLS = {"fastconv": fastconv_call, "tensorflow": tensorflow_call, "torch": torch_call}


def fastconv_backward_call(pooling, x, dy):
    def run():
        return fastconv.pool2d_caffe_backward(x, dy, pooling.kernel, stride=pooling.stride,
                                              pad=pooling.pad, method=pooling.method)
    return run


def torch_backward_call(pooling, x, dy):
    torch = pytest.importorskip("torch")
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    k, s, p = [pooling.kernel] * 2, [pooling.stride] * 2, [pooling.pad] * 2
    if pooling.method == "max":
        _, indices = torch.nn.functional.max_pool2d(xt, k, s, p, ceil_mode=True,
                                                    return_indices=True)

        def run():
            return torch.ops.aten.max_pool2d_with_indices_backward(dyt, xt, k, s, p, [1, 1],
                                                                   True, indices).numpy()
    else:
        def run():
            return torch.ops.aten.avg_pool2d_backward(dyt, xt, k, s, p, True, True,
                                                      None).numpy()
    return run


BACKWARD_CALLS = {"fastconv": fastconv_backward_call, "torch": torch_backward_call}


def time_it(benchmark, run, group, extra):
    """pytest-benchmark's pedantic timing: enough rounds of enough calls for 1 s, at least 5."""
    start = time.perf_counter()
    run()
    once = time.perf_counter() - start
    iterations = max(1, min(1000, int(1e-3 / max(once, 1e-9))))
    rounds = max(5, min(MAX_ROUNDS, int(SECONDS_PER_BENCHMARK / max(once * iterations, 1e-9))))
    benchmark.group = group
    benchmark.extra_info.update(extra, fastconv_threads=fastconv.get_num_threads(),
                                machine=platform.processor() or platform.machine())
    benchmark.pedantic(run, rounds=rounds, iterations=iterations, warmup_rounds=1)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("pooling", POOLINGS, ids=[pooling.name for pooling in POOLINGS])
def test_pooling(benchmark, pooling, library):
    x = input_of(pooling)
    time.sleep(SETTLE_SECONDS)
    run, to_nchw = CALLS[library](pooling, x)
    check(to_nchw(run()), pooling)  # also the warm-up (tracing, first touch)
    time_it(benchmark, run, f"{pooling.name} pooling",
            dict(pooling=pooling.name, method=pooling.method, library=library,
                 bytes_moved=int(pooling.bytes_moved)))


@pytest.mark.parametrize("library", list(BACKWARD_CALLS))
@pytest.mark.parametrize("pooling", POOLINGS, ids=[pooling.name for pooling in POOLINGS])
def test_pooling_backward(benchmark, pooling, library):
    """The input's gradient; the rate counts the output gradient and the input gradient (and
    MAX's input, which fastconv reads to find the maxima again, as Caffe without its mask)."""
    x, dy = input_of(pooling), output_gradient_of(pooling)
    time.sleep(SETTLE_SECONDS)
    run = BACKWARD_CALLS[library](pooling, x, dy)
    check(run(), pooling, reference_backward(pooling))
    time_it(benchmark, run, f"{pooling.name} pooling backward",
            dict(pooling_backward=pooling.name, method=pooling.method, library=library,
                 bytes_moved=int(pooling.bytes_moved + 4 * np.prod(pooling.x_shape))))
