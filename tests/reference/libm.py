"""The C library's pow and powf, element by element through ctypes: what Caffe's caffe_powx
computes (std::pow on float calls powf), as the reference for LRN's power. Caffe 1.0 runs on
glibc (Debian bullseye: 2.31), whose powf is the one of glibc 2.28 on."""
import ctypes
import ctypes.util
import platform

import numpy as np

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or None)
_POWF = _LIBM.powf
_POWF.restype, _POWF.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
_POW = _LIBM.pow
_POW.restype, _POW.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]

IS_GLIBC = platform.libc_ver()[0] == "glibc"


def libm_power(base, exponent):
    """base ** exponent per element by powf (float32 base) or pow (float64), in base's dtype."""
    base = np.asarray(base)
    function = _POWF if base.dtype == np.float32 else _POW
    exponent = float(base.dtype.type(exponent))
    flat = [function(float(value), exponent) for value in base.reshape(-1)]
    return np.array(flat, dtype=base.dtype).reshape(base.shape)


def libm_function(name, x):
    """The C library's exp, log or tanh per element: expf/logf/tanhf for a float32 x, exp/log/tanh
    for float64."""
    x = np.asarray(x)
    suffix = "f" if x.dtype == np.float32 else ""
    function = getattr(_LIBM, name + suffix)
    c_type = ctypes.c_float if x.dtype == np.float32 else ctypes.c_double
    function.restype, function.argtypes = c_type, [c_type]
    flat = [function(float(value)) for value in x.reshape(-1)]
    return np.array(flat, dtype=x.dtype).reshape(x.shape)
