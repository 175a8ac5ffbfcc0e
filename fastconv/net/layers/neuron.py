"""The element-wise ("neuron") layers: one bottom, one top of the same shape, may run in
place."""
from __future__ import annotations

import numpy as np

from ..conv_ops import math_caffe, relu_caffe
from ..schema import TEST
from .base import Layer


# Caffe's std::max(x, Dtype(0)) is (x < 0 ? 0 : x) and std::min(x, Dtype(0)) is (0 < x ? 0 : x):
# NaN and -0.0 pass through both. numpy's maximum and minimum agree except that they turn -0.0
# into +0.0, so -0.0 is written back afterwards (a masked copy: far cheaper than a where). The
# mask is taken first, as ``out`` may be ``x`` itself (an in-place layer).

def caffe_max0(x, out=None):
    negative_zero = (x == 0) & np.signbit(x)
    top = np.maximum(x, 0, out=out)
    np.copyto(top, x.dtype.type(-0.0), where=negative_zero)
    return top


def caffe_min0(x):
    negative_zero = (x == 0) & np.signbit(x)
    bottom = np.minimum(x, 0)
    np.copyto(bottom, x.dtype.type(-0.0), where=negative_zero)
    return bottom


class NeuronLayer(Layer):
    """One bottom, one top of the same shape; may run in place."""

    def compute_into(self, bottoms, params, targets):
        return [self.apply_into(bottoms[0], params, targets[0])]

    def apply_into(self, x, params, target):
        """The top for ``x``, written into ``target`` (see ``compute_into``) where the type
        can."""
        return self.apply(x, params)

    def apply(self, x, params):
        raise NotImplementedError


class ReLULayer(NeuronLayer):
    type = "ReLU"

    def configure(self):
        self.config["negative_slope"] = self.layer_param.relu_param.negative_slope

    def apply_into(self, x, params, target):
        # Caffe: std::max(x, 0) + negative_slope * std::min(x, 0), element by element in C
        # (fastconv.relu_caffe: one pass, where numpy took five and three temporaries).
        return relu_caffe(x, negative_slope=self.scalar(self.config["negative_slope"]),
                          out=target)


class PReLULayer(NeuronLayer):
    type = "PReLU"

    def configure(self):
        self.config["channel_shared"] = self.layer_param.prelu_param.channel_shared

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        if not 2 <= len(shape) <= 4:
            # Caffe reads the channels through its legacy 4-D accessor, which aborts beyond.
            self.fail(f"{self.describe(0, shape)} needs 2 to 4 axes (N, C, ...)")
        self.config["channels"] = shape[1]
        return [() if self.config["channel_shared"] else (shape[1],)]

    def param_fillers(self):
        param = self.layer_param.prelu_param
        return [(param.filler if param.HasField("filler") else None, 0.25)]

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) < 2 or shape[1] != self.config["channels"]:
            self.fail(f"{self.describe(0, shape)} does not fit the slopes set up for "
                      f"{self.config['channels']} channels")
        return [shape]

    def apply(self, x, params):
        # max(x, 0) + slope[c] * min(x, 0)
        slope = params[0].reshape(params[0].shape + (1,) * (x.ndim - 1 - params[0].ndim))
        return caffe_max0(x) + slope * caffe_min0(x)


class ELULayer(NeuronLayer):
    type = "ELU"

    def configure(self):
        self.config["alpha"] = self.layer_param.elu_param.alpha

    def apply(self, x, params):
        # max(x, 0) + alpha * (exp(min(x, 0)) - 1)
        one = self.scalar(1)
        return caffe_max0(x) + self.scalar(self.config["alpha"]) * (
            self.math("exp", caffe_min0(x)) - one)


class SigmoidLayer(NeuronLayer):
    type = "Sigmoid"

    def apply(self, x, params):
        # Caffe evaluates 0.5 * tanh(0.5 * x) + 0.5 in double (its literals are doubles: the C
        # library's tanh) and rounds the result to Dtype once.
        half = 0.5 * x.astype(np.float64)
        return (0.5 * math_caffe(half, "tanh") + 0.5).astype(self.dtype)


class TanHLayer(NeuronLayer):
    type = "TanH"

    def apply(self, x, params):
        return self.math("tanh", x)


class AbsValLayer(NeuronLayer):
    type = "AbsVal"
    in_place_allowed = False   # absval_layer.cpp: "does not allow in-place computation"

    def apply(self, x, params):
        return np.abs(x)


class BNLLLayer(NeuronLayer):
    type = "BNLL"

    def apply(self, x, params):
        # x > 0 ? x + log(1. + exp(-x)) : log(1. + exp(x)); exp rounds to Dtype, the rest is
        # double (1. is a double literal), rounded to Dtype at the end.
        positive = x > 0
        exp_term = self.math("exp", np.where(positive, -x, x)).astype(np.float64)
        log_term = math_caffe(1.0 + exp_term, "log")
        return np.where(positive, x.astype(np.float64) + log_term, log_term).astype(self.dtype)


class PowerLayer(NeuronLayer):
    type = "Power"

    def configure(self):
        param = self.layer_param.power_param
        self.config.update(power=param.power, scale=param.scale, shift=param.shift)

    def apply(self, x, params):
        # (shift + scale * x) ^ power, as Caffe's steps: scale, then shift, then power, each
        # skipped at its neutral value; a zero power*scale gives the constant shift^power.
        power, scale, shift = (self.scalar(self.config[name])
                               for name in ("power", "scale", "shift"))
        if power * scale == 0:
            value = self.scalar(1) if power == 0 else self.math("pow", shift, power)
            return np.full(x.shape, value, self.dtype)
        top = x * scale if scale != 1 else x.copy()
        if shift != 0:
            top = top + shift
        if power != 1:
            top = self.math("pow", top, power)
        return top


class _BaseShiftScaleLayer(NeuronLayer):
    """Exp and Log: a function of shift + scale * x with a ``base`` (-1 stands for e)."""

    param_name = None

    def configure(self):
        param = getattr(self.layer_param, self.param_name)
        if param.base != -1 and param.base <= 0:
            self.fail(f"{self.param_name}.base={param.base} must be > 0 (or -1 for e)")
        if param.base != -1 and not np.isfinite(np.log(param.base)):
            self.fail(f"{self.param_name}.base={param.base}: log(base) is not finite")
        if self.param_name == "log_param" and param.base == 1:
            # Log divides by log(base): Caffe checks that 1 / log(base) is finite.
            self.fail("log_param.base=1: 1 / log(base) is not finite")
        self.config.update(base=param.base, scale=param.scale, shift=param.shift)

    def constants(self):
        """(base, scale, shift) as the dtype's scalars."""
        return tuple(self.scalar(self.config[name]) for name in ("base", "scale", "shift"))


class ExpLayer(_BaseShiftScaleLayer):
    type = "Exp"
    param_name = "exp_param"

    def apply(self, x, params):
        # base ^ (shift + scale * x) = outer * exp(inner * x) with inner = ln(base) * scale,
        # outer = base ^ shift: Caffe's factoring, in Dtype.
        base, scale, shift = self.constants()
        log_base = self.scalar(1) if base == -1 else self.math("log", base)
        inner = log_base * scale
        outer = (self.scalar(1) if shift == 0 else
                 self.math("pow", base, shift) if base != -1 else self.math("exp", shift))
        top = self.math("exp", x if inner == 1 else x * inner)
        return top * outer if outer != 1 else top


class LogLayer(_BaseShiftScaleLayer):
    type = "Log"
    param_name = "log_param"

    def apply(self, x, params):
        # log_base(shift + scale * x) = ln(shift + scale * x) * (1 / ln(base)), in Dtype.
        base, scale, shift = self.constants()
        base_scale = self.scalar(1) if base == -1 else self.scalar(1) / self.math("log", base)
        top = x * scale if scale != 1 else x
        if shift != 0:
            top = top + shift
        top = self.math("log", top)
        return top * base_scale if base_scale != 1 else top


class ThresholdLayer(NeuronLayer):
    type = "Threshold"

    def configure(self):
        self.config["threshold"] = self.layer_param.threshold_param.threshold

    def apply(self, x, params):
        return (x > self.scalar(self.config["threshold"])).astype(self.dtype)


class DropoutLayer(NeuronLayer):
    """The identity at TEST time (Caffe scales while training)."""

    type = "Dropout"

    def configure(self):
        if self.phase != TEST:
            self.fail("runs in the TRAIN phase ('phase: TRAIN' in the layer); fastconv runs "
                      "deploy nets only")
        self.config["dropout_ratio"] = self.layer_param.dropout_param.dropout_ratio

    def apply(self, x, params):
        return x.copy()
