"""Deprecated module: its functions live in ``fastconv.caffe`` (and ``fastconv.caffe_ops``).

``from fastconv.layers import deconv2d_caffe`` keeps working, with one DeprecationWarning per
name; ``fastconv.deconv2d_caffe`` and ``fastconv.caffe.deconv2d_caffe`` are the same functions.
"""
import warnings

from . import caffe_ops

_MOVED = frozenset(caffe_ops.__all__)


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(f"fastconv.layers.{name} is deprecated: use fastconv.caffe.{name} (or "
                      f"fastconv.{name})", DeprecationWarning, stacklevel=2)
        function = getattr(caffe_ops, name)
        globals()[name] = function       # later look-ups do not warn again
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
