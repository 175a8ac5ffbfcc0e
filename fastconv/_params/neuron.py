"""Caffe's ReLU: its parameter (relu_param.negative_slope) and the array it may write to."""
from __future__ import annotations

import numpy as np

from .common import as_real


def caffe_relu_params(x, negative_slope, out, dtype):
    """Checked negative_slope (a float) for relu_caffe, and ``out``, which must be a writeable
    C-contiguous ``dtype`` array of x's shape, x itself or apart from it."""
    negative_slope = as_real(negative_slope, "negative_slope", "relu_param.negative_slope")
    if out is not None:
        if not (isinstance(out, np.ndarray) and out.shape == x.shape and out.dtype == dtype
                and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(f"out must be a writeable C-contiguous {dtype} array of x's shape "
                             f"{x.shape}; got {type(out).__name__} "
                             f"{getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}")
        if out is not x and np.shares_memory(out, x):
            raise ValueError("out overlaps x without being x itself")
    return negative_slope
