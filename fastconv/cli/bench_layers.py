"""The one list of benchmark layers: the benchmark suite's (benches/: forward, backward and
report.py) and ``fastconv bench``'s (its ``CLI_LAYERS`` subset).

Each layer is a Caffe Convolution: x (N, C, H, W), weights (O, C/group, kh, kw), symmetric pad.
``passes`` says which benches time it: "forward" (benches/test_bench_conv.py) and/or "backward"
(benches/test_bench_backward.py: dx and dW of one call).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    name: str
    batch: int
    channels: int
    height: int
    width: int
    num_output: int
    kernel: int
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    group: int = 1
    passes: tuple = ("forward",)

    @property
    def x_shape(self):
        return (self.batch, self.channels, self.height, self.width)

    @property
    def w_shape(self):
        return (self.num_output, self.channels // self.group, self.kernel, self.kernel)

    def out_size(self, size):
        extent = self.dilation * (self.kernel - 1) + 1
        return (size + 2 * self.pad - extent) // self.stride + 1

    @property
    def y_shape(self):
        return (self.batch, self.num_output, self.out_size(self.height), self.out_size(self.width))

    @property
    def flops(self):
        """Multiply-adds counted as two flops."""
        n, o, oh, ow = self.y_shape
        return 2 * n * o * oh * ow * (self.channels // self.group) * self.kernel ** 2

    @property
    def is_depthwise(self):
        return self.group == self.channels == self.num_output


LAYERS = [
    Layer("seed", 1, 3, 500, 500, 96, 11, stride=4),
    Layer("alexnet_conv1", 1, 3, 227, 227, 96, 11, stride=4),
    Layer("alexnet_conv1_b32", 32, 3, 227, 227, 96, 11, stride=4),
    Layer("alexnet_conv2_g2", 1, 96, 27, 27, 256, 5, pad=2, group=2),
    Layer("alexnet_conv3", 1, 256, 13, 13, 384, 3, pad=1),
    Layer("vgg_conv1_2", 1, 64, 224, 224, 64, 3, pad=1),
    Layer("vgg_conv3_2_b8", 8, 256, 56, 56, 256, 3, pad=1),
    Layer("resnet_1x1_a", 1, 256, 56, 56, 64, 1),
    Layer("resnet_1x1_b", 1, 1024, 14, 14, 256, 1),
    Layer("resnet_stem", 1, 3, 224, 224, 64, 7, stride=2, pad=3),
    Layer("mobilenet_dw", 1, 32, 112, 112, 32, 3, pad=1, group=32),
    Layer("dilated", 1, 64, 64, 64, 64, 3, pad=2, dilation=2),
    Layer("tiny", 1, 3, 8, 8, 4, 3, pad=1),
    # Backward: batches of a training step; group 1 or depthwise (TensorFlow's CPU gradient
    # kernels take no other groups).
    Layer("alexnet_conv2_b4", 4, 96, 27, 27, 256, 5, pad=2, passes=("backward",)),
    Layer("alexnet_conv3_b4", 4, 256, 13, 13, 384, 3, pad=1, passes=("backward",)),
    Layer("vgg_conv3_1", 1, 128, 56, 56, 256, 3, pad=1, passes=("backward",)),
    Layer("vgg_conv4_1_s2", 1, 256, 28, 28, 512, 3, stride=2, pad=1, passes=("backward",)),
    Layer("mobilenet_dw_b4", 4, 128, 56, 56, 128, 3, pad=1, group=128, passes=("backward",)),
]

FORWARD = [layer for layer in LAYERS if "forward" in layer.passes]
BACKWARD = [layer for layer in LAYERS if "backward" in layer.passes]

# The layers whose float32 speed is measured against the hardware's FMA peak.
LARGE = ("seed", "alexnet_conv1_b32", "vgg_conv1_2", "vgg_conv3_2_b8")

BY_NAME = {layer.name: layer for layer in LAYERS}

# ``fastconv bench``: a quick table on four layers of different shapes (a strided first layer,
# a grouped layer, a 1x1 layer, a dilated layer).
CLI_LAYERS = ("alexnet_conv1", "alexnet_conv2_g2", "resnet_1x1_a", "dilated")
