"""Exact mode: integer-valued inputs for which every float32 partial sum is exact.

Bound: with integer data, ``|x| <= a``, ``|w| <= a`` and ``|b| <= a**2``, every partial sum of
an output (in any order, with or without FMA, bias first or last) is an integer of magnitude at
most ``K*a*a + a*a = (K + 1) * a**2``. float32 represents every integer up to ``2**24`` exactly,
so if ``(K + 1) * a**2 <= 2**24`` no rounding can happen anywhere: the float32 result is the
exact integer, fastconv's float64 reference is exact too, and any difference at all is a bug in
the code under test. Values with ``|v| <= 2**11`` are also exact in TF32 (10 explicit mantissa
bits) and float16, so exact inputs stay exact on GPUs running TF32.
"""
from __future__ import annotations

import math

import numpy as np

EXACT_LIMIT = 2 ** 24   # integers up to this are exact in float32
DEFAULT_MAX_ABS = 8     # small values keep the bound for K up to 2**24 / 65 - 1 = 258,110


def kernel_dim_of(w_shape, layout):
    """K for a Caffe OIHW or Keras HWIO kernel shape."""
    w_shape = tuple(w_shape)
    if len(w_shape) != 4:
        raise ValueError(f"kernel shape must be 4-D; got {w_shape}")
    return int(np.prod(w_shape[1:] if layout == "caffe" else w_shape[:3]))


def exact_max_abs(kernel_dim):
    """The largest ``a`` with ``(K + 1) * a**2 <= 2**24``, capped at DEFAULT_MAX_ABS."""
    a = min(DEFAULT_MAX_ABS, math.isqrt(EXACT_LIMIT // (kernel_dim + 1)))
    if a < 1:
        raise ValueError(f"K={kernel_dim} is too long for exact float32 sums (needs K + 1 <= 2**24)")
    return a


def exact_conv_inputs(x_shape, w_shape, *, layout="caffe", bias=True, max_abs=None, seed=None,
                      dtype=np.float32):
    """Random integer-valued ``(x, w, b)`` for one convolution, exact in float32 (see module doc).

    ``w_shape`` is OIHW for ``layout='caffe'`` and HWIO for ``'keras'``; ``x_shape`` is whatever
    the caller's layout is (only its size matters). Values are uniform integers in
    ``[-a, a]`` (``[-a*a, a*a]`` for the bias), ``a = max_abs`` or the largest that keeps the
    bound, at most 8. ``b`` is None when ``bias`` is false.
    """
    kernel_dim = kernel_dim_of(w_shape, layout)
    limit = exact_max_abs(kernel_dim)
    a = limit if max_abs is None else int(max_abs)
    if (kernel_dim + 1) * a * a > EXACT_LIMIT:
        raise ValueError(
            f"max_abs={a} with K={kernel_dim} breaks the exactness bound (K + 1) * a**2 <= 2**24; "
            f"use max_abs <= {math.isqrt(EXACT_LIMIT // (kernel_dim + 1))}")
    rng = np.random.default_rng(seed)
    x = rng.integers(-a, a, size=x_shape, endpoint=True).astype(dtype)
    w = rng.integers(-a, a, size=w_shape, endpoint=True).astype(dtype)
    out_channels = w_shape[0] if layout == "caffe" else w_shape[3]
    b = rng.integers(-a * a, a * a, size=(out_channels,), endpoint=True).astype(dtype) if bias else None
    return x, w, b


def check_exact_inputs(x, w, b, kernel_dim):
    """Raise ValueError unless x, w, b are integer-valued within the exactness bound."""
    for name, array in (("x", x), ("w", w), ("b", b)):
        if array is not None and not np.all(np.mod(np.asarray(array, dtype=np.float64), 1) == 0):
            raise ValueError(f"exact=True needs integer-valued inputs; {name} has fractions "
                             "(make them with fastconv.testing.exact_conv_inputs)")
    max_x = float(np.max(np.abs(x), initial=0))
    max_w = float(np.max(np.abs(w), initial=0))
    max_b = 0.0 if b is None else float(np.max(np.abs(b), initial=0))
    bound = kernel_dim * max_x * max_w + max_b
    if bound > EXACT_LIMIT:
        raise ValueError(
            f"exact=True needs K*max|x|*max|w| + max|b| <= 2**24 so every float32 partial sum is "
            f"exact; here {kernel_dim}*{max_x:g}*{max_w:g} + {max_b:g} = {bound:g}")
