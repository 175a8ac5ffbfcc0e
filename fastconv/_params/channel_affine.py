"""Caffe's per-channel affine layers, BatchNorm (with its stored statistics) and Scale: the
shapes of their operands and how x is viewed for the C pass, (outer, channels, inner)."""
from __future__ import annotations

import math

from .common import as_int, as_real


def _channel_view(x_shape, axis, operand_shape):
    """x as (outer, channels, inner) around the axes axis .. axis + len(operand_shape)."""
    end = axis + len(operand_shape)
    return (math.prod(x_shape[:axis]), math.prod(operand_shape), math.prod(x_shape[end:]))


def _check_operand(name, shape, expected, param):
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(shape)}; it must have shape "
                         f"{tuple(expected)} ({param})")


def caffe_batch_norm_view(x_shape, mean_shape, variance_shape, scale_factor_shape, eps):
    """Checked eps (a float) and x's (outer, channels, inner) view for batch_norm_caffe: the
    channels are axis 1 (a 1-D x is one channel, as in Caffe), and mean and variance hold one
    value per channel, the scale factor one value (Caffe's three BatchNorm blobs)."""
    eps = as_real(eps, "eps", "batch_norm_param.eps")
    if len(x_shape) == 0:
        raise ValueError("x must have at least one axis (Caffe's bottom blob of BatchNorm); got "
                         "a scalar")
    channels = 1 if len(x_shape) == 1 else x_shape[1]
    _check_operand("mean", mean_shape, (channels,),
                   f"BatchNorm blobs[0]: one value per channel of x, axis 1 of {tuple(x_shape)}")
    _check_operand("variance", variance_shape, (channels,),
                   f"BatchNorm blobs[1]: one value per channel of x, axis 1 of "
                   f"{tuple(x_shape)}")
    if math.prod(scale_factor_shape) != 1:
        raise ValueError(f"scale_factor has shape {tuple(scale_factor_shape)}; it must hold one "
                         "value (BatchNorm blobs[2], the moving average's scale factor)")
    if len(x_shape) == 1:
        return eps, (1, 1, x_shape[0])
    return eps, _channel_view(x_shape, 1, (channels,))


def caffe_scale_view(x_shape, scale_shape, bias_shape, axis):
    """x's (outer, channels, inner) view for scale_caffe: scale covers the axes axis ..
    axis + scale.ndim of x (a scalar scale ignores axis, as in Caffe), bias has scale's
    shape."""
    axis = as_int(axis, "axis", "scale_param.axis")
    if len(scale_shape) == 0:
        axis = 0
    elif not -len(x_shape) <= axis < len(x_shape):
        raise ValueError(f"axis={axis} is out of range for x of shape {tuple(x_shape)} (Caffe "
                         f"scale_param.axis: -{len(x_shape)} to {len(x_shape) - 1})")
    axis %= max(len(x_shape), 1)
    covered = tuple(x_shape[axis:axis + len(scale_shape)])
    _check_operand("scale", scale_shape, covered,
                   f"Caffe Scale: the scale blob or second bottom covers axes {axis}.. of x "
                   f"{tuple(x_shape)}")
    if bias_shape is not None:
        _check_operand("bias", bias_shape, scale_shape,
                       "Caffe Scale with scale_param.bias_term: the bias blob has the scale's "
                       "shape")
    return _channel_view(x_shape, axis, scale_shape)
