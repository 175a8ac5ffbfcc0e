"""Caffe-layout convolution: NCHW data, OIHW weights, Caffe's parameters and arithmetic."""
from __future__ import annotations

import numpy as np

from . import _core
from ._params import as_array, caffe_conv2d_geometry, compute_dtype, to_kernel_input


def conv2d_caffe(x, w, b=None, *, stride=1, pad=0, dilation=1, group=1):
    """Caffe's Convolution layer, forward.

    Parameters
    ----------
    x : array (N, C, H, W)
        Caffe's bottom blob (NCHW).
    w : array (num_output, C/group, kernel_h, kernel_w)
        Caffe's weight blob (OIHW). ``kernel_h``/``kernel_w`` come from its shape.
    b : array (num_output,) or None
        Caffe's bias blob; None is ``bias_term: false``.
    stride, pad, dilation : int or (h, w) pair
        Caffe's ``stride`` | ``stride_h``/``stride_w`` (default 1), ``pad`` | ``pad_h``/``pad_w``
        (default 0) and ``dilation`` (default 1, may differ per axis). Real Caffe 1.0 reads
        a lone ``pad_h`` as ``(pad_h, 0)``: pass that pair. A lone ``stride_h`` or
        ``kernel_h`` crashes Caffe (below), so there is nothing to reproduce.
    group : int
        Caffe's ``group``: channels ``[g*C/G, (g+1)*C/G)`` feed outputs
        ``[g*O/G, (g+1)*O/G)``.

    Returns
    -------
    y : array (N, num_output, OH, OW)
        In the computation dtype (float32 unless any input is float64; see the README). Per
        spatial axis, with ``extent = dilation*(kernel-1) + 1``::

            OH = (H + 2*pad_h - extent_h) / stride_h + 1

        computed with C's truncating division, as Caffe does: when the extent exceeds the padded
        input by less than the stride this is 1 (floor would give 0) and the taps that fall
        outside read zero. Padding is symmetric zeros; the last rows/columns of the padded input
        go unused when the stride does not divide evenly. Cross-correlation: no kernel flip.

    Raises
    ------
    ValueError, TypeError
        For any malformed call, naming the argument and the Caffe parameter. Calls real Caffe
        would crash on (``stride_h`` without ``stride_w`` leaves the other 0 and dies with
        SIGFPE; an output size below 1 fails a CHECK; ``dilation: 0`` is silently accepted)
        raise here instead.
    """
    plan_key = _plan_key(x, w, b, stride, pad, dilation, group)
    if plan_key is not None:
        plan = _PLANS.get(plan_key)
        if plan is not None:
            y = np.empty(plan.output_shape, dtype=x.dtype)
            plan.run(x, w, b, y)
            return y
    x = as_array(x, "x")
    w = as_array(w, "w")
    b = None if b is None else as_array(b, "b")
    geometry = caffe_conv2d_geometry(
        x.shape, w.shape, None if b is None else b.shape, stride, pad, dilation, group
    )
    dtype = compute_dtype(("x", x), ("w", w), ("b", b))
    if plan_key is not None and len(_PLANS) < _MAX_PLANS:
        _PLANS[plan_key] = _core.ConvPlan(geometry, dtype)
    return _forward(geometry, x, w, b, dtype)


# The fast path for repeated calls (small layers in test suites are dominated by argument
# checking otherwise): arrays that the C core can read as they are and plain int parameters
# are looked up by everything the checks depend on. A key is stored only after the full checks
# passed for it, so the fast path never accepts a call the checks would refuse.
_PLANS = {}
_MAX_PLANS = 256
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def _plan_key(x, w, b, stride, pad, dilation, group):
    if not (type(x) is np.ndarray and type(w) is np.ndarray
            and type(stride) is int and type(pad) is int and type(dilation) is int
            and type(group) is int):
        return None
    dtype = x.dtype
    if not ((dtype is _NATIVE[0] or dtype is _NATIVE[1]) and w.dtype is dtype
            and x.flags.carray and w.flags.carray):
        return None
    if b is None:
        return (x.shape, w.shape, None, stride, pad, dilation, group, dtype.char)
    if type(b) is np.ndarray and b.dtype is dtype and b.flags.carray:
        return (x.shape, w.shape, b.shape, stride, pad, dilation, group, dtype.char)
    return None


def _forward(geometry, x_nchw, w_oihw, b, dtype, *, channels_last=False):
    """Run the C core on a checked geometry; inputs are converted, never modified. With
    ``channels_last`` the data ``x_nchw`` and the result are NHWC instead (read and written in
    place by the engine: no layout copies); the weights stay OIHW."""
    plan = _core.ConvPlan(geometry, dtype, channels_last)
    y = np.empty(plan.output_shape, dtype=dtype)
    plan.run(
        to_kernel_input(x_nchw, dtype),
        to_kernel_input(w_oihw, dtype),
        None if b is None else to_kernel_input(b, dtype),
        y,
    )
    return y
