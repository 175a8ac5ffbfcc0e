"""Convolution backward (dx and dW of one call): fastconv against TensorFlow and PyTorch, same run.

Run: ``PYTHONPATH=. pytest benches/test_bench_backward.py --benchmark-json=backward.json``, then
``python benches/report.py backward.json`` (or one JSON of the whole ``benches/`` run).
The layers are fastconv/cli/bench_layers.py's ``BACKWARD``. Each is one benchmark group with one entry per
library: fastconv's ``conv2d_caffe_backward`` (NCHW, OIHW); TensorFlow's
``Conv2DBackpropInput`` + ``Conv2DBackpropFilter`` inside one ``tf.function`` (NHWC/HWIO, its
preferred CPU layout; oneDNN on; the ``DepthwiseConv2dNative`` gradients for the depthwise
layer); PyTorch's ``aten.convolution_backward``, the call autograd
makes for ``F.conv2d`` (dx and dW, no bias). Every result is checked against fastconv's before
anything is timed (fastconv's own correctness is the tests' business). Peers that are not
installed are skipped.
"""
import functools
import math
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastconv
from fastconv.cli.bench_layers import BACKWARD

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# As in test_bench_conv.py: numpy's OpenBLAS on one thread, so that no idle BLAS workers spin
# on the two cores while the libraries are timed (this file run alone had none of it: the
# depthwise layer took 2.3 ms there, 1.55 ms with it, on the AVX2 paths of the Zen 5).
_BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
LIBRARIES = ["fastconv", "tensorflow", "torch"]


@functools.lru_cache(maxsize=None)
def arrays(layer):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape).astype(np.float32)
    w = (rng.standard_normal(layer.w_shape) / math.sqrt(np.prod(layer.w_shape[1:]))).astype(
        np.float32)
    dy = rng.standard_normal(layer.y_shape).astype(np.float32)
    return x, w, dy


def fastconv_call(layer, x, w, dy):
    """(the timed call, its result as (dx NCHW, dw OIHW))"""
    def run():
        return fastconv.conv2d_caffe_backward(x, w, dy, stride=layer.stride, pad=layer.pad,
                                              group=layer.group, bias=False)
    return run, (lambda result: result[:2])


def tensorflow_call(layer, x, w, dy):
    tf = pytest.importorskip("tensorflow")
    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    dy_nhwc = tf.constant(dy.transpose(0, 2, 3, 1))
    p, s = layer.pad, layer.stride
    paddings = [0, 0, p, p, p, p, 0, 0]
    if layer.is_depthwise:
        # TensorFlow's depthwise gradients; the filter (kh, kw, C, 1), as DepthwiseConv2D keeps it.
        data_op = tf.raw_ops.DepthwiseConv2dNativeBackpropInput
        filter_op = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter
        kernel_axes, caffe_axes = (2, 3, 0, 1), (2, 3, 0, 1)
    else:
        data_op, filter_op = tf.raw_ops.Conv2DBackpropInput, tf.raw_ops.Conv2DBackpropFilter
        kernel_axes, caffe_axes = (2, 3, 1, 0), (3, 2, 0, 1)
    kernel = tf.constant(w.transpose(kernel_axes))

    @tf.function
    def backward():
        dx = data_op(input_sizes=tf.shape(x_nhwc), filter=kernel, out_backprop=dy_nhwc,
                     strides=[1, s, s, 1], padding="EXPLICIT", explicit_paddings=paddings)
        dw = filter_op(input=x_nhwc, filter_sizes=tf.shape(kernel), out_backprop=dy_nhwc,
                       strides=[1, s, s, 1], padding="EXPLICIT", explicit_paddings=paddings)
        return dx, dw

    def to_caffe(result):
        dx, dw = result
        return dx.numpy().transpose(0, 3, 1, 2), dw.numpy().transpose(caffe_axes)
    return backward, to_caffe


def torch_call(layer, x, w, dy):
    torch = pytest.importorskip("torch")
    xt, wt, dyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
    s, p = [layer.stride] * 2, [layer.pad] * 2

    def run():
        with torch.no_grad():
            return torch.ops.aten.convolution_backward(
                dyt, xt, wt, None, s, p, [1, 1], False, [0, 0], layer.group,
                [True, True, False])
    return run, (lambda result: (result[0].numpy(), result[1].numpy()))


CALLS = {"fastconv": fastconv_call, "tensorflow": tensorflow_call, "torch": torch_call}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("layer", BACKWARD, ids=[layer.name for layer in BACKWARD])
def test_backward(benchmark, layer, library):
    x, w, dy = arrays(layer)
    run, to_caffe = CALLS[library](layer, x, w, dy)
    if library != "fastconv":
        # The peers agree with fastconv to float32 accuracy for sums of that many terms.
        ours_run, _ = fastconv_call(layer, x, w, dy)
        ours, theirs = ours_run()[:2], to_caffe(run())
        _, o, oh, ow = layer.y_shape
        terms = (o // layer.group * layer.kernel ** 2, layer.batch * oh * ow)
        for mine, peer, count in zip(ours, theirs, terms):
            error = np.max(np.abs(mine - peer)) / np.max(np.abs(peer))
            assert error < 8 * math.sqrt(count) * 2.0 ** -24, (layer.name, library, error)
    flops = 2 * layer.flops  # dx and dW, each as many multiply-adds as the forward
    benchmark.group = f"{layer.name} backward"
    benchmark.extra_info.update(gflop=flops / 1e9, backward_layer=layer.name, library=library)
    # Fifteen rounds: the small layers (the depthwise one: 2 ms) move by 30 % between rounds.
    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
