"""The one place fastconv.net reaches fastconv's engine.

Every Convolution, Deconvolution, Pooling, InnerProduct, ReLU and LRN layer of a Net runs
through these public functions, so a net gets exactly the engine's Caffe semantics.
"""
from ..caffe_ops import (
    conv2d_caffe,
    convnd_caffe,
    deconv2d_caffe,
    inner_product_caffe,
    lrn_caffe,
    pool2d_caffe,
    relu_caffe,
)

__all__ = [
    "conv2d_caffe",
    "convnd_caffe",
    "deconv2d_caffe",
    "inner_product_caffe",
    "lrn_caffe",
    "pool2d_caffe",
    "relu_caffe",
]
