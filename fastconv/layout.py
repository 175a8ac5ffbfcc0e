"""Layout conversions between Caffe (NCHW, OIHW) and Keras (NHWC, HWIO).

Every conversion is a transpose. A ``reshape`` to the same shape keeps the bytes where they
are and silently scrambles their meaning: the most common way a ported network goes wrong.
All functions return new C-contiguous arrays and leave their input untouched.
"""
from __future__ import annotations

import numpy as np


def _checked(array, ndim, name, layout):
    array = np.asarray(array)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}; got shape {array.shape}")
    return array


def nchw_to_nhwc(x):
    """(N, C, H, W) -> (N, H, W, C): Caffe/PyTorch data to Keras channels_last."""
    return np.ascontiguousarray(_checked(x, 4, "x", "(N, C, H, W)").transpose(0, 2, 3, 1))


def nhwc_to_nchw(x):
    """(N, H, W, C) -> (N, C, H, W): Keras channels_last data to Caffe/PyTorch."""
    return np.ascontiguousarray(_checked(x, 4, "x", "(N, H, W, C)").transpose(0, 3, 1, 2))


def caffe_to_keras_kernel(w):
    """Caffe OIHW (num_output, C/group, kh, kw) -> Keras HWIO (kh, kw, C/groups, filters)."""
    return np.ascontiguousarray(
        _checked(w, 4, "w", "(num_output, C/group, kernel_h, kernel_w)").transpose(2, 3, 1, 0)
    )


def keras_to_caffe_kernel(kernel):
    """Keras HWIO (kh, kw, C/groups, filters) -> Caffe OIHW (num_output, C/group, kh, kw)."""
    return np.ascontiguousarray(
        _checked(kernel, 4, "kernel", "(kernel_h, kernel_w, C/groups, filters)").transpose(3, 2, 0, 1)
    )


def flip_kernel(kernel, layout="keras"):
    """Rotate a kernel by 180 degrees in space: Theano-era (true convolution) weights <->
    cross-correlation weights (Caffe, TensorFlow, PyTorch). ``layout`` is 'keras' (HWIO) or
    'caffe' (OIHW)."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be 4-D; got shape {kernel.shape}")
    if layout == "keras":
        return np.ascontiguousarray(kernel[::-1, ::-1, :, :])
    if layout == "caffe":
        return np.ascontiguousarray(kernel[:, :, ::-1, ::-1])
    raise ValueError(f"layout={layout!r} must be 'keras' (HWIO) or 'caffe' (OIHW)")
