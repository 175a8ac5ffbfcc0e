"""The convolution oracle's entry points: the reference and the assertion that explains itself."""
from __future__ import annotations

import numpy as np

from .compare import compare
from .conv import problem_from_call
from .diagnosis import check, search
from .exact import check_exact_inputs


def reference(x, w, b=None, *, layout="caffe", **params):
    """fastconv's float64 output for a conv call, in the caller's layout.

    ``layout='caffe'``: x NCHW, w OIHW, params ``stride, pad, dilation, group``.
    ``layout='keras'``: x NHWC (or NCHW with ``data_format='channels_first'``), kernel HWIO,
    params ``strides, padding, dilation_rate, groups, data_format``.
    """
    return problem_from_call(x, w, b, layout, params).output()


def check_conv(actual, x, w, b=None, *, layout="caffe", rtol=None, atol=None, exact=False,
               diagnosis=True, after=None, **params):
    """Compare ``actual`` with the reference; return a :class:`~fastconv.testing.Verdict`.

    ``bool(verdict)`` is the verdict, so ``assert check_conv(...)`` fails on a wrong output;
    ``report, diagnoses = check_conv(...)`` unpacks to the Comparison and the list of
    Diagnoses, as before. Diagnoses are searched only when the comparison fails (and
    ``diagnosis`` is true): single mistakes, then pairs of them; a mistake is named only when
    its re-run reproduces ``actual`` within the same tolerance. ``after``: a function the port
    applied to the convolution's output (its activation, e.g. ``lambda y: np.maximum(y, 0)``
    for ``Conv2D(activation='relu')``), applied to the reference and to every re-run in the
    caller's layout; see fastconv.testing.diagnosis for how the tolerance follows it.
    """
    problem = problem_from_call(x, w, b, layout, params)
    if exact:
        check_exact_inputs(x, w, b, problem.kernel_dim)
        rtol, atol = 0.0, 0.0
    return check("convolution", f"layout={layout!r}, {problem.layout.upper()}", actual, problem,
                 rtol=rtol, atol=atol, diagnosis=diagnosis, after=after)


def diagnose(actual, problem, *, rtol=None, atol=None):
    """The mistakes (single, then pairs) whose re-run of ``problem`` reproduces ``actual``,
    best first (maybe none). ``problem`` is a conv, deconv or pool problem of
    fastconv.testing."""
    report = compare(np.asarray(actual), problem.output(), rtol=0.0, atol=0.0)
    return list(search(actual, problem, report, rtol=rtol, atol=atol)[0])


def assert_conv_close(actual, x, w, b=None, *, layout="caffe", rtol=None, atol=None, exact=False,
                      after=None, **params):
    """Assert ``actual`` is the convolution of ``x`` by ``w`` (+ ``b``); explain it if not.

    The conv parameters are those of ``layout``: ``stride, pad, dilation, group`` for 'caffe'
    (x NCHW, w OIHW) and ``strides, padding, dilation_rate, groups, data_format`` for 'keras'
    (kernel HWIO). Tolerance per element: ``atol + rtol * S`` with ``S = sum|x*w| + |b|`` and
    ``rtol = (3*sqrt(K) + 2) * u(actual.dtype)`` by default (see fastconv.testing.compare);
    NaN must match NaN and an infinity the same infinity, element by element; ``rtol`` and
    ``atol`` must be finite and >= 0. ``exact=True`` requires integer inputs within the
    exactness bound (see fastconv.testing.exact) and allows no difference at all. On failure
    the AssertionError gives the errors, the worst element in NCHW and NHWC, the mismatch count
    and the porting mistake (or pair of mistakes) whose re-run reproduces ``actual``, with its
    fix; when none does, what was tried and, as a hint, the closest candidate. ``after``: the
    function the port applied to the output (its activation), as in :func:`check_conv`.
    Returns the Comparison when it passes.
    """
    result = check_conv(actual, x, w, b, layout=layout, rtol=rtol, atol=atol, exact=exact,
                        after=after, **params)
    if not result:
        raise AssertionError(str(result))
    return result.comparison
