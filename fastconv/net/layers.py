"""Caffe 1.0's layers at deploy time (TEST phase), each as Caffe computes it.

A layer is built from its LayerParameter, set up once for its bottoms' shapes (Caffe's
LayerSetUp: parameter shapes), then run any number of times: :meth:`Layer.top_shapes` is Caffe's
Reshape (every shape check, errors naming the layer and the shapes) and :meth:`Layer.forward`
computes the tops from bottom arrays in the net's dtype. Where float32 rounding depends on the
order of operations (LRN, Softmax, BatchNorm, Scale, Eltwise, the math layers) the numpy code
below follows the order of Caffe's CPU code, step by step, each step rounded to the dtype; the
comments give Caffe's formula. The convolution family runs on fastconv's engine.
"""
from __future__ import annotations

import math

import numpy as np

from .conv_ops import conv2d_caffe, convnd_caffe, deconv2d_caffe, pool2d_caffe

TEST_PHASE = 1


class Layer:
    """One layer of a Net.

    Attributes: ``name``, ``type`` (Caffe's type string), ``bottoms`` and ``tops`` (blob names),
    ``blobs`` (the parameter Blobs, as pycaffe's ``layer.blobs``), ``config`` (the parameters
    resolved as Caffe resolves them, e.g. ``{"kernel": (3, 3), "stride": (1, 1), ...}``) and
    ``layer_param`` (the protobuf LayerParameter, without weights).
    """

    type = None
    min_bottoms, max_bottoms = 1, 1
    min_tops, max_tops = 1, 1
    in_place_allowed = True
    # Split, Flatten and Reshape tops share the bottom's memory in Caffe (ShareData).
    shares_data = False

    def __init__(self, layer_param, dtype, phase=TEST_PHASE):
        self.layer_param = layer_param
        self.name = layer_param.name
        self.bottoms = list(layer_param.bottom)
        self.tops = list(layer_param.top)
        self.dtype = np.dtype(dtype)
        self.phase = layer_param.phase if layer_param.HasField("phase") else phase
        self.blobs = []
        self.config = {}
        self._check_counts()
        self.configure()

    def __repr__(self):
        return f"<{self.type} layer '{self.name}': {self.bottoms} -> {self.tops}>"

    # -- what subclasses provide ----------------------------------------------------------------

    def configure(self):
        """Read the layer's own parameters into ``config`` (no shapes known yet)."""

    def setup(self, bottom_shapes):
        """Caffe's LayerSetUp: resolve shape-dependent parameters; returns the parameter
        blobs' shapes."""
        return []

    def param_fillers(self):
        """(FillerParameter or None, default constant) per parameter blob, for a net without
        weights."""
        return []

    def output_shapes(self, bottom_shapes):
        """Caffe's Reshape: the tops' shapes; ValueError when the bottoms do not fit."""
        return [bottom_shapes[0]] * len(self.tops)

    def compute(self, bottoms, params):
        raise NotImplementedError

    # -- the public interface -------------------------------------------------------------------

    def fail(self, message):
        raise ValueError(f"layer '{self.name}' ({self.type}): {message}")

    def top_shapes(self, bottom_shapes):
        """The tops' shapes for bottoms of ``bottom_shapes``, checked as Caffe's Reshape does."""
        shapes = [tuple(int(dim) for dim in shape) for shape in bottom_shapes]
        if len(shapes) != len(self.bottoms):
            self.fail(f"takes {len(self.bottoms)} bottoms ({self.bottoms}), got {len(shapes)}")
        return [tuple(shape) for shape in self.output_shapes(shapes)]

    def forward(self, *bottoms):
        """Run the layer on ``bottoms`` (arrays, converted to the net's dtype, never modified)
        with its current parameter blobs; returns the list of top arrays."""
        arrays = [np.asarray(bottom, dtype=self.dtype) for bottom in bottoms]
        self.top_shapes([array.shape for array in arrays])
        return self.compute(arrays, [blob.data for blob in self.blobs])

    # -- helpers ---------------------------------------------------------------------------------

    def _check_counts(self):
        for what, names, low, high in (("bottom", self.bottoms, self.min_bottoms,
                                        self.max_bottoms),
                                       ("top", self.tops, self.min_tops, self.max_tops)):
            if not low <= len(names) <= (high if high is not None else len(names)):
                wanted = (f"{low}" if low == high else
                          f"at least {low}" if high is None else f"{low} to {high}")
                self.fail(f"takes {wanted} {what} blob(s), got {len(names)} ({names})")
        if not self.in_place_allowed:
            shared = set(self.bottoms) & set(self.tops)
            if shared:
                self.fail(f"cannot run in place (blob {sorted(shared)[0]!r} is both a bottom "
                          "and a top); Caffe refuses this too")

    def axis(self, axis, ndim, param):
        """Caffe's CanonicalAxisIndex: -ndim <= axis < ndim, negative from the end."""
        if not -ndim <= axis < ndim:
            self.fail(f"{param}={axis} is out of range for a bottom with {ndim} axes")
        return axis % ndim

    def axis_or_legacy(self, param, legacy):
        """``axis``, or the deprecated ``legacy`` field (concat_dim, slice_dim) when given."""
        if param.HasField("axis") and param.HasField(legacy):
            self.fail(f"give either axis or {legacy}, not both")
        return getattr(param, legacy) if param.HasField(legacy) else param.axis

    def scalar(self, value):
        """A parameter as the dtype's scalar (Caffe holds float parameters as Dtype)."""
        return self.dtype.type(value)

    def math(self, function, *args):
        """``function(*args)`` (exp, log, tanh, power) rounded once to the dtype.

        Caffe's float code calls glibc's expf/logf/powf, which are correctly rounded in nearly
        all cases; so is the double result rounded to float, while numpy's own float32 versions
        are up to a few ulps off (seen against real Caffe's blobs).
        """
        if self.dtype == np.float64:
            return function(*args)
        wide = [np.asarray(arg, np.float64) for arg in args]
        result = function(*wide).astype(self.dtype)
        return result if result.ndim else self.dtype.type(result)

    def describe(self, index, shape):
        return f"bottom '{self.bottoms[index]}' of shape {tuple(shape)}"


def _count(shape, start=0, end=None):
    return int(np.prod(shape[start:end], dtype=np.int64))


def ordered_sum(values, axis, keepdims=False):
    """The sum along ``axis`` added in index order, one rounding per addition: what Caffe's
    reductions (a gemv with a vector of ones) compute under a reference BLAS. numpy's own sum
    pairs terms up along a contiguous axis; a cumulative sum never does."""
    total = np.take(np.cumsum(values, axis=axis), [-1], axis=axis)
    return total if keepdims else np.squeeze(total, axis=axis)


# ---------------------------------------------------------------------------------------------
# Input


class InputLayer(Layer):
    type = "Input"
    min_bottoms, max_bottoms = 0, 0
    max_tops = None

    def configure(self):
        shapes = [tuple(int(dim) for dim in shape.dim)
                  for shape in self.layer_param.input_param.shape]
        if len(shapes) not in (0, 1, len(self.tops)):
            self.fail(f"has {len(self.tops)} tops but {len(shapes)} shapes; give one shape "
                      "for all tops or one per top")
        if any(dim < 0 for shape in shapes for dim in shape):
            self.fail(f"input shapes {shapes} have a negative dimension")
        if len(shapes) == 1:
            shapes = shapes * len(self.tops)
        # Without a shape Caffe leaves the blob empty until the user reshapes it.
        self.config["shapes"] = shapes or [(0,)] * len(self.tops)

    def output_shapes(self, bottom_shapes):
        return self.config["shapes"]

    def compute(self, bottoms, params):
        self.fail("has no computation: its tops are the net's inputs, set by the caller")


# ---------------------------------------------------------------------------------------------
# The convolution family (fastconv's engine)


class ConvolutionLayer(Layer):
    """Caffe's Convolution: weights (num_output, C/group, *kernel), bias (num_output,)."""

    type = "Convolution"
    max_bottoms = None
    max_tops = None

    def _check_counts(self):
        super()._check_counts()
        if len(self.bottoms) != len(self.tops):
            self.fail(f"needs one top per bottom, got {len(self.bottoms)} bottoms and "
                      f"{len(self.tops)} tops")

    def configure(self):
        param = self.layer_param.convolution_param
        if not param.HasField("num_output") or param.num_output == 0:
            self.fail("convolution_param.num_output must be given and > 0")
        if param.group == 0 or param.num_output % param.group:
            self.fail(f"group={param.group} does not divide num_output={param.num_output} "
                      "(Caffe requires num_output % group == 0)")
        self.config.update(num_output=param.num_output, group=param.group,
                           bias_term=param.bias_term, axis=param.axis)

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        for index, other in enumerate(bottom_shapes[1:], 1):
            if other != shape:
                self.fail(f"all bottoms must have the same shape: {self.describe(0, shape)}, "
                          f"{self.describe(index, other)}")
        axis = self.axis(self.config["axis"], len(shape), "convolution_param.axis")
        rank = len(shape) - axis - 1
        if rank < 1:
            self.fail(f"{self.describe(0, shape)} has no spatial axis after the channel axis "
                      f"{axis}")
        channels = shape[axis]
        self.config.update(axis=axis, channels=channels, **self._geometry(rank))
        group = self.config["group"]
        if channels % group:
            self.fail(f"group={group} does not divide the {channels} channels of "
                      f"{self.describe(0, shape)} (Caffe requires C % group == 0)")
        shapes = [self.weight_shape(channels)]
        if self.config["bias_term"]:
            shapes.append((self.config["num_output"],))
        return shapes

    def weight_shape(self, channels):
        return (self.config["num_output"], channels // self.config["group"],
                *self.config["kernel"])

    def param_fillers(self):
        param = self.layer_param.convolution_param
        return [(param.weight_filler if param.HasField("weight_filler") else None, 0.0),
                (param.bias_filler if param.HasField("bias_filler") else None, 0.0)]

    def _geometry(self, rank):
        """kernel, stride, pad, dilation per spatial axis, with Caffe's rules for the scalar,
        per-axis and _h/_w forms."""
        param = self.layer_param.convolution_param
        named = {}
        for name, default, has_hw in (("kernel", None, ("kernel_h", "kernel_w")),
                                      ("stride", 1, ("stride_h", "stride_w")),
                                      ("pad", 0, ("pad_h", "pad_w")),
                                      ("dilation", 1, None)):
            listed = list(getattr(param, "kernel_size" if name == "kernel" else name))
            given_hw = has_hw and [field for field in has_hw if param.HasField(field)]
            if given_hw:
                if rank != 2:
                    self.fail(f"{'/'.join(has_hw)} can only be used for 2-D convolution; this "
                              f"one has {rank} spatial axes")
                if listed:
                    self.fail(f"give either {name if name != 'kernel' else 'kernel_size'} or "
                              f"{'/'.join(has_hw)}, not both")
                if name != "pad" and len(given_hw) != 2:
                    # Caffe reads the missing one as 0: a zero kernel fails its check and a zero
                    # stride crashes it (SIGFPE).
                    missing = has_hw[1] if given_hw == [has_hw[0]] else has_hw[0]
                    self.fail(f"{given_hw[0]} needs {missing} too (Caffe requires both for "
                              f"non-square {name}s)")
                values = tuple(getattr(param, field) for field in has_hw)
            elif not listed:
                if default is None:
                    self.fail("convolution_param needs kernel_size (or kernel_h and kernel_w)")
                values = (default,) * rank
            elif len(listed) in (1, rank):
                values = tuple(listed) * (rank // len(listed))
            else:
                self.fail(f"{name} has {len(listed)} values; give 1 or one per spatial axis "
                          f"({rank})")
            if name in ("kernel", "stride", "dilation") and min(values) < 1:
                self.fail(f"{name}={values} must be > 0 on every axis")
            named[name] = tuple(int(value) for value in values)
        return named

    def output_shapes(self, bottom_shapes):
        axis = self.config["axis"]
        shape = bottom_shapes[0]
        expected = self.config["channels"]
        outputs = []
        for index, bottom in enumerate(bottom_shapes):
            if len(bottom) != axis + 1 + len(self.config["kernel"]):
                self.fail(f"{self.describe(index, bottom)} has {len(bottom)} axes; the layer "
                          f"was set up for {axis + 1 + len(self.config['kernel'])}")
            if bottom != shape:
                self.fail(f"all bottoms must have the same shape: {self.describe(0, shape)}, "
                          f"{self.describe(index, bottom)}")
            if bottom[axis] != expected:
                self.fail(f"{self.describe(index, bottom)} has {bottom[axis]} channels but the "
                          f"weights {self.weight_shape(expected)} were set up for {expected}")
            spatial = [self.output_size(size, axis_index) for axis_index, size in
                       enumerate(bottom[axis + 1:])]
            outputs.append(bottom[:axis] + (self.config["num_output"],) + tuple(spatial))
        return outputs

    def output_size(self, size, axis_index):
        kernel, stride, pad, dilation = (self.config[name][axis_index]
                                         for name in ("kernel", "stride", "pad", "dilation"))
        extent = dilation * (kernel - 1) + 1
        span = size + 2 * pad - extent
        # C's integer division truncates toward zero (Caffe's compute_output_shape).
        out = (abs(span) // stride) * (1 if span >= 0 else -1) + 1
        if out < 1:
            self.fail(f"spatial size {size} with kernel {kernel}, dilation {dilation}, pad {pad} "
                      f"and stride {stride} gives an output size of {out} (must be >= 1)")
        return out

    def compute(self, bottoms, params):
        weights = params[0]
        bias = params[1] if self.config["bias_term"] else None
        return [self._run_engine(bottom, weights, bias) for bottom in bottoms]

    def _run_engine(self, bottom, weights, bias):
        axis = self.config["axis"]
        batch_shape = bottom.shape[:axis]
        data = bottom.reshape((-1,) + bottom.shape[axis:]) if axis != 1 else bottom
        arguments = {name: _int_if_equal(self.config[name])
                     for name in ("stride", "pad", "dilation")}
        top = self.engine(len(self.config["kernel"]))(
            data, weights, bias, group=self.config["group"], **arguments)
        return top.reshape(batch_shape + top.shape[1:]) if axis != 1 else top

    def engine(self, rank):
        return conv2d_caffe if rank == 2 else convnd_caffe


def _int_if_equal(values):
    # One int for equal values keeps conv2d_caffe on its cached fast path.
    return values[0] if len(set(values)) == 1 else values


class DeconvolutionLayer(ConvolutionLayer):
    """Caffe's Deconvolution: weights (C, num_output/group, *kernel); 2-D only here."""

    type = "Deconvolution"

    def setup(self, bottom_shapes):
        shapes = super().setup(bottom_shapes)
        if len(self.config["kernel"]) != 2:
            self.fail("fastconv runs 2-D Deconvolution only; this one has "
                      f"{len(self.config['kernel'])} spatial axes")
        return shapes

    def weight_shape(self, channels):
        return (channels, self.config["num_output"] // self.config["group"],
                *self.config["kernel"])

    def output_size(self, size, axis_index):
        kernel, stride, pad, dilation = (self.config[name][axis_index]
                                         for name in ("kernel", "stride", "pad", "dilation"))
        out = stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad
        if out < 1:
            self.fail(f"spatial size {size} with kernel {kernel}, stride {stride} and pad {pad} "
                      f"gives an output size of {out} (must be >= 1)")
        return out

    def engine(self, rank):
        return deconv2d_caffe


class PoolingLayer(Layer):
    type = "Pooling"

    def configure(self):
        param = self.layer_param.pooling_param
        if param.pool == 2:
            self.fail("STOCHASTIC pooling is not supported (its TEST-phase weighted average is "
                      "not implemented in fastconv)")
        if param.round_mode != 0:
            self.fail("round_mode: FLOOR (a post-1.0 Caffe option) is not supported")
        has = param.HasField
        if param.global_pooling:
            if has("kernel_size") or has("kernel_h") or has("kernel_w"):
                self.fail("with global_pooling: true the kernel size cannot be given")
            kernel = None
        else:
            if has("kernel_size") == (has("kernel_h") and has("kernel_w")) \
                    or has("kernel_size") and (has("kernel_h") or has("kernel_w")):
                self.fail("give kernel_size or both kernel_h and kernel_w (Caffe requires "
                          "both for non-square kernels)")
            kernel = ((param.kernel_size,) * 2 if has("kernel_size")
                      else (param.kernel_h, param.kernel_w))
            if min(kernel) < 1:
                self.fail(f"kernel {kernel} must be > 0")
        pad = self._pair(param, "pad", "pad_h", "pad_w")
        stride = self._pair(param, "stride", "stride_h", "stride_w")
        if min(stride) < 1:
            self.fail(f"stride {stride} must be > 0")
        if param.global_pooling and (pad != (0, 0) or stride != (1, 1)):
            self.fail("with global_pooling: true only pad = 0 and stride = 1 are allowed")
        if kernel is not None and (pad[0] >= kernel[0] or pad[1] >= kernel[1]):
            self.fail(f"pad {pad} must be smaller than the kernel {kernel}")
        self.config.update(method="max" if param.pool == 0 else "ave", kernel=kernel,
                           stride=stride, pad=pad, global_pooling=param.global_pooling)

    def _pair(self, param, name, name_h, name_w):
        has_hw = param.HasField(name_h) or param.HasField(name_w)
        if has_hw:
            if param.HasField(name) or not (param.HasField(name_h) and param.HasField(name_w)):
                self.fail(f"give {name} or both {name_h} and {name_w}")
            return (getattr(param, name_h), getattr(param, name_w))
        return (getattr(param, name),) * 2

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) != 4:
            self.fail(f"{self.describe(0, shape)} must have 4 axes (num, channels, height, "
                      "width)")
        kernel = shape[2:] if self.config["global_pooling"] else self.config["kernel"]
        stride, pad = self.config["stride"], self.config["pad"]
        out = []
        for size, k, s, p in zip(shape[2:], kernel, stride, pad):
            pooled = int(math.ceil((size + 2 * p - k) / s)) + 1
            # The last window must start inside the image or its left padding.
            if (pad[0] or pad[1]) and (pooled - 1) * s >= size + p:
                pooled -= 1
            if pooled < 1:
                self.fail(f"{self.describe(0, shape)} is too small for kernel {tuple(kernel)}, "
                          f"stride {stride}, pad {pad}")
            out.append(pooled)
        return [shape[:2] + tuple(out)]

    def compute(self, bottoms, params):
        config = self.config
        if config["global_pooling"]:
            return [pool2d_caffe(bottoms[0], None, method=config["method"],
                                 global_pooling=True)]
        return [pool2d_caffe(bottoms[0], config["kernel"], stride=config["stride"],
                             pad=config["pad"], method=config["method"])]


# ---------------------------------------------------------------------------------------------
# InnerProduct


class InnerProductLayer(Layer):
    """y = x·Wᵀ + b over the axes from ``axis`` on; W (num_output, K) or (K, num_output) with
    ``transpose``."""

    type = "InnerProduct"

    def configure(self):
        param = self.layer_param.inner_product_param
        if not param.HasField("num_output") or param.num_output == 0:
            self.fail("inner_product_param.num_output must be given and > 0")
        self.config.update(num_output=param.num_output, bias_term=param.bias_term,
                           transpose=param.transpose, axis=param.axis)

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        axis = self.axis(self.config["axis"], len(shape), "inner_product_param.axis")
        inputs = _count(shape, axis)
        self.config.update(axis=axis, inputs=inputs)
        outputs = self.config["num_output"]
        shapes = [(inputs, outputs) if self.config["transpose"] else (outputs, inputs)]
        if self.config["bias_term"]:
            shapes.append((outputs,))
        return shapes

    def param_fillers(self):
        param = self.layer_param.inner_product_param
        return [(param.weight_filler if param.HasField("weight_filler") else None, 0.0),
                (param.bias_filler if param.HasField("bias_filler") else None, 0.0)]

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        axis = self.config["axis"]
        if len(shape) <= axis or _count(shape, axis) != self.config["inputs"]:
            self.fail(f"{self.describe(0, shape)} does not fit: the weights take "
                      f"{self.config['inputs']} inputs from axis {axis} on, the bottom gives "
                      f"{_count(shape, axis) if len(shape) > axis else 0}")
        return [shape[:axis] + (self.config["num_output"],)]

    def compute(self, bottoms, params):
        bottom = bottoms[0]
        axis = self.config["axis"]
        matrix = bottom.reshape(_count(bottom.shape, 0, axis), self.config["inputs"])
        weights = params[0]
        top = matrix @ (weights if self.config["transpose"] else weights.T)
        if self.config["bias_term"]:
            top = top + params[1]
        return [top.reshape(bottom.shape[:axis] + (self.config["num_output"],))]


# ---------------------------------------------------------------------------------------------
# Element-wise ("neuron") layers


class NeuronLayer(Layer):
    """One bottom, one top of the same shape; may run in place."""

    def compute(self, bottoms, params):
        return [self.apply(bottoms[0], params)]

    def apply(self, x, params):
        raise NotImplementedError


class ReLULayer(NeuronLayer):
    type = "ReLU"

    def configure(self):
        self.config["negative_slope"] = self.layer_param.relu_param.negative_slope

    def apply(self, x, params):
        # max(x, 0) + negative_slope * min(x, 0)
        slope = self.scalar(self.config["negative_slope"])
        return np.maximum(x, 0) + slope * np.minimum(x, 0)


class PReLULayer(NeuronLayer):
    type = "PReLU"

    def configure(self):
        self.config["channel_shared"] = self.layer_param.prelu_param.channel_shared

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) < 2:
            self.fail(f"{self.describe(0, shape)} needs at least 2 axes (N, C, ...)")
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
        return np.maximum(x, 0) + slope * np.minimum(x, 0)


class ELULayer(NeuronLayer):
    type = "ELU"

    def configure(self):
        self.config["alpha"] = self.layer_param.elu_param.alpha

    def apply(self, x, params):
        # max(x, 0) + alpha * (exp(min(x, 0)) - 1)
        one = self.scalar(1)
        return np.maximum(x, 0) + self.scalar(self.config["alpha"]) * (
            self.math(np.exp, np.minimum(x, 0)) - one)


class SigmoidLayer(NeuronLayer):
    type = "Sigmoid"

    def apply(self, x, params):
        # Caffe evaluates 0.5 * tanh(0.5 * x) + 0.5 in double (its literals are doubles) and
        # rounds the result to Dtype once.
        return (0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5).astype(self.dtype)


class TanHLayer(NeuronLayer):
    type = "TanH"

    def apply(self, x, params):
        return self.math(np.tanh, x)


class AbsValLayer(NeuronLayer):
    type = "AbsVal"

    def apply(self, x, params):
        return np.abs(x)


class BNLLLayer(NeuronLayer):
    type = "BNLL"

    def apply(self, x, params):
        # x > 0 ? x + log(1. + exp(-x)) : log(1. + exp(x)); exp rounds to Dtype, the rest is
        # double (1. is a double literal), rounded to Dtype at the end.
        positive = x > 0
        exp_term = self.math(np.exp, np.where(positive, -x, x)).astype(np.float64)
        log_term = np.log(1.0 + exp_term)
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
            value = self.scalar(1) if power == 0 else self.math(np.power, shift, power)
            return np.full(x.shape, value, self.dtype)
        top = x * scale if scale != 1 else x.copy()
        if shift != 0:
            top = top + shift
        if power != 1:
            top = self.math(np.power, top, power)
        return top


class _BaseShiftScaleLayer(NeuronLayer):
    """Exp and Log: a function of shift + scale * x with a ``base`` (-1 stands for e)."""

    param_name = None

    def configure(self):
        param = getattr(self.layer_param, self.param_name)
        if param.base != -1 and param.base <= 0:
            self.fail(f"{self.param_name}.base={param.base} must be > 0 (or -1 for e)")
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
        log_base = self.scalar(1) if base == -1 else self.math(np.log, base)
        inner = log_base * scale
        outer = (self.scalar(1) if shift == 0 else
                 self.math(np.power, base, shift) if base != -1 else self.math(np.exp, shift))
        top = self.math(np.exp, x if inner == 1 else x * inner)
        return top * outer if outer != 1 else top


class LogLayer(_BaseShiftScaleLayer):
    type = "Log"
    param_name = "log_param"

    def apply(self, x, params):
        # log_base(shift + scale * x) = ln(shift + scale * x) * (1 / ln(base)), in Dtype.
        base, scale, shift = self.constants()
        base_scale = self.scalar(1) if base == -1 else self.scalar(1) / self.math(np.log, base)
        top = x * scale if scale != 1 else x
        if shift != 0:
            top = top + shift
        top = self.math(np.log, top)
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
        if self.phase != TEST_PHASE:
            self.fail("runs in the TRAIN phase ('phase: TRAIN' in the layer); fastconv runs "
                      "deploy nets only")
        self.config["dropout_ratio"] = self.layer_param.dropout_param.dropout_ratio

    def apply(self, x, params):
        return x.copy()


# ---------------------------------------------------------------------------------------------
# Normalisation


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
        return [shape]

    def compute(self, bottoms, params):
        if self.config["norm_region"] == "ACROSS_CHANNELS":
            return [self._across_channels(bottoms[0])]
        return [self._within_channel(bottoms[0])]

    def _across_channels(self, x):
        # scale_c = k + alpha/size * sum of x² over the `size` channels centred on c (zeros
        # outside), kept as Caffe's running window: the first channel's sum is accumulated
        # term by term, each next one adds the entering square and subtracts the leaving one.
        # y = x * scale^-beta.
        size = self.config["local_size"]
        channels = x.shape[1]
        pre_pad = (size - 1) // 2
        alpha_over_size = self.scalar(self.config["alpha"]) / self.scalar(size)
        padded_square = np.zeros((x.shape[0], channels + size - 1) + x.shape[2:], self.dtype)
        padded_square[:, pre_pad:pre_pad + channels] = x * x
        scale = np.empty_like(x)
        scale[:, 0] = self.scalar(self.config["k"])
        for c in range(size):
            scale[:, 0] += alpha_over_size * padded_square[:, c]
        for c in range(1, channels):
            scale[:, c] = scale[:, c - 1] + alpha_over_size * padded_square[:, c + size - 1]
            scale[:, c] -= alpha_over_size * padded_square[:, c - 1]
        return self.math(np.power, scale, -self.scalar(self.config["beta"])) * x

    def _within_channel(self, x):
        # Caffe builds it from layers: x² -> AVE pooling (local_size, stride 1, pad
        # (local_size-1)/2) -> Power(power=-beta, scale=alpha, shift=1) -> product with x.
        # k is not used here.
        size = self.config["local_size"]
        pooled = pool2d_caffe(x * x, size, stride=1, pad=(size - 1) // 2, method="ave")
        alpha = self.scalar(self.config["alpha"])
        scaled = pooled * alpha if alpha != 1 else pooled
        return x * self.math(np.power, scaled + self.scalar(1), -self.scalar(self.config["beta"]))


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
        shifted = self.math(np.exp, x - x.max(axis=axis, keepdims=True))
        return [shifted / ordered_sum(shifted, axis, keepdims=True)]


class BatchNormLayer(Layer):
    """(x - mean) / sqrt(var + eps) per channel, from the stored statistics divided by the
    stored scale factor (TEST default) or from the batch (``use_global_stats: false``)."""

    type = "BatchNorm"

    def configure(self):
        param = self.layer_param.batch_norm_param
        use_global = (param.use_global_stats if param.HasField("use_global_stats")
                      else self.phase == TEST_PHASE)
        self.config.update(use_global_stats=use_global, eps=param.eps,
                           moving_average_fraction=param.moving_average_fraction)

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        channels = 1 if len(shape) == 1 else shape[1]
        self.config["channels"] = channels
        return [(channels,), (channels,), (1,)]

    def param_fillers(self):
        return [(None, 0.0)] * 3

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        channels = 1 if len(shape) == 1 else shape[1]
        if channels != self.config["channels"]:
            self.fail(f"{self.describe(0, shape)} has {channels} channels; the statistics "
                      f"hold {self.config['channels']}")
        return [shape]

    def compute(self, bottoms, params):
        x = bottoms[0]
        channels = self.config["channels"]
        per_channel = (1, channels) + (1,) * (x.ndim - 2) if x.ndim > 1 else (channels,)
        if self.config["use_global_stats"]:
            stored = params[2].reshape(-1)[0]
            factor = self.scalar(0) if stored == 0 else self.scalar(1) / stored
            mean, variance = params[0] * factor, params[1] * factor
            centred = x - mean.reshape(per_channel)
        else:
            mean = self._batch_mean(x)
            centred = x - mean.reshape(per_channel)
            variance = self._batch_mean(centred * centred)
            self._update_moving_averages(params, mean, variance, x.size // channels)
        deviation = np.sqrt(variance + self.scalar(self.config["eps"]))
        return [centred / deviation.reshape(per_channel)]

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
    """x * scale (+ bias with ``bias_term``): Caffe multiplies, then adds, each rounded."""

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

    def compute(self, bottoms, params):
        x = bottoms[0]
        scale = bottoms[1] if len(bottoms) == 2 else params[0]
        axis = self.operand_axis(x.shape, scale.ndim)
        top = x * self.broadcast(scale, x, axis)
        if self.config["bias_term"]:
            top = top + self.broadcast(params[-1], x, axis)
        return [top]


class BiasLayer(_AxisOperand):
    type = "Bias"
    param_name = "bias_param"

    def setup(self, bottom_shapes):
        return [] if len(bottom_shapes) == 2 else [self.operand_shape(bottom_shapes[0])]

    def param_fillers(self):
        return [] if len(self.bottoms) == 2 else super().param_fillers()

    def compute(self, bottoms, params):
        x = bottoms[0]
        bias = bottoms[1] if len(bottoms) == 2 else params[0]
        return [x + self.broadcast(bias, x, self.operand_axis(x.shape, bias.ndim))]


# ---------------------------------------------------------------------------------------------
# Blob plumbing


class ConcatLayer(Layer):
    type = "Concat"
    max_bottoms = None
    in_place_allowed = False

    def configure(self):
        self.config["axis"] = self.axis_or_legacy(self.layer_param.concat_param, "concat_dim")

    def output_shapes(self, bottom_shapes):
        first = bottom_shapes[0]
        axis = self.axis(self.config["axis"], len(first), "concat_param.axis")
        total = 0
        for index, shape in enumerate(bottom_shapes):
            if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != \
                    first[:axis] + first[axis + 1:]:
                self.fail(f"{self.describe(index, shape)} does not fit "
                          f"{self.describe(0, first)}: all axes but {axis} must agree")
            total += shape[axis]
        return [first[:axis] + (total,) + first[axis + 1:]]

    def compute(self, bottoms, params):
        axis = self.axis(self.config["axis"], bottoms[0].ndim, "concat_param.axis")
        return [np.concatenate(bottoms, axis=axis)]


class SliceLayer(Layer):
    type = "Slice"
    max_tops = None
    in_place_allowed = False

    def configure(self):
        param = self.layer_param.slice_param
        self.config.update(axis=self.axis_or_legacy(param, "slice_dim"),
                           slice_point=list(param.slice_point))
        points = self.config["slice_point"]
        if points and len(points) != len(self.tops) - 1:
            self.fail(f"{len(points)} slice_point values for {len(self.tops)} tops (need "
                      f"{len(self.tops) - 1})")
        if any(b <= a for a, b in zip(points, points[1:])):
            self.fail(f"slice_point {points} must increase")

    def _bounds(self, shape):
        axis = self.axis(self.config["axis"], len(shape), "slice_param.axis")
        size = shape[axis]
        points = self.config["slice_point"]
        if points:
            if points[-1] >= size or points[0] == 0:
                self.fail(f"slice_point {points} does not fit axis {axis} of "
                          f"{self.describe(0, shape)}")
            edges = [0] + points + [size]
        else:
            if size % len(self.tops):
                self.fail(f"axis {axis} of {self.describe(0, shape)} does not divide into "
                          f"{len(self.tops)} equal slices")
            step = size // len(self.tops)
            edges = list(range(0, size + 1, step))
        return axis, edges

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        axis, edges = self._bounds(shape)
        return [shape[:axis] + (end - start,) + shape[axis + 1:]
                for start, end in zip(edges, edges[1:])]

    def compute(self, bottoms, params):
        x = bottoms[0]
        axis, edges = self._bounds(x.shape)
        index = [slice(None)] * x.ndim
        tops = []
        for start, end in zip(edges, edges[1:]):
            index[axis] = slice(start, end)
            tops.append(x[tuple(index)].copy())
        return tops


class SplitLayer(Layer):
    """Copies of the bottom; Caffe inserts these where a blob feeds several layers."""

    type = "Split"
    max_tops = None
    in_place_allowed = False
    shares_data = True

    def compute(self, bottoms, params):
        return [bottoms[0]] * len(self.tops)


class EltwiseLayer(Layer):
    type = "Eltwise"
    min_bottoms, max_bottoms = 2, None

    def configure(self):
        param = self.layer_param.eltwise_param
        operation = {0: "PROD", 1: "SUM", 2: "MAX"}[param.operation]
        coeff = list(param.coeff)
        if coeff and operation != "SUM":
            self.fail("coeff is only allowed with operation SUM")
        if coeff and len(coeff) != len(self.bottoms):
            self.fail(f"{len(coeff)} coeff values for {len(self.bottoms)} bottoms (one per "
                      "bottom)")
        self.config.update(operation=operation, coeff=coeff or [1.0] * len(self.bottoms))

    def output_shapes(self, bottom_shapes):
        for index, shape in enumerate(bottom_shapes[1:], 1):
            if shape != bottom_shapes[0]:
                self.fail(f"{self.describe(index, shape)} differs from "
                          f"{self.describe(0, bottom_shapes[0])}; Eltwise needs equal shapes")
        return [bottom_shapes[0]]

    def compute(self, bottoms, params):
        operation = self.config["operation"]
        if operation == "SUM":
            # Caffe: top = 0, then top += coeff_i * bottom_i for each bottom in order.
            top = np.zeros_like(bottoms[0])
            for coeff, bottom in zip(self.config["coeff"], bottoms):
                top += self.scalar(coeff) * bottom
            return [top]
        if operation == "PROD":
            top = bottoms[0] * bottoms[1]
            for bottom in bottoms[2:]:
                top = top * bottom
            return [top]
        # MAX: Caffe takes bottom 0 where it is strictly greater than bottom 1, else bottom 1;
        # each later bottom replaces the result only where strictly greater.
        top = np.where(bottoms[0] > bottoms[1], bottoms[0], bottoms[1])
        for bottom in bottoms[2:]:
            top = np.where(bottom > top, bottom, top)
        return [top]


class FlattenLayer(Layer):
    type = "Flatten"
    in_place_allowed = False
    shares_data = True

    def configure(self):
        param = self.layer_param.flatten_param
        self.config.update(axis=param.axis, end_axis=param.end_axis)

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        start = self.axis(self.config["axis"], len(shape), "flatten_param.axis")
        end = self.axis(self.config["end_axis"], len(shape), "flatten_param.end_axis")
        if end < start:
            self.fail(f"end_axis {end} comes before axis {start} for {self.describe(0, shape)}")
        return [shape[:start] + (_count(shape, start, end + 1),) + shape[end + 1:]]

    def compute(self, bottoms, params):
        return [bottoms[0].reshape(self.output_shapes([bottoms[0].shape])[0])]


class ReshapeLayer(Layer):
    type = "Reshape"
    in_place_allowed = False
    shares_data = True

    def configure(self):
        param = self.layer_param.reshape_param
        dims = [int(dim) for dim in param.shape.dim]
        if dims.count(-1) > 1:
            self.fail(f"shape {dims} has more than one -1 (at most one dimension is inferred)")
        if any(dim < -1 for dim in dims):
            self.fail(f"shape {dims} has a dimension below -1")
        if param.num_axes < -1:
            self.fail(f"num_axes={param.num_axes} must be >= 0, or -1 for all")
        self.config.update(shape=dims, axis=param.axis, num_axes=param.num_axes)

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        dims, axis, num_axes = (self.config[name] for name in ("shape", "axis", "num_axes"))
        start = axis if axis >= 0 else len(shape) + axis + 1
        if not 0 <= start <= len(shape):
            self.fail(f"axis {axis} is out of range for {self.describe(0, shape)}")
        end = len(shape) if num_axes == -1 else start + num_axes
        if end > len(shape):
            self.fail(f"axis {axis} + num_axes {num_axes} is out of range for "
                      f"{self.describe(0, shape)}")
        top = list(shape[:start]) + list(dims) + list(shape[end:])
        for index, dim in enumerate(dims):
            if dim == 0:
                if start + index >= len(shape):
                    self.fail(f"shape {dims} has a 0 at position {index} but "
                              f"{self.describe(0, shape)} has no axis {start + index} to copy")
                top[start + index] = shape[start + index]
        if -1 in dims:
            known = _count([dim for dim in top if dim != -1])
            total = _count(shape)
            if known == 0 or total % known:
                self.fail(f"{self.describe(0, shape)} ({total} values) does not divide by the "
                          f"given dimensions {tuple(top)} (product {known})")
            top[start + dims.index(-1)] = total // known
        if _count(top) != _count(shape):
            self.fail(f"the new shape {tuple(top)} holds {_count(top)} values, "
                      f"{self.describe(0, shape)} holds {_count(shape)}")
        return [tuple(top)]

    def compute(self, bottoms, params):
        return [bottoms[0].reshape(self.output_shapes([bottoms[0].shape])[0])]


class CropLayer(Layer):
    """The first bottom cropped to the second's size on axes >= ``axis``, at ``offset``."""

    type = "Crop"
    min_bottoms, max_bottoms = 2, 2
    in_place_allowed = False

    def configure(self):
        param = self.layer_param.crop_param
        self.config.update(axis=param.axis, offset=list(param.offset))

    def _offsets(self, shape, reference):
        if len(shape) != len(reference):
            self.fail(f"{self.describe(0, shape)} and {self.describe(1, reference)} must have "
                      "the same number of axes")
        start = self.axis(self.config["axis"], len(shape), "crop_param.axis")
        offsets = self.config["offset"]
        if len(offsets) > 1 and start + len(offsets) != len(shape):
            self.fail(f"{len(offsets)} offset values for the {len(shape) - start} axes from "
                      f"axis {start} on (give one value, or one per cropped axis)")
        result = []
        for index in range(len(shape)):
            if index < start:
                result.append(0)
                continue
            offset = offsets[0] if len(offsets) == 1 else (
                offsets[index - start] if offsets else 0)
            if shape[index] - offset < reference[index]:
                self.fail(f"crop of axis {index} is out of bounds: size {reference[index]} at "
                          f"offset {offset} does not fit {self.describe(0, shape)}")
            result.append(offset)
        return start, result

    def output_shapes(self, bottom_shapes):
        shape, reference = bottom_shapes
        start, _ = self._offsets(shape, reference)
        return [shape[:start] + reference[start:]]

    def compute(self, bottoms, params):
        x, reference = bottoms
        start, offsets = self._offsets(x.shape, reference.shape)
        index = tuple(slice(offset, offset + (reference.shape[axis] if axis >= start
                                              else x.shape[axis]))
                      for axis, offset in enumerate(offsets))
        return [x[index].copy()]


class ArgMaxLayer(Layer):
    """Indices (and with ``out_max_val`` values) of the ``top_k`` largest values; ties go to
    the larger index, as Caffe's sort of (value, index) pairs in descending order gives."""

    type = "ArgMax"

    def configure(self):
        param = self.layer_param.argmax_param
        if param.top_k < 1:
            self.fail(f"top_k={param.top_k} must be >= 1")
        self.config.update(out_max_val=param.out_max_val, top_k=param.top_k,
                           axis=param.axis if param.HasField("axis") else None)

    def _layout(self, shape):
        """(axis or None, size of the searched dimension)."""
        axis = self.config["axis"]
        if axis is None:
            return None, _count(shape, 1)
        axis = self.axis(axis, len(shape), "argmax_param.axis")
        return axis, shape[axis]

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        axis, size = self._layout(shape)
        top_k = self.config["top_k"]
        if top_k > size:
            self.fail(f"top_k={top_k} exceeds the {size} values searched in "
                      f"{self.describe(0, shape)}")
        if axis is not None:
            return [shape[:axis] + (top_k,) + shape[axis + 1:]]
        top = [1] * max(3, len(shape))
        top[0], top[2] = shape[0], top_k
        if self.config["out_max_val"]:
            top[1] = 2
        return [tuple(top)]

    def compute(self, bottoms, params):
        x = bottoms[0]
        axis, size = self._layout(x.shape)
        top_k = self.config["top_k"]
        rows = (x.reshape(x.shape[0], size) if axis is None
                else np.moveaxis(x, axis, -1).reshape(-1, size))
        positions = np.broadcast_to(np.arange(size), rows.shape)
        # lexsort's last key is the primary one: value descending, then index descending.
        order = np.lexsort((-positions, -rows), axis=-1)[:, :top_k]
        values = np.take_along_axis(rows, order, axis=-1)
        top_shape = self.output_shapes([x.shape])[0]
        if axis is None:
            parts = [order.astype(self.dtype)[:, None, :]]
            if self.config["out_max_val"]:
                parts.append(values[:, None, :])
            return [np.concatenate(parts, axis=1).reshape(top_shape)]
        result = values if self.config["out_max_val"] else order.astype(self.dtype)
        moved = x.shape[:axis] + x.shape[axis + 1:] + (top_k,)
        return [np.moveaxis(result.reshape(moved), -1, axis).copy()]


LAYER_TYPES = {cls.type: cls for cls in (
    InputLayer, ConvolutionLayer, DeconvolutionLayer, PoolingLayer, InnerProductLayer,
    ReLULayer, PReLULayer, ELULayer, SigmoidLayer, TanHLayer, AbsValLayer, BNLLLayer,
    PowerLayer, ExpLayer, LogLayer, ThresholdLayer, DropoutLayer, LRNLayer, SoftmaxLayer,
    BatchNormLayer, ScaleLayer, BiasLayer, ConcatLayer, SliceLayer, SplitLayer, EltwiseLayer,
    FlattenLayer, ReshapeLayer, CropLayer, ArgMaxLayer)}


def make_layer(layer_param, dtype, phase=TEST_PHASE):
    """The Layer for a LayerParameter; ValueError naming the layer for an unsupported type."""
    layer_class = LAYER_TYPES.get(layer_param.type)
    if layer_class is None:
        raise ValueError(f"layer '{layer_param.name}' has type '{layer_param.type}', which "
                         f"fastconv does not run; supported types: "
                         f"{', '.join(sorted(LAYER_TYPES))}")
    return layer_class(layer_param, dtype, phase)


def fill(filler, default_value, shape, dtype, rng):
    """A parameter blob's initial values for a net without weights, from its FillerParameter
    (Caffe's fillers; the random ones draw from numpy, not Caffe's random stream)."""
    shape = tuple(shape)
    if filler is None or filler.type == "constant":
        value = default_value if filler is None else filler.value
        return np.full(shape, value, dtype)
    # Caffe's fan_in = count / num and fan_out = count / channels, on the legacy 4-D view.
    count = _count(shape)
    fan_in = count // max(shape[0] if shape else 1, 1)
    fan_out = count // max(shape[1] if len(shape) > 1 else 1, 1)
    norm = {0: fan_in, 1: fan_out, 2: (fan_in + fan_out) / 2}[filler.variance_norm]
    if filler.type == "gaussian":
        values = rng.normal(filler.mean, filler.std, shape)
    elif filler.type == "uniform":
        values = rng.uniform(filler.min, filler.max, shape)
    elif filler.type == "xavier":
        limit = math.sqrt(3.0 / norm)
        values = rng.uniform(-limit, limit, shape)
    elif filler.type == "msra":
        values = rng.normal(0.0, math.sqrt(2.0 / norm), shape)
    elif filler.type == "bilinear":
        values = _bilinear(shape)
    else:
        raise ValueError(f"filler type '{filler.type}' is not supported (constant, gaussian, "
                         "uniform, xavier, msra, bilinear); give the weights file")
    return values.astype(dtype)


def _bilinear(shape):
    """Caffe's BilinearFiller: the upsampling kernel for Deconvolution, same for every
    channel pair."""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"the bilinear filler needs a 4-D blob with square kernels, got {shape}")
    size = shape[3]
    factor = math.ceil(size / 2.0)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    taps = 1 - np.abs(np.arange(size) / factor - centre)
    return np.broadcast_to(np.outer(taps, taps), shape).copy()
