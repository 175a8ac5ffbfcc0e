"""The layers that slide a kernel or apply a weight matrix: Convolution, Deconvolution and
Pooling run on fastconv's engine; InnerProduct is one matrix product."""
from __future__ import annotations

import numpy as np

from ..conv_ops import (
    LAST_WINDOW_PAST_INPUT,
    caffe_conv_out_size,
    caffe_deconv_out_size,
    caffe_pool_out_size,
    conv2d_caffe,
    convnd_caffe,
    deconv2d_caffe,
    inner_product_caffe,
    last_window_past_input,
    pool2d_caffe,
)
from .base import Layer, element_count


class ConvolutionLayer(Layer):
    """Caffe's Convolution: weights (num_output, C/group, *kernel), bias (num_output,)."""

    type = "Convolution"
    max_bottoms = None
    max_tops = None

    def check_counts(self):
        super().check_counts()
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
        if rank > 3:   # Caffe's CPU convolution takes any number; fastconv's engine up to 3
            self.fail(f"{self.describe(0, shape)} has {rank} spatial axes after the channel "
                      f"axis {axis}; fastconv convolves 1 to 3")
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
        # C's integer division truncates toward zero (Caffe's compute_output_shape).
        out = caffe_conv_out_size(size, kernel, stride, pad, dilation)
        if out < 1:
            self.fail(f"spatial size {size} with kernel {kernel}, dilation {dilation}, pad {pad} "
                      f"and stride {stride} gives an output size of {out} (must be >= 1)")
        return out

    def compute_into(self, bottoms, params, targets):
        weights = params[0]
        bias = params[1] if self.config["bias_term"] else None
        # A 2-D convolution writes its top blob's array itself (the copy of a new array into
        # it had been 5 % of ResNet-50's forward); never a bottom (it cannot run in place).
        return [self._run_engine(bottom, weights, bias,
                                 None if any(target is other for other in bottoms) else target)
                for bottom, target in zip(bottoms, targets)]

    def _run_engine(self, bottom, weights, bias, target=None):
        axis = self.config["axis"]
        batch_shape = bottom.shape[:axis]
        data = bottom.reshape((-1,) + bottom.shape[axis:]) if axis != 1 else bottom
        arguments = {name: _int_if_equal(self.config[name])
                     for name in ("stride", "pad", "dilation")}
        engine = self.engine(len(self.config["kernel"]))
        if target is not None and engine is conv2d_caffe and axis == 1:
            arguments["out"] = target
        top = engine(data, weights, bias, group=self.config["group"], **arguments)
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
        out = caffe_deconv_out_size(size, kernel, stride, pad, dilation)
        if out < 1:
            self.fail(f"spatial size {size} with kernel {kernel}, stride {stride} and pad {pad} "
                      f"gives an output size of {out} (must be >= 1)")
        return out

    def engine(self, rank):
        return deconv2d_caffe


class PoolingLayer(Layer):
    type = "Pooling"
    max_tops = 2   # MAX may give its mask as a second top

    def configure(self):
        param = self.layer_param.pooling_param
        if len(self.tops) == 2 and param.pool != 0:
            self.fail("a second top (the mask of the maxima) is only given by MAX pooling; "
                      "Caffe refuses it too")
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
            # Caffe's two checks: kernel_size or both kernel_h and kernel_w, not both; a
            # kernel_size next to one of kernel_h/kernel_w passes them, and kernel_size wins.
            if has("kernel_size") == (has("kernel_h") and has("kernel_w")):
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
            # Rounded up; then the last window must start inside the image or its left
            # padding (either axis's padding clips both, as in Caffe).
            pooled = caffe_pool_out_size(size, k, s, p, any(pad))
            if pooled < 1:
                self.fail(f"{self.describe(0, shape)} is too small for kernel {tuple(kernel)}, "
                          f"stride {stride}, pad {pad}")
            if last_window_past_input(size, pooled, s, p):   # refused at load, not forward
                self.fail(f"kernel {tuple(kernel)}, stride {stride}, pad {pad} on "
                          f"{self.describe(0, shape)}: {LAST_WINDOW_PAST_INPUT}")
            out.append(pooled)
        return [shape[:2] + tuple(out)] * len(self.tops)

    def compute(self, bottoms, params):
        config = self.config
        if config["global_pooling"]:
            pooled = pool2d_caffe(bottoms[0], None, method=config["method"], global_pooling=True)
        else:
            pooled = pool2d_caffe(bottoms[0], config["kernel"], stride=config["stride"],
                                  pad=config["pad"], method=config["method"])
        if len(self.tops) == 1:
            return [pooled]
        return [pooled, self._max_mask(bottoms[0], pooled.shape[2:])]

    def _max_mask(self, x, out_size):
        """Caffe's second top of MAX pooling: for each output, the index h * width + w in its
        plane of the window's first maximum, as Caffe's loop finds it (row by row, replacing on
        a strictly greater value, from -FLT_MAX: NaN never wins), or -1 where no value exceeds
        -FLT_MAX. numpy, window by window: the mask is rarely asked for."""
        config = self.config
        height, width = x.shape[2:]
        kernel = (height, width) if config["global_pooling"] else config["kernel"]
        stride, pad = config["stride"], config["pad"]
        floor = -np.finfo(np.float32).max
        mask = np.empty(x.shape[:2] + tuple(out_size), x.dtype)
        for oh in range(out_size[0]):
            h0 = oh * stride[0] - pad[0]
            h1, h0 = min(h0 + kernel[0], height), max(h0, 0)
            for ow in range(out_size[1]):
                w0 = ow * stride[1] - pad[1]
                w1, w0 = min(w0 + kernel[1], width), max(w0, 0)
                window = x[:, :, h0:h1, w0:w1].reshape(x.shape[0], x.shape[1], -1)
                window = np.where(np.isnan(window), -np.inf, window)
                first = window.argmax(axis=2)
                rows, columns = np.divmod(first, w1 - w0)
                index = (h0 + rows) * width + (w0 + columns)
                mask[:, :, oh, ow] = np.where(window.max(axis=2) > floor, index, -1)
        return mask


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
        inputs = element_count(shape, axis)
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
        if len(shape) <= axis or element_count(shape, axis) != self.config["inputs"]:
            self.fail(f"{self.describe(0, shape)} does not fit: the weights take "
                      f"{self.config['inputs']} inputs from axis {axis} on, the bottom gives "
                      f"{element_count(shape, axis) if len(shape) > axis else 0}")
        return [shape[:axis] + (self.config["num_output"],)]

    def compute(self, bottoms, params):
        bias = params[1] if self.config["bias_term"] else None
        return [inner_product_caffe(bottoms[0], params[0], bias, axis=self.config["axis"],
                                    transpose=self.config["transpose"])]
