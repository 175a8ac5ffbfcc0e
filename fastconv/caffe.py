"""Caffe-layout public API: Caffe's Convolution, Deconvolution and Pooling layers as numpy
functions on NCHW data and Caffe's weight blobs (implemented in ``fastconv.caffe_ops``), and
whole Caffe models with pycaffe's deploy API (``Net``, ``TEST``; implemented in
``fastconv.net``, which needs the ``caffe`` extra, protobuf, only when a Net is built)."""
from . import caffe_ops
from .caffe_ops import (
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
from .net import TEST, TRAIN, Net

__all__ = [*caffe_ops.__all__, "Net", "TEST", "TRAIN"]
