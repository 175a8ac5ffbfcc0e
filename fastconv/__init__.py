"""fastconv: Caffe's exact convolution semantics, fast, in NCHW/OIHW and Keras layouts."""
from .caffe import (
    conv2d_caffe,
    conv2d_caffe_backward,
    convnd_caffe,
    convnd_caffe_backward,
    deconv2d_caffe,
    deconv2d_caffe_backward,
    eltwise_caffe,
    batch_norm_caffe,
    inner_product_caffe,
    lrn_caffe,
    math_caffe,
    relu_caffe,
    scale_caffe,
    pool2d_caffe,
    pool2d_caffe_backward,
)
from .keras import conv2d_keras, conv2d_transpose_keras, pool2d_keras
from .layout import (
    caffe_to_keras_kernel,
    flip_kernel,
    keras_to_caffe_kernel,
    nchw_to_nhwc,
    nhwc_to_nchw,
)
from .runtime import cpu_info, get_num_threads, set_num_threads, set_output_cache_limit

__version__ = "0.1.0"

__all__ = [
    "conv2d_caffe",
    "conv2d_keras",
    "conv2d_caffe_backward",
    "deconv2d_caffe",
    "deconv2d_caffe_backward",
    "convnd_caffe",
    "convnd_caffe_backward",
    "pool2d_caffe",
    "pool2d_caffe_backward",
    "inner_product_caffe",
    "lrn_caffe",
    "math_caffe",
    "relu_caffe",
    "batch_norm_caffe",
    "scale_caffe",
    "eltwise_caffe",
    "conv2d_transpose_keras",
    "pool2d_keras",
    "caffe_to_keras_kernel",
    "keras_to_caffe_kernel",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "flip_kernel",
    "cpu_info",
    "get_num_threads",
    "set_num_threads",
    "set_output_cache_limit",
]
