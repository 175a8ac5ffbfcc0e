#!/usr/bin/env python3
"""Write tests/data/caffe_nets/ from whole nets run in real Caffe 1.0 (the bullseye chroot).

    sudo sh tools/caffe_reference/setup_env.sh              # once: the chroot
    sudo python3 tools/caffe_reference/generate_nets.py     # rewrite the recorded nets
    sudo python3 tools/caffe_reference/generate_nets.py --check   # regenerate elsewhere, compare

Each net of the catalogue below is three files:

    <net>.prototxt     the deploy net as written here (new ``layer {}`` or V1 ``layers {}``)
    <net>.caffemodel   its weights: Caffe's fillers (seeded) and numpy-drawn blobs, saved by
                       Caffe's ``net.save``, or in the V1 format with legacy 4-D blob sizes
                       (written by net_worker.py, since Caffe 1.0 only writes the new format)
    <net>.npz          what real Caffe showed after loading both files and one TEST forward:
                       ``meta`` (JSON: inputs, outputs, [layer name, type], [blob name, shape],
                       [layer, parameter shapes], top and bottom names, as pycaffe shows them),
                       ``input/<i>`` (net.inputs order), ``f32/<i>`` (every blob in net.blobs
                       order, pycaffe's float32), ``f64/<i>`` (the same blobs from
                       caffe::Net<double>, the C++ API: pycaffe is float32 only) and
                       ``param/<i>/<j>`` (net.params order, after the forward) and
                       ``param64/<i>/<j>`` (Net<double>'s).

Every number comes from Caffe or from numpy's seeded legacy RandomState inside the chroot, and
the archives carry a fixed date, so a rerun is byte-identical.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate import command_line, write_npz  # noqa: E402

WORKER = HERE / "net_worker.py"
DOUBLE_SOURCE = HERE / "caffe_double.cpp"
DATA_DIR = HERE.parent.parent / "tests" / "data" / "caffe_nets"


def net(name, prototxt, *, seed=1, params=(), input_kinds=None, v1_caffemodel=False,
        legacy_blob_dims=False, training_layers=False):
    return {"name": name, "prototxt": prototxt.lstrip("\n"), "seed": seed,
            "params": [list(p) for p in params], "input_kinds": input_kinds or {},
            "v1_caffemodel": v1_caffemodel, "legacy_blob_dims": legacy_blob_dims,
            "training_layers": training_layers}


def batch_norm_params(layer, mean="normal:0.3", var="uniform:0.5:2", factor="const:1"):
    """A deploy BatchNorm's three blobs: the running sums of mean and variance and the factor
    they are divided by."""
    return [(layer, 0, mean), (layer, 1, var), (layer, 2, factor)]


def scale_params(layer, bias=True):
    return [(layer, 0, "uniform:0.5:1.5")] + ([(layer, 1, "normal:0.2")] if bias else [])


# ---------------------------------------------------------------------------------------------
# The catalogue. Widths and spatial sizes are reduced so the data stays small; the layouts,
# parameters and layer sequences are those of the original nets.

ALEXNET = """
name: "AlexNet"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 3 dim: 103 dim: 103 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 16 kernel_size: 11 stride: 4
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 k: 2 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 32 pad: 2 kernel_size: 5 group: 2
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "norm2" type: "LRN" bottom: "conv2" top: "norm2"
  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "pool2" type: "Pooling" bottom: "norm2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
  convolution_param { num_output: 48 pad: 1 kernel_size: 3
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "conv4" type: "Convolution" bottom: "conv3" top: "conv4"
  convolution_param { num_output: 48 pad: 1 kernel_size: 3 group: 2
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu4" type: "ReLU" bottom: "conv4" top: "conv4" }
layer { name: "conv5" type: "Convolution" bottom: "conv4" top: "conv5"
  convolution_param { num_output: 32 pad: 1 kernel_size: 3 group: 2
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu5" type: "ReLU" bottom: "conv5" top: "conv5" }
layer { name: "pool5" type: "Pooling" bottom: "conv5" top: "pool5"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool5" top: "fc6"
  inner_product_param { num_output: 64
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
  inner_product_param { num_output: 64
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu7" type: "ReLU" bottom: "fc7" top: "fc7" }
layer { name: "drop7" type: "Dropout" bottom: "fc7" top: "fc7" dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc8" type: "InnerProduct" bottom: "fc7" top: "fc8"
  inner_product_param { num_output: 10
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc8" top: "prob" }
"""

# CaffeNet's order (pool before norm) in the V1 format of the original Model Zoo files.
CAFFENET_V1 = """
name: "CaffeNetV1"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 67
input_dim: 67
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 16 kernel_size: 11 stride: 4
    weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0.5 } } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layers { name: "norm1" type: LRN bottom: "pool1" top: "norm1"
  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layers { name: "conv2" type: CONVOLUTION bottom: "norm1" top: "conv2"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 32 pad: 2 kernel_size: 5 group: 2
    weight_filler { type: "gaussian" std: 0.05 } bias_filler { type: "constant" value: 1 } } }
layers { name: "relu2" type: RELU bottom: "conv2" top: "conv2" }
layers { name: "pool2" type: POOLING bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layers { name: "norm2" type: LRN bottom: "pool2" top: "norm2"
  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layers { name: "conv3" type: CONVOLUTION bottom: "norm2" top: "conv3"
  convolution_param { num_output: 48 pad: 1 kernel_size: 3
    weight_filler { type: "gaussian" std: 0.05 } bias_filler { type: "constant" value: 0 } } }
layers { name: "relu3" type: RELU bottom: "conv3" top: "conv3" }
layers { name: "conv4" type: CONVOLUTION bottom: "conv3" top: "conv4"
  convolution_param { num_output: 48 pad: 1 kernel_size: 3 group: 2
    weight_filler { type: "gaussian" std: 0.05 } bias_filler { type: "constant" value: 1 } } }
layers { name: "relu4" type: RELU bottom: "conv4" top: "conv4" }
layers { name: "conv5" type: CONVOLUTION bottom: "conv4" top: "conv5"
  convolution_param { num_output: 32 pad: 1 kernel_size: 3 group: 2
    weight_filler { type: "gaussian" std: 0.05 } bias_filler { type: "constant" value: 1 } } }
layers { name: "relu5" type: RELU bottom: "conv5" top: "conv5" }
layers { name: "pool5" type: POOLING bottom: "conv5" top: "pool5"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layers { name: "fc6" type: INNER_PRODUCT bottom: "pool5" top: "fc6"
  inner_product_param { num_output: 32
    weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 1 } } }
layers { name: "relu6" type: RELU bottom: "fc6" top: "fc6" }
layers { name: "drop6" type: DROPOUT bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 } }
layers { name: "fc7" type: INNER_PRODUCT bottom: "fc6" top: "fc7"
  inner_product_param { num_output: 32
    weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 1 } } }
layers { name: "relu7" type: RELU bottom: "fc7" top: "fc7" }
layers { name: "drop7" type: DROPOUT bottom: "fc7" top: "fc7" dropout_param { dropout_ratio: 0.5 } }
layers { name: "fc8" type: INNER_PRODUCT bottom: "fc7" top: "fc8"
  inner_product_param { num_output: 10
    weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "constant" value: 0 } } }
layers { name: "prob" type: SOFTMAX bottom: "fc8" top: "prob" }
"""


def _bottleneck(block, bottom, out, mid, stride, projection):
    """One ResNet-50 bottleneck block, with the official prototxt's names and in-place
    BatchNorm / Scale / ReLU layers."""
    def conv(name, bottom, num_output, kernel, stride=1, pad=0):
        return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
                f'  convolution_param {{ num_output: {num_output} kernel_size: {kernel} '
                f'pad: {pad} stride: {stride} bias_term: false\n'
                f'    weight_filler {{ type: "msra" }} }} }}\n')

    def bn_scale(suffix, top):
        return (f'layer {{ name: "bn{suffix}" type: "BatchNorm" bottom: "{top}" top: "{top}"\n'
                f'  batch_norm_param {{ use_global_stats: true }} }}\n'
                f'layer {{ name: "scale{suffix}" type: "Scale" bottom: "{top}" top: "{top}"\n'
                f'  scale_param {{ bias_term: true }} }}\n')

    def relu(top):
        return f'layer {{ name: "{top}_relu" type: "ReLU" bottom: "{top}" top: "{top}" }}\n'

    text, shortcut = "", bottom
    if projection:
        shortcut = f"res{block}_branch1"
        text += conv(shortcut, bottom, out, 1, stride) + bn_scale(f"{block}_branch1", shortcut)
    a, b, c = (f"res{block}_branch2{x}" for x in "abc")
    text += conv(a, bottom, mid, 1, stride) + bn_scale(f"{block}_branch2a", a) + relu(a)
    text += conv(b, a, mid, 3, 1, 1) + bn_scale(f"{block}_branch2b", b) + relu(b)
    text += conv(c, b, out, 1) + bn_scale(f"{block}_branch2c", c)
    text += (f'layer {{ name: "res{block}" type: "Eltwise" bottom: "{shortcut}" bottom: "{c}" '
             f'top: "res{block}" }}\n') + relu(f"res{block}")
    bn_layers = ([f"bn{block}_branch1"] if projection else []) + \
        [f"bn{block}_branch2{x}" for x in "abc"]
    return text, bn_layers


def resnet():
    first, first_bn = _bottleneck("2a", "data", 32, 8, 2, projection=True)
    second, second_bn = _bottleneck("2b", "res2a", 32, 8, 1, projection=False)
    text = ('name: "ResNetBottlenecks"\n'
            'layer { name: "data" type: "Input" top: "data"\n'
            '  input_param { shape: { dim: 2 dim: 16 dim: 8 dim: 8 } } }\n'
            + first + second +
            'layer { name: "pool5" type: "Pooling" bottom: "res2b" top: "pool5"\n'
            '  pooling_param { pool: AVE global_pooling: true } }\n'
            'layer { name: "fc10" type: "InnerProduct" bottom: "pool5" top: "fc10"\n'
            '  inner_product_param { num_output: 10 weight_filler { type: "xavier" }\n'
            '    bias_filler { type: "gaussian" std: 0.1 } } }\n'
            'layer { name: "prob" type: "Softmax" bottom: "fc10" top: "prob" }\n')
    params = []
    for i, layer in enumerate(first_bn + second_bn):
        if i % 2:  # a trained model's moving-average factor, with its accumulated sums
            params += batch_norm_params(layer, "normal:300", "uniform:500:2000", "const:999.982")
        else:
            params += batch_norm_params(layer)
        params += scale_params(layer.replace("bn", "scale", 1))
    return net("resnet_bottleneck", text, seed=3, params=params)


def _conv_relu(name, bottom, num_output, kernel, stride=1, pad=0):
    """GoogLeNet's convolution + in-place ReLU pair, named like ``conv2/3x3``, ``conv2/relu_3x3``."""
    relu_name = name.replace("/", "/relu_", 1)
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
            f'  param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}\n'
            f'  convolution_param {{ num_output: {num_output} kernel_size: {kernel} '
            f'stride: {stride} pad: {pad}\n'
            f'    weight_filler {{ type: "xavier" std: 0.1 }} '
            f'bias_filler {{ type: "constant" value: 0.2 }} }} }}\n'
            f'layer {{ name: "{relu_name}" type: "ReLU" bottom: "{name}" top: "{name}" }}\n')


INCEPTION = (
    'name: "GoogLeNetInception"\n'
    'layer { name: "data" type: "Input" top: "data"\n'
    '  input_param { shape: { dim: 2 dim: 3 dim: 12 dim: 12 } } }\n'
    + _conv_relu("conv1/7x7_s2", "data", 8, 7, 2, 3) +
    'layer { name: "pool1/3x3_s2" type: "Pooling" bottom: "conv1/7x7_s2" top: "pool1/3x3_s2"\n'
    '  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n'
    'layer { name: "pool1/norm1" type: "LRN" bottom: "pool1/3x3_s2" top: "pool1/norm1"\n'
    '  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }\n'
    + _conv_relu("conv2/3x3_reduce", "pool1/norm1", 8, 1)
    + _conv_relu("conv2/3x3", "conv2/3x3_reduce", 12, 3, 1, 1) +
    'layer { name: "conv2/norm2" type: "LRN" bottom: "conv2/3x3" top: "conv2/norm2"\n'
    '  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }\n'
    + _conv_relu("inception_3a/1x1", "conv2/norm2", 4, 1)
    + _conv_relu("inception_3a/3x3_reduce", "conv2/norm2", 4, 1)
    + _conv_relu("inception_3a/3x3", "inception_3a/3x3_reduce", 6, 3, 1, 1)
    + _conv_relu("inception_3a/5x5_reduce", "conv2/norm2", 2, 1)
    + _conv_relu("inception_3a/5x5", "inception_3a/5x5_reduce", 3, 5, 1, 2) +
    'layer { name: "inception_3a/pool" type: "Pooling" bottom: "conv2/norm2"\n'
    '  top: "inception_3a/pool" pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }\n'
    + _conv_relu("inception_3a/pool_proj", "inception_3a/pool", 3, 1) +
    'layer { name: "inception_3a/output" type: "Concat" bottom: "inception_3a/1x1"\n'
    '  bottom: "inception_3a/3x3" bottom: "inception_3a/5x5" bottom: "inception_3a/pool_proj"\n'
    '  top: "inception_3a/output" }\n'
    'layer { name: "pool5/7x7_s1" type: "Pooling" bottom: "inception_3a/output"\n'
    '  top: "pool5/7x7_s1" pooling_param { pool: AVE kernel_size: 3 stride: 1 } }\n'
    'layer { name: "pool5/drop_7x7_s1" type: "Dropout" bottom: "pool5/7x7_s1"\n'
    '  top: "pool5/7x7_s1" dropout_param { dropout_ratio: 0.4 } }\n'
    'layer { name: "loss3/classifier" type: "InnerProduct" bottom: "pool5/7x7_s1"\n'
    '  top: "loss3/classifier" inner_product_param { num_output: 10\n'
    '    weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0 } } }\n'
    'layer { name: "prob" type: "Softmax" bottom: "loss3/classifier" top: "prob" }\n'
)

# FCN-8s's skeleton: padded first conv, score layers, learnable and bilinear (grouped)
# Deconvolution, Crop against a reference blob, fusion by Eltwise, Softmax over channels.
FCN = """
name: "FCN"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 3 dim: 10 dim: 12 } } }
layer { name: "conv1_1" type: "Convolution" bottom: "data" top: "conv1_1"
  convolution_param { num_output: 8 pad: 10 kernel_size: 3
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1_1" type: "ReLU" bottom: "conv1_1" top: "conv1_1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1_1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2_1" type: "Convolution" bottom: "pool1" top: "conv2_1"
  convolution_param { num_output: 8 pad: 1 kernel_size: 3
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu2_1" type: "ReLU" bottom: "conv2_1" top: "conv2_1" }
layer { name: "pool2" type: "Pooling" bottom: "conv2_1" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc6" type: "Convolution" bottom: "pool2" top: "fc6"
  convolution_param { num_output: 16 kernel_size: 3
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 } }
layer { name: "score_fr" type: "Convolution" bottom: "fc6" top: "score_fr"
  convolution_param { num_output: 5 kernel_size: 1
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "upscore2" type: "Deconvolution" bottom: "score_fr" top: "upscore2"
  param { lr_mult: 0 }
  convolution_param { num_output: 5 bias_term: false kernel_size: 4 stride: 2
    weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "score_pool1" type: "Convolution" bottom: "pool1" top: "score_pool1"
  convolution_param { num_output: 5 kernel_size: 1
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "score_pool1c" type: "Crop" bottom: "score_pool1" bottom: "upscore2"
  top: "score_pool1c" crop_param { axis: 2 offset: 1 } }
layer { name: "fuse_pool1" type: "Eltwise" bottom: "upscore2" bottom: "score_pool1c"
  top: "fuse_pool1" eltwise_param { operation: SUM } }
layer { name: "upscore" type: "Deconvolution" bottom: "fuse_pool1" top: "upscore"
  param { lr_mult: 0 }
  convolution_param { num_output: 5 group: 5 bias_term: false kernel_size: 4 stride: 2
    weight_filler { type: "bilinear" } } }
layer { name: "score" type: "Crop" bottom: "upscore" bottom: "data" top: "score"
  crop_param { axis: 2 offset: 7 offset: 9 } }
layer { name: "prob" type: "Softmax" bottom: "score" top: "prob" }
"""

ACTIVATIONS = """
name: "Activations"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 3 dim: 4 dim: 5 } } }
layer { name: "relu_leaky" type: "ReLU" bottom: "data" top: "relu_leaky"
  relu_param { negative_slope: 0.1 } }
layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }
layer { name: "prelu" type: "PReLU" bottom: "data" top: "prelu" }
layer { name: "prelu_shared" type: "PReLU" bottom: "data" top: "prelu_shared"
  prelu_param { channel_shared: true } }
layer { name: "elu" type: "ELU" bottom: "data" top: "elu" elu_param { alpha: 0.5 } }
layer { name: "elu_leaky" type: "ReLU" bottom: "elu" top: "elu" relu_param { negative_slope: 0.3 } }
layer { name: "elu_default" type: "ELU" bottom: "data" top: "elu_default" }
layer { name: "sigmoid" type: "Sigmoid" bottom: "data" top: "sigmoid" }
layer { name: "tanh" type: "TanH" bottom: "data" top: "tanh" }
layer { name: "tanh_power" type: "Power" bottom: "tanh" top: "tanh"
  power_param { scale: 3 shift: -0.5 } }
layer { name: "absval" type: "AbsVal" bottom: "data" top: "absval" }
layer { name: "bnll" type: "BNLL" bottom: "data" top: "bnll" }
layer { name: "power" type: "Power" bottom: "data" top: "power"
  power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "power_sqrt" type: "Power" bottom: "data" top: "power_sqrt"
  power_param { power: 0.5 scale: 2 shift: 3 } }
layer { name: "power_default" type: "Power" bottom: "data" top: "power_default" }
layer { name: "exp" type: "Exp" bottom: "data" top: "exp" }
layer { name: "exp_base2" type: "Exp" bottom: "data" top: "exp_base2"
  exp_param { base: 2 scale: 0.5 shift: 0.25 } }
layer { name: "log" type: "Log" bottom: "data" top: "log" log_param { shift: 2 } }
layer { name: "log_base10" type: "Log" bottom: "data" top: "log_base10"
  log_param { base: 10 scale: 2 shift: 3 } }
layer { name: "threshold" type: "Threshold" bottom: "data" top: "threshold"
  threshold_param { threshold: 0.2 } }
"""

NORMALIZATION = """
name: "LRNs"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 7 dim: 5 dim: 6 } } }
layer { name: "lrn_across_k2" type: "LRN" bottom: "data" top: "lrn_across_k2"
  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "lrn_default" type: "LRN" bottom: "data" top: "lrn_default" }
layer { name: "lrn_within" type: "LRN" bottom: "data" top: "lrn_within"
  lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.5 beta: 0.6 k: 3 } }
layer { name: "lrn_within5" type: "LRN" bottom: "data" top: "lrn_within5"
  lrn_param { norm_region: WITHIN_CHANNEL local_size: 5 alpha: 2 beta: 0.75 } }
"""

BN_SCALE_BIAS = """
name: "BatchNormScaleBias"
layer { name: "input" type: "Input" top: "data" top: "coeffs" top: "offsets"
  input_param { shape: { dim: 2 dim: 3 dim: 4 dim: 5 } shape: { dim: 2 dim: 3 }
                shape: { dim: 3 dim: 4 } } }
layer { name: "bn_factor0" type: "BatchNorm" bottom: "data" top: "bn_factor0"
  batch_norm_param { use_global_stats: true } }
layer { name: "bn_factor_eps" type: "BatchNorm" bottom: "data" top: "bn_factor_eps"
  batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "bn_default" type: "BatchNorm" bottom: "data" top: "bn_default" }
layer { name: "scale_bias" type: "Scale" bottom: "data" top: "scale_bias"
  scale_param { bias_term: true } }
layer { name: "scale_two_axes" type: "Scale" bottom: "data" top: "scale_two_axes"
  scale_param { axis: 1 num_axes: 2 } }
layer { name: "scale_scalar" type: "Scale" bottom: "data" top: "scale_scalar"
  scale_param { num_axes: 0 } }
layer { name: "scale_all_axes" type: "Scale" bottom: "data" top: "scale_all_axes"
  scale_param { axis: 0 num_axes: -1 } }
layer { name: "scale_bottom" type: "Scale" bottom: "data" bottom: "coeffs" top: "scale_bottom"
  scale_param { axis: 0 } }
layer { name: "scale_bottom_bias" type: "Scale" bottom: "data" bottom: "coeffs"
  top: "scale_bottom_bias" scale_param { axis: 0 bias_term: true } }
layer { name: "scale_negative_axis" type: "Scale" bottom: "data" top: "scale_negative_axis"
  scale_param { axis: -1 } }
layer { name: "bias" type: "Bias" bottom: "data" top: "bias" }
layer { name: "bias_bottom" type: "Bias" bottom: "data" bottom: "offsets" top: "bias_bottom" }
layer { name: "bias_two_axes" type: "Bias" bottom: "data" top: "bias_two_axes"
  bias_param { axis: 2 num_axes: 2 } }
"""

SHAPES = """
name: "ShapesAndMerges"
layer { name: "input" type: "Input" top: "data" top: "ref" top: "ref4"
  input_param { shape: { dim: 2 dim: 6 dim: 4 dim: 5 } shape: { dim: 2 dim: 6 dim: 3 dim: 3 }
                shape: { dim: 2 dim: 3 dim: 3 dim: 4 } } }
layer { name: "sig" type: "Sigmoid" bottom: "data" top: "sig" }
layer { name: "tan" type: "TanH" bottom: "data" top: "tan" }
layer { name: "concat_channels" type: "Concat" bottom: "sig" bottom: "tan" top: "concat_channels" }
layer { name: "concat_height" type: "Concat" bottom: "sig" bottom: "tan" bottom: "data"
  top: "concat_height" concat_param { axis: 2 } }
layer { name: "concat_last" type: "Concat" bottom: "sig" bottom: "tan" top: "concat_last"
  concat_param { axis: -1 } }
layer { name: "slice_channels" type: "Slice" bottom: "data"
  top: "slice_a" top: "slice_b" top: "slice_c" slice_param { axis: 1 slice_point: 1 slice_point: 4 } }
layer { name: "slice_even" type: "Slice" bottom: "data" top: "half_0" top: "half_1"
  slice_param { axis: 2 } }
layer { name: "split_explicit" type: "Split" bottom: "data" top: "copy_a" top: "copy_b" }
layer { name: "flatten" type: "Flatten" bottom: "data" top: "flatten" }
layer { name: "flatten_middle" type: "Flatten" bottom: "data" top: "flatten_middle"
  flatten_param { axis: 1 end_axis: 2 } }
layer { name: "reshape" type: "Reshape" bottom: "data" top: "reshape"
  reshape_param { shape { dim: 0 dim: -1 dim: 10 } } }
layer { name: "reshape_zeros" type: "Reshape" bottom: "data" top: "reshape_zeros"
  reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } } }
layer { name: "reshape_axis" type: "Reshape" bottom: "data" top: "reshape_axis"
  reshape_param { shape { dim: 3 dim: -1 } axis: 1 num_axes: 2 } }
layer { name: "reshape_append" type: "Reshape" bottom: "data" top: "reshape_append"
  reshape_param { shape { dim: 1 } axis: -1 num_axes: 0 } }
layer { name: "crop_spatial" type: "Crop" bottom: "data" bottom: "ref" top: "crop_spatial"
  crop_param { offset: 1 } }
layer { name: "crop_per_axis" type: "Crop" bottom: "data" bottom: "ref4" top: "crop_per_axis"
  crop_param { axis: 1 offset: 2 offset: 1 offset: 0 } }
layer { name: "argmax" type: "ArgMax" bottom: "data" top: "argmax" }
layer { name: "argmax_top3_values" type: "ArgMax" bottom: "data" top: "argmax_top3_values"
  argmax_param { top_k: 3 out_max_val: true } }
layer { name: "argmax_channels" type: "ArgMax" bottom: "data" top: "argmax_channels"
  argmax_param { axis: 1 } }
layer { name: "argmax_channels_values" type: "ArgMax" bottom: "data"
  top: "argmax_channels_values" argmax_param { axis: 1 top_k: 2 out_max_val: true } }
layer { name: "sum_coeff" type: "Eltwise" bottom: "sig" bottom: "tan" top: "sum_coeff"
  eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }
layer { name: "sum3" type: "Eltwise" bottom: "sig" bottom: "tan" bottom: "data" top: "sum3" }
layer { name: "prod" type: "Eltwise" bottom: "sig" bottom: "tan" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "max3" type: "Eltwise" bottom: "sig" bottom: "tan" bottom: "data" top: "max3"
  eltwise_param { operation: MAX } }
layer { name: "drop" type: "Dropout" bottom: "data" top: "drop" dropout_param { dropout_ratio: 0.3 } }
layer { name: "softmax" type: "Softmax" bottom: "data" top: "softmax" }
layer { name: "softmax_last" type: "Softmax" bottom: "data" top: "softmax_last"
  softmax_param { axis: -1 } }
layer { name: "softmax_batch" type: "Softmax" bottom: "data" top: "softmax_batch"
  softmax_param { axis: 0 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" }
    bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ip_axis2" type: "InnerProduct" bottom: "data" top: "ip_axis2"
  inner_product_param { num_output: 3 axis: 2 weight_filler { type: "xavier" }
    bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ip_transpose" type: "InnerProduct" bottom: "data" top: "ip_transpose"
  inner_product_param { num_output: 4 transpose: true weight_filler { type: "xavier" }
    bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ip_no_bias" type: "InnerProduct" bottom: "data" top: "ip_no_bias"
  inner_product_param { num_output: 2 axis: -1 bias_term: false
    weight_filler { type: "gaussian" std: 0.5 } } }
"""

CONV_POOL = """
name: "ConvolutionsAndPoolings"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 4 dim: 9 dim: 10 } } }
layer { name: "conv_grouped" type: "Convolution" bottom: "data" top: "conv_grouped"
  convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1
    pad_h: 1 pad_w: 0 group: 2
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "conv_dilated" type: "Convolution" bottom: "data" top: "conv_dilated"
  convolution_param { num_output: 4 kernel_size: 3 dilation: 2 pad: 2
    weight_filler { type: "msra" } bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "conv_no_bias" type: "Convolution" bottom: "data" top: "conv_no_bias"
  convolution_param { num_output: 3 kernel_size: 1 stride: 2 bias_term: false
    weight_filler { type: "uniform" min: -0.5 max: 0.5 } } }
layer { name: "deconv" type: "Deconvolution" bottom: "data" top: "deconv"
  convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "deconv_grouped" type: "Deconvolution" bottom: "data" top: "deconv_grouped"
  convolution_param { num_output: 4 group: 2 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.25 } } }
layer { name: "pool_max_pad" type: "Pooling" bottom: "data" top: "pool_max_pad"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool_ave_pad" type: "Pooling" bottom: "data" top: "pool_ave_pad"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool_ave_hw" type: "Pooling" bottom: "data" top: "pool_ave_hw"
  pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1 } }
layer { name: "pool_max_ceil" type: "Pooling" bottom: "data" top: "pool_max_ceil"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool_global_max" type: "Pooling" bottom: "data" top: "pool_global_max"
  pooling_param { pool: MAX global_pooling: true } }
layer { name: "pool_global_ave" type: "Pooling" bottom: "data" top: "pool_global_ave"
  pooling_param { pool: AVE global_pooling: true } }
"""

# New-style layers with the old-style net inputs (``input`` + ``input_shape``), two of them.
OLD_INPUT_SHAPE = """
name: "OldStyleInputShape"
input: "data"
input_shape { dim: 2 dim: 3 dim: 6 dim: 7 }
input: "gate"
input_shape { dim: 2 dim: 4 dim: 6 dim: 7 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "gated" type: "Eltwise" bottom: "conv" bottom: "gate" top: "gated"
  eltwise_param { operation: PROD } }
layer { name: "prelu" type: "PReLU" bottom: "gated" top: "gated" }
layer { name: "pool" type: "Pooling" bottom: "gated" top: "pool"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
"""

# The V1 text format for the layer types it has, old-style inputs (input + input_dim), V1
# field spellings (concat_dim, slice_dim), a TRAIN-only layer, and a V1 binary .caffemodel with
# legacy blob sizes.
V1_LAYERS = """
name: "V1Layers"
input: "data"
input_dim: 2
input_dim: 4
input_dim: 6
input_dim: 6
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  convolution_param { num_output: 6 kernel_size: 3 pad: 1
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" relu_param { negative_slope: 0.2 } }
layers { name: "deconv" type: DECONVOLUTION bottom: "conv" top: "deconv"
  convolution_param { num_output: 2 kernel_size: 2 stride: 2
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layers { name: "sigmoid" type: SIGMOID bottom: "pool" top: "sigmoid" }
layers { name: "tanh" type: TANH bottom: "pool" top: "tanh" }
layers { name: "absval" type: ABSVAL bottom: "pool" top: "absval" }
layers { name: "bnll" type: BNLL bottom: "pool" top: "bnll" }
layers { name: "power" type: POWER bottom: "pool" top: "power"
  power_param { power: 3 scale: 0.5 shift: 0.1 } }
layers { name: "exp" type: EXP bottom: "pool" top: "exp" exp_param { base: 3 } }
layers { name: "threshold" type: THRESHOLD bottom: "pool" top: "threshold"
  threshold_param { threshold: -0.1 } }
layers { name: "sum" type: ELTWISE bottom: "sigmoid" bottom: "tanh" top: "sum"
  eltwise_param { operation: SUM coeff: 2 coeff: -1 } }
layers { name: "max" type: ELTWISE bottom: "absval" bottom: "bnll" top: "max"
  eltwise_param { operation: MAX } }
layers { name: "concat" type: CONCAT bottom: "sum" bottom: "max" top: "concat"
  concat_param { concat_dim: 1 } }
layers { name: "slice" type: SLICE bottom: "concat" top: "slice_a" top: "slice_b"
  slice_param { slice_dim: 1 slice_point: 4 } }
layers { name: "split" type: SPLIT bottom: "slice_b" top: "split_a" top: "split_b" }
layers { name: "lrn" type: LRN bottom: "split_a" top: "lrn"
  lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.3 beta: 0.5 } }
layers { name: "flatten" type: FLATTEN bottom: "lrn" top: "flatten" }
layers { name: "ip" type: INNER_PRODUCT bottom: "flatten" top: "ip"
  inner_product_param { num_output: 5
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layers { name: "drop" type: DROPOUT bottom: "ip" top: "ip" dropout_param { dropout_ratio: 0.2 } }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }
layers { name: "argmax" type: ARGMAX bottom: "split_b" top: "argmax"
  argmax_param { top_k: 2 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss"
  include { phase: TRAIN } }
"""


def mobilenet():
    """MobileNet v1's Caffe port: depthwise convolutions (group = channels), BatchNorm + Scale +
    ReLU after each, global average pooling and a 1x1 convolution as the classifier."""
    def unit(name, bottom, num_output, kernel, stride=1, pad=0, group=1):
        return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
                f'  convolution_param {{ num_output: {num_output} kernel_size: {kernel} '
                f'stride: {stride} pad: {pad} group: {group} bias_term: false\n'
                f'    weight_filler {{ type: "msra" }} }} }}\n'
                f'layer {{ name: "{name}/bn" type: "BatchNorm" bottom: "{name}" top: "{name}" }}\n'
                f'layer {{ name: "{name}/scale" type: "Scale" bottom: "{name}" top: "{name}"\n'
                f'  scale_param {{ bias_term: true }} }}\n'
                f'layer {{ name: "relu{name[4:]}" type: "ReLU" bottom: "{name}" top: "{name}" }}\n')
    units = [("conv1", "data", 8, 3, 2, 1, 1), ("conv2_1/dw", "conv1", 8, 3, 1, 1, 8),
             ("conv2_1/sep", "conv2_1/dw", 16, 1, 1, 0, 1),
             ("conv2_2/dw", "conv2_1/sep", 16, 3, 2, 1, 16),
             ("conv2_2/sep", "conv2_2/dw", 16, 1, 1, 0, 1)]
    text = ('name: "MobileNet"\n'
            'layer { name: "data" type: "Input" top: "data"\n'
            '  input_param { shape: { dim: 2 dim: 3 dim: 16 dim: 16 } } }\n'
            + "".join(unit(*u) for u in units) +
            'layer { name: "pool6" type: "Pooling" bottom: "conv2_2/sep" top: "pool6"\n'
            '  pooling_param { pool: AVE global_pooling: true } }\n'
            'layer { name: "fc7" type: "Convolution" bottom: "pool6" top: "fc7"\n'
            '  convolution_param { num_output: 10 kernel_size: 1\n'
            '    weight_filler { type: "msra" } bias_filler { type: "constant" value: 0.1 } } }\n'
            'layer { name: "prob" type: "Softmax" bottom: "fc7" top: "prob" }\n')
    params = []
    for name, *_ in units:
        params += batch_norm_params(f"{name}/bn") + scale_params(f"{name}/scale")
    return net("mobilenet", text, seed=13, params=params)


# Layers kept or dropped by Caffe's include/exclude rules against the net's state (TEST phase,
# level 0, the prototxt's own stage "deploy"), as in train_val files used for deployment.
PHASE_RULES = """
name: "PhaseRules"
state { stage: "deploy" }
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 3 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "drop_train" type: "Dropout" bottom: "conv" top: "conv"
  include { phase: TRAIN } }
layer { name: "relu_test" type: "ReLU" bottom: "conv" top: "conv"
  relu_param { negative_slope: 0.25 } include { phase: TEST } }
layer { name: "scale_deploy" type: "Power" bottom: "conv" top: "scaled"
  power_param { scale: 2 } include { stage: "deploy" } }
layer { name: "not_in_deploy" type: "Power" bottom: "conv" top: "not_in_deploy"
  exclude { stage: "deploy" } }
layer { name: "level_1_only" type: "AbsVal" bottom: "conv" top: "level_1_only"
  include { min_level: 1 } }
layer { name: "level_0" type: "TanH" bottom: "conv" top: "level_0" include { max_level: 0 } }
layer { name: "either_rule" type: "Sigmoid" bottom: "conv" top: "either_rule"
  include { phase: TRAIN } include { stage: "deploy" } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv" bottom: "label" top: "loss"
  include { phase: TRAIN } }
"""

# use_global_stats: false in a deploy net: Caffe normalises with the batch's own statistics in
# TEST too, and the forward updates the stored running sums (recorded after the forward).
BATCHNORM_BATCH_STATS = """
name: "BatchNormBatchStatistics"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 4 dim: 3 dim: 3 dim: 5 } } }
layer { name: "bn_batch" type: "BatchNorm" bottom: "data" top: "bn_batch"
  batch_norm_param { use_global_stats: false moving_average_fraction: 0.9 eps: 0.0001 } }
layer { name: "scale" type: "Scale" bottom: "bn_batch" top: "bn_batch"
  scale_param { bias_term: true } }
"""

# New-format layers and .caffemodel, but every stored blob with the legacy 4-D sizes
# (num, channels, height, width) instead of a shape, as in files converted from V1.
LEGACY_BLOB_DIMS = """
name: "LegacyBlobDims"
layer { name: "data" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 stride: 2
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
  inner_product_param { num_output: 5
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "fc_t" type: "InnerProduct" bottom: "fc" top: "fc_t"
  inner_product_param { num_output: 3 transpose: true
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
"""

# Boundaries: windows wider than the blob, degenerate Power, batch-axis Concat/Slice,
# negative axes, 2-D blobs, a dilated Deconvolution.
EDGE_CASES = """
name: "EdgeCases"
layer { name: "input" type: "Input" top: "data" top: "ref"
  input_param { shape: { dim: 2 dim: 3 dim: 4 dim: 5 } shape: { dim: 1 dim: 1 dim: 1 dim: 3 } } }
layer { name: "lrn_wide" type: "LRN" bottom: "data" top: "lrn_wide"
  lrn_param { local_size: 7 alpha: 0.8 beta: 0.6 k: 0.5 } }
layer { name: "lrn_within_wide" type: "LRN" bottom: "data" top: "lrn_within_wide"
  lrn_param { norm_region: WITHIN_CHANNEL local_size: 5 alpha: 1.5 beta: 0.9 } }
layer { name: "power_zero" type: "Power" bottom: "data" top: "power_zero"
  power_param { power: 0 scale: 3 shift: 2 } }
layer { name: "power_scale_zero" type: "Power" bottom: "data" top: "power_scale_zero"
  power_param { power: 3 scale: 0 shift: 2 } }
layer { name: "power_negative" type: "Power" bottom: "data" top: "power_negative"
  power_param { power: -1.5 scale: 0.5 shift: 2 } }
layer { name: "log_base2" type: "Log" bottom: "data" top: "log_base2"
  log_param { base: 2 scale: 0.5 shift: 1 } }
layer { name: "exp_scaled" type: "Exp" bottom: "data" top: "exp_scaled"
  exp_param { scale: -2 shift: 0.5 } }
layer { name: "concat_batch" type: "Concat" bottom: "data" bottom: "lrn_wide"
  top: "concat_batch" concat_param { axis: 0 } }
layer { name: "slice_batch" type: "Slice" bottom: "concat_batch" top: "batch_a" top: "batch_b"
  top: "batch_c" slice_param { axis: 0 slice_point: 1 slice_point: 3 } }
layer { name: "crop_width" type: "Crop" bottom: "data" bottom: "ref" top: "crop_width"
  crop_param { axis: -1 offset: 2 } }
layer { name: "argmax_last" type: "ArgMax" bottom: "data" top: "argmax_last"
  argmax_param { axis: -1 top_k: 2 } }
layer { name: "flatten_tail" type: "Flatten" bottom: "data" top: "flatten_tail"
  flatten_param { axis: -2 } }
layer { name: "prod3" type: "Eltwise" bottom: "data" bottom: "lrn_wide" bottom: "power_negative"
  top: "prod3" eltwise_param { operation: PROD } }
layer { name: "pool_global_nonsquare" type: "Pooling" bottom: "data" top: "pool_global_nonsquare"
  pooling_param { pool: MAX global_pooling: true } }
layer { name: "pool_ave_clipped" type: "Pooling" bottom: "data" top: "pool_ave_clipped"
  pooling_param { pool: AVE kernel_size: 3 stride: 3 pad: 2 } }
layer { name: "deconv_dilated" type: "Deconvolution" bottom: "data" top: "deconv_dilated"
  convolution_param { num_output: 2 kernel_size: 2 dilation: 2 stride: 2 pad: 1
    weight_filler { type: "xavier" } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" }
    bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "fc_softmax" type: "Softmax" bottom: "fc" top: "fc_softmax" }
"""

# Caffe's behaviour where a port may reasonably differ: Eltwise in place (Caffe sets the top
# before it reads the bottoms), a zero Eltwise coefficient on a bottom holding inf (the BLAS
# axpy skips it), MAX with coefficients (ignored), a Pooling kernel_size next to kernel_h
# (kernel_size wins), Flatten with end_axis = axis - 1 (a new axis of size 1), Silence, MAX
# pooling's second top (the mask of its maxima). inf_or_1 is
# 1 / (data > 0): inf where data <= 0, the same in float32 and float64.
IN_PLACE_QUIRKS = """
name: "InPlaceQuirks"
layer { name: "input" type: "Input" top: "data"
  input_param { shape: { dim: 2 dim: 4 dim: 5 dim: 6 } } }
layer { name: "copy_a" type: "Power" bottom: "data" top: "a" }
layer { name: "copy_b" type: "Power" bottom: "data" top: "b"
  power_param { scale: -0.5 shift: 0.25 } }
layer { name: "copy_c" type: "Power" bottom: "data" top: "c" power_param { scale: 2 } }
layer { name: "sum_in_place" type: "Eltwise" bottom: "a" bottom: "b" top: "a"
  eltwise_param { coeff: 2 coeff: 3 } }
layer { name: "max_in_place" type: "Eltwise" bottom: "c" bottom: "b" top: "c"
  eltwise_param { operation: MAX } }
layer { name: "max_coeff" type: "Eltwise" bottom: "data" bottom: "b" top: "max_coeff"
  eltwise_param { operation: MAX coeff: 2 coeff: 3 } }
layer { name: "positive" type: "Threshold" bottom: "data" top: "positive" }
layer { name: "inverse" type: "Power" bottom: "positive" top: "inf_or_1"
  power_param { power: -1 } }
layer { name: "sum_coeff0" type: "Eltwise" bottom: "inf_or_1" bottom: "data" top: "sum_coeff0"
  eltwise_param { coeff: 0 coeff: 1 } }
layer { name: "pool_size_and_h" type: "Pooling" bottom: "data" top: "pool_size_and_h"
  pooling_param { pool: MAX kernel_size: 2 kernel_h: 3 stride: 1 } }
layer { name: "flatten_new_axis" type: "Flatten" bottom: "data" top: "flatten_new_axis"
  flatten_param { axis: 2 end_axis: 1 } }
layer { name: "silence" type: "Silence" bottom: "pool_size_and_h" bottom: "max_coeff" }
layer { name: "pool_mask" type: "Pooling" bottom: "c" top: "pooled" top: "pool_mask"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "global_mask" type: "Pooling" bottom: "inf_or_1" top: "global_max"
  top: "global_mask" pooling_param { pool: MAX global_pooling: true } }
"""


def catalogue():
    bn_params = (batch_norm_params("bn_factor0", factor="const:0")
                 + batch_norm_params("bn_factor_eps", "normal:1", "uniform:1:5", "const:2.5")
                 + batch_norm_params("bn_default"))
    scale_layers = ("scale_bias", "scale_two_axes", "scale_scalar", "scale_all_axes",
                    "scale_negative_axis")
    return [
        net("alexnet", ALEXNET, seed=1, training_layers=True),
        net("caffenet_v1", CAFFENET_V1, seed=2, v1_caffemodel=True, training_layers=True),
        resnet(),
        net("inception", INCEPTION, seed=4),
        net("fcn", FCN, seed=5),
        net("activations", ACTIVATIONS, seed=6,
            params=[("prelu", 0, "uniform:-0.5:0.5"), ("prelu_shared", 0, "const:-0.2")]),
        net("lrn", NORMALIZATION, seed=7, input_kinds={"data": "normal:1.5"}),
        net("batchnorm_scale_bias", BN_SCALE_BIAS, seed=8,
            params=bn_params + [p for layer in scale_layers for p in scale_params(
                layer, bias=layer == "scale_bias")]
            + [("scale_bottom_bias", 0, "normal:0.5"), ("bias", 0, "normal:0.5"),
               ("bias_two_axes", 0, "normal:0.5")]),
        net("shapes_merges", SHAPES, seed=9),
        net("conv_pool", CONV_POOL, seed=10),
        net("old_input_shape", OLD_INPUT_SHAPE, seed=11, params=[("prelu", 0, "uniform:-1:1")]),
        net("v1_layers", V1_LAYERS, seed=12, v1_caffemodel=True),
        mobilenet(),
        net("phase_rules", PHASE_RULES, seed=14),
        net("batchnorm_batch_statistics", BATCHNORM_BATCH_STATS, seed=15,
            params=batch_norm_params("bn_batch", factor="const:3") + scale_params("scale"),
            input_kinds={"data": "normal:2"}),
        net("legacy_blob_dims", LEGACY_BLOB_DIMS, seed=16, legacy_blob_dims=True,
            params=[("prelu", 0, "uniform:-0.5:0.5")] + scale_params("scale")),
        net("edge_cases", EDGE_CASES, seed=17),
        net("in_place_quirks", IN_PLACE_QUIRKS, seed=18),
    ]


# ---------------------------------------------------------------------------------------------
# Running and writing


def run_worker(root, specs, out_dir, timeout=1800):
    """Run net_worker.py on the specs inside the chroot; copy each net's files to out_dir."""
    job_dir = Path(tempfile.mkdtemp(prefix="fastconv-nets-", dir=Path(root, "tmp")))
    try:
        (job_dir / "job.json").write_text(json.dumps(specs))
        shutil.copy(DOUBLE_SOURCE, job_dir / DOUBLE_SOURCE.name)
        with open(WORKER, "rb") as script:
            proc = subprocess.run(
                ["chroot", str(root), "env", "GLOG_minloglevel=2", "OMP_NUM_THREADS=1",
                 "python3", "-", "/tmp/" + job_dir.name],
                stdin=script, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"net worker failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        for spec in specs:
            write_net(spec, job_dir, out_dir)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def write_net(spec, job_dir, out_dir):
    name = spec["name"]
    meta = json.loads((job_dir / f"{name}.json").read_text())
    with np.load(job_dir / f"{name}.npz") as data:
        arrays = {key: data[key] for key in sorted(data.files, key=_natural)}
    check_double(name, meta, arrays)
    (out_dir / f"{name}.prototxt").write_text(spec["prototxt"])
    shutil.copy(job_dir / f"{name}.caffemodel", out_dir / f"{name}.caffemodel")
    write_npz(out_dir / f"{name}.npz", {"meta": np.asarray(json.dumps(meta)), **arrays})
    sizes = sum((out_dir / f"{name}.{ext}").stat().st_size
                for ext in ("prototxt", "caffemodel", "npz"))
    print(f"{name}: {len(meta['layers'])} layers, {len(meta['blobs'])} blobs, {sizes} bytes")


def _natural(key):
    return [int(part) if part.isdigit() else part for part in key.split("/")]


def check_double(name, meta, arrays):
    """Net<double> is driven through a regenerated protobuf header (see net_worker.py): a
    mismatch would show as blobs far from pycaffe's, so each blob and parameter must agree with
    pycaffe's to float32 accuracy."""
    pairs = [(f"blob {blob!r}", f"f32/{i}", f"f64/{i}") for i, (blob, _) in enumerate(meta["blobs"])]
    pairs += [(f"parameter {layer!r}[{j}]", f"param/{i}/{j}", f"param64/{i}/{j}")
              for i, (layer, shapes) in enumerate(meta["params"]) for j in range(len(shapes))]
    for what, single_key, double_key in pairs:
        single, double = arrays[single_key].astype(np.float64), arrays[double_key]
        finite = np.isfinite(double)   # inf and NaN must be the same elements, the same values
        scale = max(np.abs(double[finite]).max(initial=0), np.finfo(np.float64).tiny)
        if single.shape != double.shape or not np.array_equal(
                single[~finite], double[~finite], equal_nan=True) or np.abs(
                single[finite] - double[finite]).max(initial=0) / scale > 1e-4:
            raise RuntimeError(f"{name}: {what} differs between Caffe's float32 and float64 "
                               "nets by more than float32 rounding")


def generate(out_dir, root):
    out_dir.mkdir(parents=True, exist_ok=True)
    run_worker(root, catalogue(), out_dir)


def main(argv=None):
    command_line(argv, __doc__.split("\n\n")[0], generate, DATA_DIR)


if __name__ == "__main__":
    main()
