"""The one place fastconv.net reaches fastconv's engine and its shape rules.

Every Convolution, Deconvolution, Pooling, InnerProduct, ReLU, LRN, Scale and Eltwise layer of
a Net, its BatchNorm layers with stored statistics, and the C library's math of its Exp, Log,
Power, TanH, ELU, BNLL, Sigmoid and Softmax layers run through these public functions, so
a net gets exactly the engine's Caffe semantics; and a Net infers its blobs' shapes at load
with the output-size rules those functions apply, so the two cannot disagree.
"""
from .._params.caffe_conv import caffe_conv_out_size, caffe_deconv_out_size
from .._params.pooling import (
    LAST_WINDOW_PAST_INPUT,
    caffe_pool_out_size,
    last_window_past_input,
)
from ..caffe_ops import (
    batch_norm_caffe,
    conv2d_caffe,
    convnd_caffe,
    deconv2d_caffe,
    eltwise_caffe,
    inner_product_caffe,
    lrn_caffe,
    math_caffe,
    pool2d_caffe,
    relu_caffe,
    scale_caffe,
)

__all__ = [
    "LAST_WINDOW_PAST_INPUT",
    "last_window_past_input",
    "batch_norm_caffe",
    "caffe_conv_out_size",
    "caffe_deconv_out_size",
    "caffe_pool_out_size",
    "conv2d_caffe",
    "convnd_caffe",
    "deconv2d_caffe",
    "eltwise_caffe",
    "inner_product_caffe",
    "lrn_caffe",
    "math_caffe",
    "pool2d_caffe",
    "relu_caffe",
    "scale_caffe",
]
