"""The oracle's entry points: reference outputs and the assertion that explains itself."""
from __future__ import annotations

import numpy as np

from ._problem import problem_from_call
from .compare import compare, default_rtol
from .diagnosis import diagnose, diagnosis_lines
from .exact import check_exact_inputs, exact_conv_inputs


def reference(x, w, b=None, *, layout="caffe", **params):
    """fastconv's float64 output for a conv call, in the caller's layout.

    ``layout='caffe'``: x NCHW, w OIHW, params ``stride, pad, dilation, group``.
    ``layout='keras'``: x NHWC (or NCHW with ``data_format='channels_first'``), kernel HWIO,
    params ``strides, padding, dilation_rate, groups, data_format``.
    """
    return problem_from_call(x, w, b, layout, params).run()


def check_conv(actual, x, w, b=None, *, layout="caffe", rtol=None, atol=None, exact=False,
               diagnosis=True, **params):
    """Compare ``actual`` with the reference; return ``(Comparison, [Diagnosis, ...])``.

    Diagnoses are computed only when the comparison fails (and ``diagnosis`` is true).
    """
    problem = problem_from_call(x, w, b, layout, params)
    actual = np.asarray(actual)
    if exact:
        check_exact_inputs(x, w, b, problem.kernel_dim)
        rtol, atol = 0.0, 0.0
    expected_shape = problem.output_shape()
    reference_out = problem.run()
    scale = problem.magnitude()
    if rtol is None:
        rtol = default_rtol(actual.dtype, problem.kernel_dim)
    report = compare(actual, reference_out, rtol=rtol, atol=atol, scale=scale,
                     kernel_dim=problem.kernel_dim,
                     layout="nhwc" if problem.channels_last else "nchw")
    assert report.expected_shape == expected_shape
    if report.passed or not diagnosis:
        return report, []
    return report, diagnose(actual, problem, reference_out, scale)


def format_failure(report, diagnoses, layout):
    where = "NHWC" if report.layout == "nhwc" else "NCHW"
    lines = [f"convolution output differs from fastconv's reference (layout={layout!r}, {where})",
             "  " + report.summary().replace("\n", "\n  ")]
    lines += diagnosis_lines(diagnoses, "kernel/data/output layouts, flips, padding rules, "
                                        "groups, stride/dilation/bias slips, TF32")
    return "\n".join(lines)


def assert_conv_close(actual, x, w, b=None, *, layout="caffe", rtol=None, atol=None, exact=False,
                      **params):
    """Assert ``actual`` is the convolution of ``x`` by ``w`` (+ ``b``); explain it if not.

    The conv parameters are those of ``layout``: ``stride, pad, dilation, group`` for 'caffe'
    (x NCHW, w OIHW) and ``strides, padding, dilation_rate, groups, data_format`` for 'keras'
    (kernel HWIO). Tolerance per element: ``atol + rtol * S`` with ``S = sum|x*w| + |b|`` and
    ``rtol = (3*sqrt(K) + 2) * u(actual.dtype)`` by default (see fastconv.testing.compare).
    ``exact=True`` requires integer inputs within the exactness bound (see
    fastconv.testing.exact) and allows no difference at all. On failure the AssertionError
    gives the errors, the worst element in NCHW and NHWC, the mismatch count and the porting
    mistake that reproduces ``actual``, with its fix, when one does.
    """
    report, diagnoses = check_conv(actual, x, w, b, layout=layout, rtol=rtol, atol=atol,
                                   exact=exact, **params)
    if not report.passed:
        raise AssertionError(format_failure(report, diagnoses, layout))
    return report


class ConvOracle:
    """The oracle as one object (what the pytest fixture ``conv_oracle`` hands out)."""

    def reference(self, x, w, b=None, **kwargs):
        return reference(x, w, b, **kwargs)

    def assert_close(self, actual, x, w, b=None, **kwargs):
        return assert_conv_close(actual, x, w, b, **kwargs)

    def check(self, actual, x, w, b=None, **kwargs):
        return check_conv(actual, x, w, b, **kwargs)

    def exact_inputs(self, x_shape, w_shape, **kwargs):
        return exact_conv_inputs(x_shape, w_shape, **kwargs)

    def compare(self, actual, expected, **kwargs):
        return compare(actual, expected, **kwargs)

    def deconv_reference(self, x, w, b=None, **kwargs):
        from .deconv import deconv_reference
        return deconv_reference(x, w, b, **kwargs)

    def assert_deconv_close(self, actual, x, w, b=None, **kwargs):
        from .deconv import assert_deconv_close
        return assert_deconv_close(actual, x, w, b, **kwargs)
