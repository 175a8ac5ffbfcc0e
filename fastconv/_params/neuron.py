"""Caffe's ReLU: its parameter (relu_param.negative_slope) and the array it may write to."""
from __future__ import annotations

from .common import as_real, check_out


def caffe_relu_params(x, negative_slope, out, dtype):
    """Checked negative_slope (a float) for relu_caffe, and ``out``, which must be a writeable
    C-contiguous ``dtype`` array of x's shape, x itself or apart from it."""
    negative_slope = as_real(negative_slope, "negative_slope", "relu_param.negative_slope")
    check_out(out, x.shape, dtype, (x,), "x", in_place=True)
    return negative_slope
