"""Helpers for the tests that compare with Keras; Keras is imported lazily and tests using it
skip with a reason when it is not installed."""
import functools

import numpy as np
import pytest


@functools.lru_cache(maxsize=None)
def keras_module():
    keras = pytest.importorskip("keras", reason="Keras (TensorFlow backend) is not installed")
    return keras


def gpu_devices():
    """GPUs TensorFlow can see; empty on CPU-only machines."""
    try:
        import tensorflow as tf
    except ImportError:
        return []
    return tf.config.list_physical_devices("GPU")


def run_keras_conv2d(x_nhwc, kernel_hwio, bias, device="/CPU:0", **conv_kwargs):
    """Build one keras.layers.Conv2D with these weights and run it once on x (NHWC)."""
    keras = keras_module()
    import tensorflow as tf

    layer = keras.layers.Conv2D(
        filters=kernel_hwio.shape[3], kernel_size=kernel_hwio.shape[:2],
        use_bias=bias is not None, dtype=str(x_nhwc.dtype), **conv_kwargs,
    )
    with tf.device(device):
        layer.build(x_nhwc.shape)
        layer.set_weights([kernel_hwio] if bias is None else [kernel_hwio, bias])
        return np.asarray(layer(x_nhwc))
