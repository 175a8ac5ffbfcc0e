"""The normalising and per-channel affine layers: LRN, Softmax, BatchNorm, Scale, Bias."""
from __future__ import annotations

import numpy as np

from ..conv_ops import batch_norm_caffe, lrn_caffe, scale_caffe
from ..schema import TEST
from .base import Layer


def ordered_sum(values, axis, keepdims=False):
    """The sum along ``axis`` added in index order, one rounding per addition: what Caffe's
    reductions (a gemv with a vector of ones) compute under a reference BLAS. numpy's own sum
    pairs terms up along a contiguous axis; a cumulative sum never does."""
    total = np.take(np.cumsum(values, axis=axis), [-1], axis=axis)
    return total if keepdims else np.squeeze(total, axis=axis)


class LRNLayer(Layer):
    type = "LRN"

    def configure(self):
        param = self.layer_param.lrn_param
        if param.local_size % 2 == 0:
            self.fail(f"local_size={param.local_size} must be odd")
        self.config.update(
            local_size=param.local_size, alpha=param.alpha, beta=param.beta, k=param.k,
            norm_region="ACROSS_CHANNELS" if param.norm_region == 0 else "WITHIN_CHANNEL")

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) != 4:
            self.fail(f"{self.describe(0, shape)} must have 4 axes (num, channels, height, "
                      "width)")
        if self.config["norm_region"] == "ACROSS_CHANNELS":
            # Caffe's forward makes this blob of the squares with the window's padding.
            _, channels, height, width = shape
            self.check_blob_shape((1, channels + self.config["local_size"] - 1, height, width),
                                  "its padded squares (1, channels + local_size - 1, H, W)")
        return [shape]

    def compute(self, bottoms, params):
        config = self.config
        return [lrn_caffe(bottoms[0], local_size=config["local_size"], alpha=config["alpha"],
                          beta=config["beta"], k=config["k"], norm_region=config["norm_region"])]


class SoftmaxLayer(Layer):
    type = "Softmax"

    def configure(self):
        self.config["axis"] = self.layer_param.softmax_param.axis

    def output_shapes(self, bottom_shapes):
        self.axis(self.config["axis"], len(bottom_shapes[0]), "softmax_param.axis")
        return [bottom_shapes[0]]

    def compute(self, bottoms, params):
        # exp(x - max) / sum(exp(x - max)) along the axis, in Dtype.
        x = bottoms[0]
        axis = self.axis(self.config["axis"], x.ndim, "softmax_param.axis")
        shifted = self.math("exp", x - x.max(axis=axis, keepdims=True))
        return [shifted / ordered_sum(shifted, axis, keepdims=True)]


class BatchNormLayer(Layer):
    """(x - mean) / sqrt(var + eps) per channel, from the stored statistics divided by the
    stored scale factor (TEST default) or from the batch (``use_global_stats: false``)."""

    type = "BatchNorm"

    def configure(self):
        param = self.layer_param.batch_norm_param
        use_global = (param.use_global_stats if param.HasField("use_global_stats")
                      else self.phase == TEST)
        self.config.update(use_global_stats=use_global, eps=param.eps,
                           moving_average_fraction=param.moving_average_fraction)

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) < 2:
            # Caffe takes 1 channel at set-up, then reads shape(1) and aborts.
            self.fail(f"{self.describe(0, shape)} needs at least 2 axes (N, C, ...)")
        channels = shape[1]
        self.config["channels"] = channels
        return [(channels,), (channels,), (1,)]

    def param_fillers(self):
        return [(None, 0.0)] * 3

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        channels = shape[1] if len(shape) > 1 else None
        if channels != self.config["channels"]:
            self.fail(f"{self.describe(0, shape)} has {channels} channels; the statistics "
                      f"hold {self.config['channels']}")
        return [shape]

    def compute_into(self, bottoms, params, targets):
        x = bottoms[0]
        if self.config["use_global_stats"]:
            return [batch_norm_caffe(x, params[0], params[1], params[2],
                                     eps=self.config["eps"], out=targets[0])]
        channels = self.config["channels"]
        per_channel = (1, channels) + (1,) * (x.ndim - 2) if x.ndim > 1 else (channels,)
        mean = self._batch_mean(x)
        centred = x - mean.reshape(per_channel)
        variance = self._batch_mean(centred * centred)
        self._update_moving_averages(params, mean, variance, x.size // channels)
        deviation = np.sqrt(variance + self.scalar(self.config["eps"]))
        return [np.divide(centred, deviation.reshape(per_channel), out=centred)]

    def _batch_mean(self, x):
        # Caffe: per (n, c) sum over space times 1/(N*spatial) (a gemv), then summed over n.
        num = x.shape[0] if x.ndim > 1 else 1
        rows = x.reshape(num, self.config["channels"], -1)
        inverse = self.scalar(1.0 / (num * rows.shape[2]))
        return ordered_sum(inverse * ordered_sum(rows, 2), 0)

    def _update_moving_averages(self, params, mean, variance, per_channel_count):
        # What Caffe's forward does to the stored statistics when not using them.
        fraction = self.scalar(self.config["moving_average_fraction"])
        params[2][...] = params[2] * fraction + self.scalar(1)
        params[0][...] = mean + fraction * params[0]
        correction = (self.scalar(per_channel_count) / self.scalar(per_channel_count - 1)
                      if per_channel_count > 1 else self.scalar(1))
        params[1][...] = correction * variance + fraction * params[1]


class _AxisOperand(Layer):
    """Scale and Bias: an operand (a parameter blob or the second bottom) covering the axes
    ``axis`` .. ``axis + operand.ndim`` of the first bottom, broadcast over the rest."""

    max_bottoms = 2
    param_name = None
    default_fill = 0.0

    def configure(self):
        param = getattr(self.layer_param, self.param_name)
        self.config.update(axis=param.axis, num_axes=param.num_axes)

    def operand_axis(self, shape, operand_ndim):
        # A scalar operand ignores axis (Caffe).
        if operand_ndim == 0:
            return 0
        return self.axis(self.config["axis"], len(shape), f"{self.param_name}.axis")

    def operand_shape(self, shape):
        """The parameter operand's shape for a first bottom of ``shape`` (one bottom)."""
        num_axes = self.config["num_axes"]
        if num_axes < -1:
            self.fail(f"num_axes={num_axes} must be >= 0, or -1 for all")
        # Caffe checks the axis at set-up even for a scalar parameter (num_axes 0).
        self.axis(self.config["axis"], len(shape), f"{self.param_name}.axis")
        axis = self.operand_axis(shape, num_axes)
        end = len(shape) if num_axes == -1 else axis + num_axes
        if end > len(shape):
            self.fail(f"axis {axis} + num_axes {num_axes} exceeds the {len(shape)} axes of "
                      f"{self.describe(0, shape)}")
        return shape[axis:end]

    def check_operand(self, shape, operand, what):
        axis = self.operand_axis(shape, len(operand))
        if tuple(shape[axis:axis + len(operand)]) != tuple(operand):
            self.fail(f"{what} of shape {tuple(operand)} does not match axes {axis}.. of "
                      f"{self.describe(0, shape)}")
        return axis

    def broadcast(self, operand, x, axis):
        return operand.reshape(operand.shape + (1,) * (x.ndim - axis - operand.ndim))

    def param_fillers(self):
        param = getattr(self.layer_param, self.param_name)
        return [(param.filler if param.HasField("filler") else None, self.default_fill)]

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(bottom_shapes) == 2:
            self.check_operand(shape, bottom_shapes[1], self.describe(1, bottom_shapes[1]))
        elif self.blobs:
            self.check_operand(shape, self.blobs[0].shape, "the parameter blob")
        return [shape]


class ScaleLayer(_AxisOperand):
    """x * scale (+ bias with ``bias_term``): Caffe multiplies, then adds, each rounded (the
    engine's scale_caffe, one pass)."""

    type = "Scale"
    param_name = "scale_param"
    default_fill = 1.0

    def configure(self):
        super().configure()
        self.config["bias_term"] = self.layer_param.scale_param.bias_term

    def setup(self, bottom_shapes):
        operand = (bottom_shapes[1] if len(bottom_shapes) == 2
                   else self.operand_shape(bottom_shapes[0]))
        shapes = [] if len(bottom_shapes) == 2 else [operand]
        if self.config["bias_term"]:
            shapes.append(operand)
        return shapes

    def param_fillers(self):
        param = self.layer_param.scale_param
        bias = (param.bias_filler if param.HasField("bias_filler") else None, 0.0)
        scale = [] if len(self.bottoms) == 2 else super().param_fillers()
        return scale + ([bias] if self.config["bias_term"] else [])

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(bottom_shapes) == 2:
            self.check_operand(shape, bottom_shapes[1], self.describe(1, bottom_shapes[1]))
        else:
            self.check_operand(shape, self.blobs[0].shape if self.blobs else
                               self.operand_shape(shape), "the scale blob")
        return [shape]

    def compute_into(self, bottoms, params, targets):
        scale = bottoms[1] if len(bottoms) == 2 else params[0]
        bias = params[-1] if self.config["bias_term"] else None
        return [scale_caffe(bottoms[0], scale, bias, axis=self.config["axis"], out=targets[0])]


class BiasLayer(_AxisOperand):
    type = "Bias"
    param_name = "bias_param"

    def setup(self, bottom_shapes):
        return [] if len(bottom_shapes) == 2 else [self.operand_shape(bottom_shapes[0])]

    def param_fillers(self):
        return [] if len(self.bottoms) == 2 else super().param_fillers()

    def compute_into(self, bottoms, params, targets):
        x = bottoms[0]
        bias = bottoms[1] if len(bottoms) == 2 else params[0]
        return [np.add(x, self.broadcast(bias, x, self.operand_axis(x.shape, bias.ndim)),
                       out=targets[0])]
