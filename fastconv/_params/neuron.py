"""Caffe's neurons: ReLU's parameter (relu_param.negative_slope) and the array it may write to;
the element functions of Caffe's math (math_caffe)."""
from __future__ import annotations

from .common import as_real, check_out


def caffe_relu_params(x, negative_slope, out, dtype):
    """Checked negative_slope (a float) for relu_caffe, and ``out``, which must be a writeable
    C-contiguous ``dtype`` array of x's shape, x itself or apart from it."""
    negative_slope = as_real(negative_slope, "negative_slope", "relu_param.negative_slope")
    check_out(out, x.shape, dtype, (x,), "x", in_place=True)
    return negative_slope


MATH_FUNCTIONS = ("exp", "log", "tanh", "pow")


def caffe_math_function(function, exponent):
    """Checked ``function`` (one of MATH_FUNCTIONS) and ``exponent`` (a float with "pow", which
    needs one, else 0.0) for math_caffe."""
    if not isinstance(function, str) or function not in MATH_FUNCTIONS:
        raise ValueError(f"function={function!r} must be one of {', '.join(MATH_FUNCTIONS)} "
                         "(Caffe's caffe_exp, caffe_log, tanh, caffe_powx)")
    if (function == "pow") != (exponent is not None):
        raise ValueError(f"exponent={exponent!r} goes with function='pow', and only with it "
                         "(Caffe's power_param.power)")
    return 0.0 if exponent is None else as_real(exponent, "exponent", "power_param.power")
