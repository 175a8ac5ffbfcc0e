"""The one place fastconv.net reaches fastconv's engine.

Every Convolution, Deconvolution, Pooling, InnerProduct, ReLU, LRN, Scale and Eltwise layer of
a Net, and its BatchNorm layers with stored statistics, run through these public functions, so
a net gets exactly the engine's Caffe semantics.
"""
from ..caffe_ops import (
    batch_norm_caffe,
    conv2d_caffe,
    convnd_caffe,
    deconv2d_caffe,
    eltwise_caffe,
    inner_product_caffe,
    lrn_caffe,
    pool2d_caffe,
    relu_caffe,
    scale_caffe,
)

__all__ = [
    "batch_norm_caffe",
    "conv2d_caffe",
    "convnd_caffe",
    "deconv2d_caffe",
    "eltwise_caffe",
    "inner_product_caffe",
    "lrn_caffe",
    "pool2d_caffe",
    "relu_caffe",
    "scale_caffe",
]
