"""fastconv against TensorFlow and PyTorch on real layer shapes (pytest-benchmark).

    PYTHONPATH=. python -m pytest benches/test_bench_conv.py --benchmark-json=bench.json
    python benches/report.py bench.json

Every library computes the same Caffe convolution (NCHW/OIHW semantics, symmetric padding,
bias) on inputs prepared outside the timed region; every result is checked against a float64
numpy reference before it is timed. Peers that are not installed are skipped. Each layer and
dtype is one benchmark group.
"""
import functools
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastconv
from fastconv.cli.bench_layers import FORWARD

# numpy's OpenBLAS computes only the float64 reference here; with one thread it leaves no
# worker threads spinning on the two cores while the libraries under test are timed.
_BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")

# float64 peers are 5-20x slower than float32 ones; these layers keep the suite to minutes.
FLOAT64_LAYERS = {
    "seed", "alexnet_conv1", "alexnet_conv2_g2", "vgg_conv3_2_b8", "resnet_1x1_a",
    "resnet_stem", "mobilenet_dw", "dilated", "tiny",
}
CASES = [(layer, dtype) for layer in FORWARD for dtype in ("float32", "float64")
         if dtype == "float32" or layer.name in FLOAT64_LAYERS]
LIBRARIES = ["fastconv", "fastconv_nhwc", "tensorflow", "torch"]

# Time spent per benchmark: enough rounds for a stable median, at least 3.
SECONDS_PER_BENCHMARK = 1.0
# The peers' thread pools keep spinning for a while after their calls, on the same two cores:
# each benchmark first lets the previous one's threads go idle.
SETTLE_SECONDS = 1.0
MAX_ROUNDS = 50


@functools.lru_cache(maxsize=None)
def inputs(layer, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape)
    w = rng.standard_normal(layer.w_shape) / np.sqrt(np.prod(layer.w_shape[1:]))
    b = rng.standard_normal(layer.num_output)
    return x.astype(dtype), w.astype(dtype), b.astype(dtype)


@functools.lru_cache(maxsize=4)
def reference(layer):
    """float64 Caffe convolution: im2col by strided windows, one matmul per group and image."""
    x, w, b = (a.astype(np.float64) for a in inputs(layer, "float64"))
    p, s, d, k = layer.pad, layer.stride, layer.dilation, layer.kernel
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    _, o, oh, ow = layer.y_shape
    y = np.empty(layer.y_shape)
    cg, og = layer.channels // layer.group, layer.num_output // layer.group
    for n in range(layer.batch):
        for g in range(layer.group):
            taps = [padded[n, g * cg:(g + 1) * cg,
                           i * d:i * d + (oh - 1) * s + 1:s,
                           j * d:j * d + (ow - 1) * s + 1:s]
                    for i in range(k) for j in range(k)]
            col = np.stack(taps, axis=1).reshape(cg * k * k, oh * ow)  # rows: c, kh, kw
            y[n, g * og:(g + 1) * og] = (w[g * og:(g + 1) * og].reshape(og, -1) @ col).reshape(
                og, oh, ow)
    return y + b[None, :, None, None]


def check(y_nchw, layer, dtype):
    expected = reference(layer)
    error = np.abs(np.asarray(y_nchw, np.float64) - expected).max() / np.abs(expected).max()
    assert error < (1e-4 if dtype == "float32" else 1e-10), f"relative error {error:.3g}"


def fastconv_call(layer, x, w, b):
    kwargs = dict(stride=layer.stride, pad=layer.pad, dilation=layer.dilation, group=layer.group)
    return (lambda: fastconv.conv2d_caffe(x, w, b, **kwargs)), (lambda y: y)


def fastconv_nhwc_call(layer, x, w, b):
    """conv2d_keras on NHWC data, Caffe's pad made explicit outside the timed call ('valid'):
    the same convolution as fastconv_call, read and written channels last."""
    p = layer.pad
    x_nhwc = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))).transpose(0, 2, 3, 1))
    kernel = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    kwargs = dict(strides=layer.stride, padding="valid", dilation_rate=layer.dilation,
                  groups=layer.group)
    return ((lambda: fastconv.conv2d_keras(x_nhwc, kernel, b, **kwargs)),
            (lambda y: y.transpose(0, 3, 1, 2)))


def tensorflow_call(layer, x, w, b):
    tf = pytest.importorskip("tensorflow")
    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    bias = tf.constant(b)
    p = layer.pad
    padding = [[0, 0], [p, p], [p, p], [0, 0]]
    strides = [1, layer.stride, layer.stride, 1]
    dilations = [layer.dilation, layer.dilation]
    if layer.is_depthwise:
        kernel = tf.constant(w.transpose(2, 3, 0, 1))  # (kh, kw, C, 1)
        # TensorFlow 2.21's float32 depthwise_conv2d with explicit padding aborts the process
        # (a failed CHECK in tensor_format.h, seen on AMD Zen 5): the input is padded here,
        # outside the timed call, and the timed call is 'VALID' (the same arithmetic).
        x_padded = tf.constant(np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))).transpose(0, 2, 3, 1))

        @tf.function
        def run():
            y = tf.nn.depthwise_conv2d(x_padded, kernel, strides, "VALID", dilations=dilations)
            return tf.nn.bias_add(y, bias)
    else:
        kernel = tf.constant(w.transpose(2, 3, 1, 0))  # HWIO; C/group inputs make it grouped
        # TensorFlow's CPU grappler fuses conv + BiasAdd, but has no fused grouped kernel
        # (UnimplementedError): grouped layers add the bias as a separate op.
        add_bias = tf.nn.bias_add if layer.group == 1 else (lambda y, bias: y + bias)

        @tf.function
        def run():
            y = tf.nn.conv2d(x_nhwc, kernel, strides, padding, dilations=dilations)
            return add_bias(y, bias)
    return run, (lambda y: y.numpy().transpose(0, 3, 1, 2))


def torch_call(layer, x, w, b):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

    def run():
        with torch.inference_mode():
            return F.conv2d(xt, wt, bt, stride=layer.stride, padding=layer.pad,
                            dilation=layer.dilation, groups=layer.group)
    return run, (lambda y: y.numpy())


CALLS = {"fastconv": fastconv_call, "fastconv_nhwc": fastconv_nhwc_call,
         "tensorflow": tensorflow_call, "torch": torch_call}


def versions():
    found = {"numpy": np.__version__}
    for name in ("tensorflow", "torch"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    return found


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("layer,dtype", CASES,
                         ids=[f"{layer.name}-{dtype}" for layer, dtype in CASES])
def test_conv(benchmark, layer, dtype, library):
    x, w, b = inputs(layer, dtype)
    time.sleep(SETTLE_SECONDS)
    run, to_nchw = CALLS[library](layer, x, w, b)
    check(to_nchw(run()), layer, dtype)  # also the warm-up (tracing, JIT, first-touch)

    start = time.perf_counter()
    run()
    once = time.perf_counter() - start
    # Tiny layers: many calls per round (10 ms), so neither the clock's resolution nor a CPU
    # still waking from the settling pause decides the median.
    iterations = max(1, min(10000, int(1e-2 / max(once, 1e-9))))
    rounds = int(SECONDS_PER_BENCHMARK / max(once * iterations, 1e-9))
    rounds = max(3, min(MAX_ROUNDS, rounds))

    benchmark.group = f"{layer.name} {dtype}"
    benchmark.extra_info.update(
        library=library, layer=layer.name, dtype=dtype, flops=layer.flops,
        fastconv=fastconv.cpu_info(), versions=versions(),
        openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        numpy_blas_threads=1,
        load_average=os.getloadavg(), machine=platform.processor() or platform.machine(),
    )
    benchmark.pedantic(run, rounds=rounds, iterations=iterations, warmup_rounds=1)
