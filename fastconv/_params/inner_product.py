"""Caffe's InnerProduct: its parameters and the shape of its product."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .common import as_int, check_addressable, check_bias_shape


@dataclass(frozen=True)
class InnerProductShape:
    """x viewed as ``rows`` x ``inputs`` (the axes before ``axis`` by those from it on), the
    weights as ``outputs`` x ``inputs`` (Caffe's blob; transposed when ``transpose``), and the
    shape of the result."""

    rows: int
    inputs: int
    outputs: int
    transpose: bool
    output_shape: tuple


def caffe_inner_product_shape(x_shape, w_shape, b_shape, axis, transpose):
    """Check an InnerProduct call and describe its product; every message names the argument
    and the Caffe parameter."""
    axis = as_int(axis, "axis", "inner_product_param.axis")
    if len(x_shape) == 0:
        raise ValueError("x must have at least one axis (Caffe's bottom blob of InnerProduct); "
                         "got a scalar")
    if not -len(x_shape) <= axis < len(x_shape):
        raise ValueError(f"axis={axis} is out of range for x of shape {tuple(x_shape)} "
                         f"(Caffe inner_product_param.axis: -{len(x_shape)} to "
                         f"{len(x_shape) - 1})")
    axis %= len(x_shape)
    if not isinstance(transpose, bool):
        raise TypeError(f"transpose={transpose!r} must be True or False (Caffe "
                        "inner_product_param.transpose)")
    if len(w_shape) != 2:
        raise ValueError(f"w must be Caffe's 2-D weight blob (num_output, K), or (K, num_output) "
                         f"with transpose=True; got shape {tuple(w_shape)}")
    inputs = math.prod(x_shape[axis:])
    outputs, w_inputs = (w_shape[1], w_shape[0]) if transpose else w_shape
    if w_inputs != inputs:
        layout = "(K, num_output)" if transpose else "(num_output, K)"
        raise ValueError(f"w of shape {tuple(w_shape)} takes K={w_inputs} inputs ({layout}), but "
                         f"x of shape {tuple(x_shape)} gives K={inputs} from axis {axis} on "
                         "(Caffe inner_product_param.axis; Caffe: \"Input size incompatible "
                         "with inner product parameters\")")
    check_bias_shape(b_shape, outputs, "b", "num_output")
    output_shape = tuple(x_shape[:axis]) + (outputs,)
    check_addressable(output_shape, "x and w")
    return InnerProductShape(rows=math.prod(x_shape[:axis]), inputs=inputs, outputs=outputs,
                             transpose=transpose, output_shape=output_shape)
