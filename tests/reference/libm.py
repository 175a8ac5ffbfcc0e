"""The C library's exp, log, tanh and pow, element by element through ctypes: what Caffe's Dtype
code computes (std::pow, std::exp, ... on a float call powf, expf, ...), as the reference for
math_caffe and LRN's power. Caffe 1.0 runs on glibc (Debian bullseye: 2.31), whose float
functions are those of glibc 2.28 on."""
import ctypes
import ctypes.util
import platform

import numpy as np

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or None)

IS_GLIBC = platform.libc_ver()[0] == "glibc"


def _elementwise(name, x, *scalars):
    """The C library's ``name`` (``name`` + "f" for a float32 x) of each element of x and the
    ``scalars``, in x's dtype."""
    x = np.asarray(x)
    single = x.dtype == np.float32
    function = getattr(_LIBM, name + ("f" if single else ""))
    c_type = ctypes.c_float if single else ctypes.c_double
    function.restype, function.argtypes = c_type, [c_type] * (1 + len(scalars))
    scalars = [float(x.dtype.type(value)) for value in scalars]
    flat = [function(float(value), *scalars) for value in x.reshape(-1)]
    return np.array(flat, dtype=x.dtype).reshape(x.shape)


def libm_power(base, exponent):
    """base ** exponent per element by powf (float32 base) or pow (float64), in base's dtype."""
    return _elementwise("pow", base, exponent)


def libm_function(name, x):
    """The C library's exp, log or tanh per element: expf/logf/tanhf for a float32 x, exp/log/tanh
    for float64."""
    return _elementwise(name, x)
