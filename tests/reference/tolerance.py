"""How far two results may differ, and how far they do.

Two kinds of allowance, used where each fits:

- ``sum_tolerance(terms, dtype)``: relative to the output's scale, for sums of ``terms``
  products with random signs computed in different orders by two engines. Each carries a
  rounding error of about sqrt(K) * u times the sum's typical size; 8 * (sqrt(K) + 1) * u
  leaves a factor of ~4 over the two errors together for the tail of the largest element. A
  layout or index bug gives errors of order 1, far above it.
- ``error_bound``/``gemm_error_bound``: per element, the classic worst-case bound
  |fl(sum) - sum| <= gamma_K * sum|x_i w_i|, valid for any summation order.
"""
import math

import numpy as np


def unit_roundoff(dtype):
    return np.finfo(dtype).eps / 2


def sum_tolerance(terms, dtype=np.float32):
    """Allowed ``scale_error`` of a result whose elements are sums of ``terms`` products."""
    return 8 * (math.sqrt(terms) + 1) * unit_roundoff(dtype)


def scale_error(actual, expected):
    """max|actual - expected| relative to max|expected| (element-wise relative error is
    meaningless near zero)."""
    expected = np.asarray(expected, np.float64)
    difference = np.abs(np.asarray(actual, np.float64) - expected)
    return float(np.max(difference)) / max(float(np.max(np.abs(expected))), 1e-300)


def assert_scaled_close(actual, expected, terms, dtype):
    """Shapes equal and ``scale_error`` within ``sum_tolerance(terms, dtype)``."""
    assert np.shape(actual) == np.shape(expected), (np.shape(actual), np.shape(expected))
    error, allowed = scale_error(actual, expected), sum_tolerance(terms, dtype)
    assert error <= allowed, f"relative error {error:.3g} > {allowed:.3g} (K = {terms})"


def error_bound(x, w, b, dtype, reference_fn):
    """Per-element bound on the rounding error of a ``dtype`` dot product of K terms + bias;
    computing it with |x| and |w| through the same reference gives it element by element."""
    kernel_dim = int(np.prod(np.shape(w)[1:]))
    eps = np.finfo(dtype).eps
    magnitude = reference_fn(np.abs(x), np.abs(w), None if b is None else np.abs(b))
    # Factor 2: the float64 reference carries its own rounding error, of the same order when
    # dtype is float64.
    return 2 * (kernel_dim + 2) * eps * magnitude + np.finfo(dtype).tiny


def gemm_error_bound(a, b):
    """Per-element bound on the rounding error of any order of summation, in the dtype of a."""
    k = a.shape[1]
    eps = np.finfo(a.dtype).eps
    return (k + 2) * eps * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))) + 1e-300


def max_violation(actual, expected, bound):
    """max(|actual - expected| / bound): <= 1 means within the bound everywhere."""
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected) / bound))


def assert_same_bits(actual, expected):
    """Equal dtype, shape and bits, except that any NaN matches any NaN (payloads and signs
    of NaN are not part of Caffe's arithmetic)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    bits = {4: np.uint32, 8: np.uint64}[expected.dtype.itemsize]
    differ = (actual.view(bits) != expected.view(bits)) & ~(np.isnan(actual) & np.isnan(expected))
    assert not differ.any(), (actual[differ][:5], expected[differ][:5])
