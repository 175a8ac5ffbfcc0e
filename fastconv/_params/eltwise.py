"""Caffe's Eltwise: its parameters (eltwise_param.operation, coeff) and its bottoms' shapes."""
from __future__ import annotations

from .common import as_real

OPERATIONS = ("PROD", "SUM", "MAX")


def caffe_eltwise_params(shapes, operation, coeff):
    """Checked (operation, coeff as a list of floats, one per bottom: 1 each by default) for
    eltwise_caffe; the bottoms must be at least two, of one shape."""
    if len(shapes) < 2:
        raise ValueError(f"Eltwise needs at least two bottoms; got {len(shapes)}")
    for index, shape in enumerate(shapes[1:], 1):
        if tuple(shape) != tuple(shapes[0]):
            raise ValueError(f"bottom {index} has shape {tuple(shape)}, bottom 0 "
                             f"{tuple(shapes[0])}: Caffe's Eltwise needs equal shapes")
    if operation not in OPERATIONS:
        raise ValueError(f"operation={operation!r} must be one of {OPERATIONS} (Caffe "
                         "eltwise_param.operation)")
    if coeff is None:
        return operation, [1.0] * len(shapes)
    if operation != "SUM":
        raise ValueError(f"coeff is only allowed with operation SUM, not {operation} (Caffe "
                         "eltwise_param.coeff)")
    coeff = [as_real(value, "coeff", "eltwise_param.coeff") for value in coeff]
    if len(coeff) != len(shapes):
        raise ValueError(f"{len(coeff)} coeff values for {len(shapes)} bottoms (Caffe "
                         "eltwise_param.coeff: one per bottom)")
    return operation, coeff
