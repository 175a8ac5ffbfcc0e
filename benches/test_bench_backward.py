"""Convolution backward (dx and dw) in fastconv against TensorFlow's conv gradients, same run.

Run: ``PYTHONPATH=. pytest benches/test_bench_backward.py --benchmark-json=backward.json``, then
``python benches/report.py backward.json`` (or one JSON of the whole ``benches/`` run).
Each layer is one benchmark group with two entries: fastconv's ``conv2d_caffe_backward`` (NCHW,
OIHW) and TensorFlow's ``Conv2DBackpropInput`` + ``Conv2DBackpropFilter`` inside one
``tf.function`` (NHWC/HWIO, its preferred CPU layout; oneDNN on). Both results are checked
against each other before anything is timed. float32, group 1 (TensorFlow's CPU kernels do not
take grouped convolutions), Caffe's symmetric pad expressed to TensorFlow as explicit padding.
"""
import math
import os

import numpy as np
import pytest

import fastconv

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

# name: (batch, C, H=W, num_output, kernel, stride, pad)
LAYERS = {
    "alexnet_conv2": (4, 96, 27, 256, 5, 1, 2),
    "alexnet_conv3": (4, 256, 13, 384, 3, 1, 1),
    "vgg_conv3_1": (1, 128, 56, 256, 3, 1, 1),
    "vgg_conv4_1_s2": (1, 256, 28, 512, 3, 2, 1),
}


@pytest.fixture(scope="module", params=list(LAYERS), ids=str)
def layer(request):
    batch, channels, size, outputs, kernel, stride, pad = LAYERS[request.param]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels, size, size)).astype(np.float32)
    w = (rng.standard_normal((outputs, channels, kernel, kernel)) /
         math.sqrt(channels * kernel * kernel)).astype(np.float32)
    out = (size + 2 * pad - kernel) // stride + 1
    dy = rng.standard_normal((batch, outputs, out, out)).astype(np.float32)
    kwargs = dict(stride=stride, pad=pad)

    x_nhwc = tf.constant(x.transpose(0, 2, 3, 1))
    w_hwio = tf.constant(w.transpose(2, 3, 1, 0))
    dy_nhwc = tf.constant(dy.transpose(0, 2, 3, 1))
    padding = [[0, 0], [pad, pad], [pad, pad], [0, 0]]

    @tf.function
    def tf_backward():
        dx = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x_nhwc), filter=w_hwio, out_backprop=dy_nhwc,
            strides=[1, stride, stride, 1], padding="EXPLICIT", explicit_paddings=sum(padding, []))
        dw = tf.raw_ops.Conv2DBackpropFilter(
            input=x_nhwc, filter_sizes=tf.shape(w_hwio), out_backprop=dy_nhwc,
            strides=[1, stride, stride, 1], padding="EXPLICIT", explicit_paddings=sum(padding, []))
        return dx, dw

    # Check before timing: the two engines agree to float32 accuracy for K-term sums.
    dx, dw, _ = fastconv.conv2d_caffe_backward(x, w, dy, bias=False, **kwargs)
    tf_dx, tf_dw = (np.asarray(t) for t in tf_backward())
    for ours, theirs, terms in ((dx, tf_dx.transpose(0, 3, 1, 2), outputs * kernel * kernel),
                                (dw, tf_dw.transpose(3, 2, 0, 1), batch * out * out)):
        error = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
        assert error < 8 * math.sqrt(terms) * 2.0 ** -24, (request.param, error)
    flops = 2 * 2 * batch * outputs * out * out * channels * kernel * kernel  # dx + dw
    return request.param, (x, w, dy, kwargs), tf_backward, flops


def test_fastconv(benchmark, layer):
    name, (x, w, dy, kwargs), _, flops = layer
    benchmark.group = name
    benchmark.extra_info.update(gflop=flops / 1e9, backward_layer=name, library="fastconv")
    benchmark.pedantic(fastconv.conv2d_caffe_backward, args=(x, w, dy),
                       kwargs=dict(bias=False, **kwargs), rounds=5, warmup_rounds=1)


def test_tensorflow(benchmark, layer):
    name, _, tf_backward, flops = layer
    benchmark.group = name
    benchmark.extra_info.update(gflop=flops / 1e9, backward_layer=name, library="tensorflow")
    benchmark.pedantic(tf_backward, rounds=5, warmup_rounds=1)
