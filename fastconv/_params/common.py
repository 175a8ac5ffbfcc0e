"""Rules shared by every entry point: integer parameters, pairs, arrays and dtypes, the shape
dataclasses the C core reads, and the wording of sizes in messages.

Everything that can be wrong with a call is found in ``fastconv._params``, before anything
crosses into C, and reported in the user's vocabulary: the argument, the value seen, the rule,
and the Caffe or Keras parameter it corresponds to.
"""
from __future__ import annotations

import math
import numbers
import operator
import os
import sys
from dataclasses import dataclass

import numpy as np

from .._engine import NATIVE_DTYPES


@dataclass(frozen=True)
class Conv2DGeometry:
    """Shape of one 2-D convolution, NCHW data and OIHW weights, as the C core sees it.

    ``pad_top``/``pad_left`` is the zero padding before the first row/column; the padding after
    the last one is implied by ``out_h``/``out_w`` (taps past the input read as zero), which is
    how Caffe's symmetric and Keras's asymmetric padding share one kernel.
    """

    batch: int
    in_channels: int
    in_h: int
    in_w: int
    out_channels: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    dilation_h: int
    dilation_w: int
    group: int

    @property
    def output_shape(self):
        return (self.batch, self.out_channels, self.out_h, self.out_w)

    @property
    def flops(self):
        """Multiply-adds counted as two flops, the convention of the benchmark tables."""
        kernel_dim = self.in_channels // self.group * self.kernel_h * self.kernel_w
        return 2 * self.batch * self.out_channels * self.out_h * self.out_w * kernel_dim


@dataclass(frozen=True)
class ConvNDGeometry:
    """Shape of one 1-D, 2-D or 3-D convolution, (N, C, *spatial) data and Caffe weights
    (num_output, C/group, *kernel), as the N-D C core sees it.

    ``pad`` is the zero padding before the first element of each axis; the padding after is
    implied by ``out_size``, as in :class:`Conv2DGeometry`. Deconvolution and transposed
    convolution are described by the convolution whose backward-data they compute.
    """

    batch: int
    in_channels: int
    out_channels: int
    group: int
    in_size: tuple
    out_size: tuple
    kernel: tuple
    stride: tuple
    pad: tuple
    dilation: tuple

    @property
    def rank(self):
        return len(self.in_size)

    @property
    def input_shape(self):
        return (self.batch, self.in_channels, *self.in_size)

    @property
    def output_shape(self):
        return (self.batch, self.out_channels, *self.out_size)

    @property
    def weight_shape(self):
        return (self.out_channels, self.in_channels // self.group, *self.kernel)


# ---------------------------------------------------------------------------------------------
# Scalars and pairs


# Caffe's LayerParameter stores sizes, strides, pads and groups as 32-bit integers.
INT32_MAX = 2**31 - 1


def as_int(value, name, param):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer (Caffe/Keras parameter {param})")
    number = operator.index(value)
    if abs(number) > INT32_MAX:
        raise ValueError(f"{name}={number} is out of range: Caffe/Keras parameter {param} is a "
                         "32-bit integer")
    return number


def as_real(value, name, param):
    """A real number (not a bool) -> float; the message names Caffe's parameter ``param``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a number (Caffe {param})")
    return float(value)


def _sequence_items(value, name, param):
    """The items of a tuple, list or 1-D array of per-axis values (a 2-D array is refused, not
    flattened)."""
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise ValueError(f"{name}={value!r} must be an int or a 1-D sequence of ints, one per "
                         f"spatial axis; got a {value.ndim}-D array (Caffe {param})")
    return list(value)


def as_pair(value, name, param):
    """An int or an (h, w) pair -> (h, w) of Python ints."""
    if isinstance(value, (tuple, list, np.ndarray)):
        items = _sequence_items(value, name, param)
        if len(items) != 2:
            raise ValueError(
                f"{name}={value!r} must be an int or an (h, w) pair; got {len(items)} values "
                f"(Caffe {param}_h/{param}_w)"
            )
        return (as_int(items[0], name, f"{param}_h"), as_int(items[1], name, f"{param}_w"))
    number = as_int(value, name, param)
    return (number, number)


def as_tuple(value, rank, name, param):
    """An int or a sequence of ``rank`` ints -> tuple of ``rank`` Python ints (N-D layers)."""
    if isinstance(value, (tuple, list, np.ndarray)):
        items = _sequence_items(value, name, param)
        if len(items) != rank:
            raise ValueError(
                f"{name}={value!r} must be an int or {rank} values, one per spatial axis "
                f"(Caffe {param})"
            )
        return tuple(as_int(item, name, param) for item in items)
    return (as_int(value, name, param),) * rank


def check_positive(pair, name, param, framework="Caffe"):
    """Every value of ``pair`` >= 1; the message names ``framework``'s parameter ``param``
    (and, for Caffe, what Caffe itself does with the bad value)."""
    for value in pair:
        if value < 1:
            consequence = ""
            if framework == "Caffe":
                consequence = (f"; Caffe itself {'aborts' if param == 'stride' else 'silently misbehaves'}"
                               f" on {value}")
            raise ValueError(f"{name}={format_pair(pair)} must be >= 1 ({framework} {param}"
                             f"{consequence})")


def check_bias_shape(b_shape, out_channels, name, count_name, note=""):
    """A bias of shape ``(out_channels,)`` or none; the message uses the caller's names."""
    if b_shape is not None and tuple(b_shape) != (out_channels,):
        raise ValueError(f"{name} must have shape ({count_name},) = ({out_channels},); got "
                         f"{tuple(b_shape)}{note}")


def check_non_negative(pair, name, param):
    for value in pair:
        if value < 0:
            raise ValueError(f"{name}={format_pair(pair)} must be >= 0 (Caffe {param})")


def format_pair(values):
    """An (h, w) pair as the user would write it: ``3`` when both are 3, else ``(3, 1)``."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def format_dims(sizes):
    """Sizes as ``HxW`` (or ``DxHxW``)."""
    return "x".join(str(s) for s in sizes)


def _physical_memory_bytes():
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


PHYSICAL_MEMORY_BYTES = _physical_memory_bytes()


def check_addressable(shape, params):
    """An output of ``shape`` must fit in memory that numpy can address (8-byte elements, the
    widest fastconv returns), and in this machine's memory even as float32 (a larger one could
    only fail in the allocator or swap for minutes); numpy's own refusal names no parameter, so
    this one names ``params``, the parameters that made the output this large."""
    count = math.prod(shape)
    if count * 8 > sys.maxsize:
        raise ValueError(
            f"{params} gives an output of shape {tuple(shape)}: {count:.3g} elements, more than "
            "this machine can address"
        )
    if PHYSICAL_MEMORY_BYTES and count * 4 > PHYSICAL_MEMORY_BYTES:
        raise ValueError(
            f"{params} gives an output of shape {tuple(shape)}: {count * 4 / 2**30:.3g} GiB even "
            f"in float32, more than this machine's {PHYSICAL_MEMORY_BYTES / 2**30:.3g} GiB of "
            "memory"
        )


def extent(kernel, dilation):
    """Span of a dilated kernel on the input."""
    return dilation * (kernel - 1) + 1


# ---------------------------------------------------------------------------------------------
# Arrays and dtypes


def compute_dtype(*arrays):
    """The dtype fastconv computes and returns in, following numpy's promotion.

    float32 stays float32; float64 anywhere makes float64; float16 and small integers compute
    in float32, larger integers and bool-with-int mixes in float64 (numpy's rule with float32).
    Complex, object, string and extended-precision inputs are refused.
    """
    for name, array in arrays:
        if array is not None:
            _check_real(name, array)
    dtype = np.result_type(*(a.dtype for _, a in arrays if a is not None), np.float32)
    if dtype not in NATIVE_DTYPES:
        names = ", ".join(f"{n}: {a.dtype}" for n, a in arrays if a is not None)
        raise TypeError(f"fastconv computes in float32 or float64; these dtypes promote to "
                        f"{dtype} ({names})")
    return dtype


def as_array(value, name):
    """Any array-like -> ndarray, without copying (the input is never modified)."""
    if value is None:
        raise TypeError(f"{name} is None; an array is required")
    array = np.asarray(value)
    _check_real(name, array)
    return array


def check_out(out, shape, dtype, inputs, what, *, in_place):
    """``out`` (None, or where a layer writes its result): a writeable C-contiguous ``dtype``
    array of ``shape`` that shares no memory with ``inputs`` (``what`` names them in the
    message; None entries skipped), except, for a layer that can run in place (Caffe's ReLU,
    BatchNorm, Scale, Eltwise), by being one of them itself."""
    if out is None:
        return
    if not (isinstance(out, np.ndarray) and out.shape == tuple(shape) and out.dtype == dtype
            and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous {dtype} array of the output's "
                         f"shape {tuple(shape)}; got {type(out).__name__} "
                         f"{getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}")
    for array in inputs:
        if array is None or (in_place and out is array) or not np.shares_memory(out, array):
            continue
        raise ValueError(f"out overlaps {what} without being it" if in_place else
                         f"out overlaps {what}: the layer reads its inputs while it writes out")


def _check_real(name, array):
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {array.dtype}; fastconv computes real float32/float64 "
            "convolutions (complex, object and string arrays are not supported)"
        )


def check_gradient_shape(dy_shape, expected, name, what):
    """``dy`` must have exactly the shape of the forward output it is the gradient of."""
    if tuple(dy_shape) != tuple(expected):
        raise ValueError(
            f"{name} has shape {tuple(dy_shape)}; expected {tuple(expected)}, the shape of "
            f"{what} for these inputs and parameters"
        )
