"""Comparing a convolution's output with a reference: tolerances and the report object.

Default tolerance (per output element i)::

    |actual_i - expected_i| <= atol + rtol * S_i
    rtol = (3 * sqrt(K) + 2) * u

where ``u`` is the unit roundoff of ``actual``'s dtype (2**-24 for float32, 2**-53 for float64,
2**-11 for float16), ``K`` the dot-product length (C/group * kernel_h * kernel_w) and
``S_i = sum_j |x_j * w_j| + |b|`` the magnitude of the terms summed for element i (computed by
fastconv from |x| and |w|). Why: each of the K additions rounds by at most ``u`` times a partial
sum, which is at most S_i; those roundings have random signs, so their sum grows like
``sqrt(K) * u * S_i`` whatever the summation order (blocked GEMM, FMA, oneDNN, cuDNN's
non-Winograd algorithms), and the ``+ 2`` covers rounding the result and adding the bias. Scaling
by S_i instead of by |expected_i| keeps cancelled sums near zero from failing and keeps a
rescaled input from changing the verdict (benchdnn's idea of a threshold that follows the
problem's size and data). The default ``atol`` is 0. TF32 (10-bit mantissa inputs) errs by about
``2**-11 * sqrt(sum_j (x_j w_j)**2)``: for K up to a few thousand that is well outside the float32
tolerance, which is what lets the diagnosis name it.

:func:`compare` works on its own with any two arrays; without ``scale`` it scales by
``max|expected|``.

Non-finite values are compared position by position, as ``numpy.testing`` does with
``equal_nan``: where the reference is NaN the actual value must be NaN, where it is +Inf or -Inf
the actual value must be the same infinity, and a NaN or an infinity where the reference is
finite is a mismatch. No tolerance ever reaches a non-finite position. ``rtol`` and ``atol`` must
be finite and non-negative (a NaN tolerance would pass everything, a negative one fail a correct
result).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np


def unit_roundoff(dtype):
    """Half the machine epsilon of a float dtype; float64's for integer or bool arrays."""
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype if dtype.kind == "f" else np.float64).eps) / 2


def check_tolerance(value, name):
    """``value`` as a float, or ValueError naming ``name`` unless it is finite and >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r} must be a real number") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name}={value!r} must be finite and >= 0 (a NaN or infinite "
                         "tolerance passes anything, a negative one fails everything)")
    return number


def default_rtol(dtype, kernel_dim):
    """``(3*sqrt(K) + 2) * u``, the module docstring's formula."""
    return (3 * math.sqrt(max(int(kernel_dim), 1)) + 2) * unit_roundoff(dtype)


def _other_layout_index(index, layout):
    if index is None or len(index) != 4:
        return None
    n, a, b, c = index
    return (n, b, c, a) if layout == "nchw" else (n, c, a, b)


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing ``actual`` with ``expected``; ``bool(report)`` is ``passed``.

    ``layout`` names the arrays' layout ('nchw' or 'nhwc'); ``worst_index`` is the element with
    the largest error relative to its tolerance, given in both layouts.
    """

    passed: bool
    layout: str
    actual_shape: tuple
    expected_shape: tuple
    rtol: float
    atol: float
    kernel_dim: Optional[int] = None
    max_abs_error: float = math.inf
    max_rel_error: float = math.inf
    reference_scale: float = 0.0
    mismatches: int = 0
    nonfinite_mismatches: int = 0
    size: int = 0
    worst_index: Optional[tuple] = None
    worst_actual: Optional[float] = None
    worst_expected: Optional[float] = None
    worst_allowed: Optional[float] = None

    def __bool__(self):
        return self.passed

    @property
    def shape_matches(self):
        return self.actual_shape == self.expected_shape

    @property
    def worst_index_nchw(self):
        return self.worst_index if self.layout == "nchw" else _other_layout_index(self.worst_index, self.layout)

    @property
    def worst_index_nhwc(self):
        return self.worst_index if self.layout == "nhwc" else _other_layout_index(self.worst_index, self.layout)

    def summary(self):
        """A few lines for an assertion message."""
        if not self.shape_matches:
            return (f"shape mismatch: actual {self.actual_shape}, expected {self.expected_shape} "
                    f"({self.layout.upper()})")
        k = f", K={self.kernel_dim}" if self.kernel_dim else ""
        lines = [
            f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g} "
            f"(relative to max|expected| = {self.reference_scale:.3g})",
            f"mismatches: {self.mismatches} of {self.size} elements "
            f"(allowed |err| <= atol + rtol*S with rtol={self.rtol:.3g}, atol={self.atol:.3g}{k})",
        ]
        if self.nonfinite_mismatches:
            lines.append(f"of which {self.nonfinite_mismatches} at NaN/Inf positions (NaN must "
                         "match NaN and Inf the same Inf, element by element)")
        if self.worst_index is not None:
            nchw, nhwc = self.worst_index_nchw, self.worst_index_nhwc
            where = (f"NCHW {list(nchw)} = NHWC {list(nhwc)}" if nchw is not None
                     else f"{list(self.worst_index)}")
            lines.append(
                f"worst element: {where}: actual {self.worst_actual:.7g}, expected "
                f"{self.worst_expected:.7g}, allowed error {self.worst_allowed:.3g}")
        return "\n".join(lines)

    def __str__(self):
        return ("PASS: " if self.passed else "FAIL: ") + self.summary()


def compare(actual, expected, *, rtol=None, atol=None, scale=None, kernel_dim=None,
            layout="nchw", where=None):
    """Compare two arrays element by element and return a :class:`Comparison`.

    ``scale`` is the per-element magnitude the relative tolerance multiplies (an array
    broadcastable to ``expected``, or a number); by default ``max|expected|``. ``rtol`` defaults
    to ``default_rtol(actual.dtype, kernel_dim or 1)``, ``atol`` to 0; both must be finite and
    >= 0. NaN matches NaN and an infinity the same infinity, position by position (see the
    module docstring). ``where`` (a boolean array like ``expected``) limits the comparison to
    the elements it marks; the others count as matching.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if layout not in ("nchw", "nhwc"):
        raise ValueError(f"layout={layout!r} must be 'nchw' or 'nhwc'")
    rtol = default_rtol(actual.dtype, kernel_dim or 1) if rtol is None else check_tolerance(rtol, "rtol")
    atol = 0.0 if atol is None else check_tolerance(atol, "atol")
    common = dict(layout=layout, actual_shape=actual.shape, expected_shape=expected.shape,
                  rtol=rtol, atol=atol, kernel_dim=kernel_dim)
    if actual.shape != expected.shape:
        return Comparison(passed=False, **common)
    if expected.size == 0:
        return Comparison(passed=True, max_abs_error=0.0, max_rel_error=0.0, **common)
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    finite = np.isfinite(e)
    reference_scale = float(np.max(np.abs(e), initial=0.0, where=finite))
    if scale is None:
        scale = reference_scale
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), e.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.where(finite & np.isfinite(a), np.abs(a - e), 0.0)
        # A scale made non-finite by the data (|x| overflowing) allows nothing.
        allowed = np.where(finite & np.isfinite(scale), atol + rtol * scale, atol)
    same_nonfinite = (np.isnan(e) & np.isnan(a)) | (np.isinf(e) & (a == e))
    nonfinite_mismatch = ~(finite & np.isfinite(a)) & ~same_nonfinite
    error[nonfinite_mismatch] = np.inf
    failing = error > allowed
    if where is not None:
        compared = np.broadcast_to(np.asarray(where, dtype=bool), e.shape)
        error[~compared] = 0.0
        nonfinite_mismatch &= compared
        failing &= compared
    ratio = np.divide(error, allowed, out=np.where(error > 0, np.inf, 0.0), where=allowed > 0)
    if np.isinf(ratio.max()):   # zero allowance or non-finite misses: the largest of those
        ratio = np.where(np.isinf(ratio), error, -1.0)
    worst = np.unravel_index(int(np.argmax(ratio)), e.shape)
    max_abs = float(error.max())
    if reference_scale > 0:
        max_rel = max_abs / reference_scale
    else:
        max_rel = 0.0 if max_abs == 0 else math.inf
    return Comparison(
        passed=not failing.any(), max_abs_error=max_abs, max_rel_error=max_rel,
        reference_scale=reference_scale, mismatches=int(failing.sum()),
        nonfinite_mismatches=int(nonfinite_mismatch.sum()), size=int(e.size),
        worst_index=tuple(int(i) for i in worst), worst_actual=float(a[worst]),
        worst_expected=float(e[worst]), worst_allowed=float(allowed[worst]), **common,
    )
