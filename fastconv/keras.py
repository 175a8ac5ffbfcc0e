"""Keras-layout public API.

- numpy functions with Keras's semantics (``conv2d_keras``, ``conv2d_transpose_keras``,
  ``pool2d_keras``; in ``fastconv.keras_ops``);
- single Caffe layers as Keras layers (``from_caffe``, ``pooling_from_caffe``; in
  ``fastconv.keras_layers``);
- a whole Caffe ``Net`` as a ``keras.Model`` (``model_from_caffe``; in ``fastconv.keras_model``).

Importing this module never imports TensorFlow or Keras; the builders import Keras when called.
"""
from __future__ import annotations

import importlib
import warnings

from .keras_layers import from_caffe, pooling_from_caffe
from .keras_model import model_from_caffe
from .keras_ops import conv2d_keras, conv2d_transpose_keras, pool2d_keras

__all__ = ["conv2d_keras", "conv2d_transpose_keras", "pool2d_keras", "from_caffe",
           "pooling_from_caffe", "model_from_caffe"]


def __getattr__(name):
    # check_layer runs a live layer through fastconv's oracle (fastconv.testing), which sits
    # above this module and imports it: a static import would put the two in a circle. So the
    # old name is resolved on first use, with one DeprecationWarning, to its new home.
    if name == "check_layer":
        warnings.warn("fastconv.keras.check_layer is deprecated: use "
                      "fastconv.testing.check_keras_layer", DeprecationWarning, stacklevel=2)
        check_keras_layer = importlib.import_module("fastconv.testing").check_keras_layer
        globals()["check_layer"] = check_keras_layer     # later look-ups do not warn again
        return check_keras_layer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
