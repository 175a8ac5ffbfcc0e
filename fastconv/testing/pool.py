"""The oracle for Caffe's Pooling: the reference, the comparison, and the diagnosis.

The reference is fastconv's ``pool2d_caffe`` in float64 (tested against real Caffe's golden
data). Ports of a Caffe pooling get the rules wrong more often than the arithmetic:

* the output size: Caffe rounds ``(in + 2*pad - kernel) / stride`` *up* (then adds 1); Keras
  'valid' pooling and PyTorch's default ``ceil_mode=False`` round down;
* the last-window clip: with any padding on the layer, Caffe drops a last window that would
  start at or past ``in + pad`` (tested once for the layer, ``if (pad_h || pad_w)``, and
  applied to both axes);
* MAX over padding: Caffe ignores padding cells; ``ZeroPadding2D`` + 'valid' makes them 0, which
  beats negative inputs;
* the AVE divisor: Caffe divides by the window clipped to ``in + pad``, so padding cells count
  and cells past the padded input do not; Keras/TF ('same') and PyTorch's
  ``count_include_pad=False`` count only input cells; a fixed ``kernel_h*kernel_w`` counts
  everything;
* Keras 'same' pooling: ``ceil(in / stride)`` outputs, the odd padding cell at the bottom/right;
* Keras's default ``strides=pool_size`` where Caffe's default stride is 1; NCHW/NHWC mix-ups.

:func:`assert_pool_close` names the mistake (or pair of mistakes) whose re-run reproduces
``actual``. Every mistaken re-run is computed by :func:`plain_pool`, a plain numpy
implementation written here, not by the code under test, so a bug in ``pool2d_caffe`` cannot
hide behind its own variants.

NaN and MAX pooling: Caffe's MAX starts each window from ``-FLT_MAX`` and takes a value only
when it is strictly greater (``>``), so NaN never wins: NaN inputs are dropped, a window holding
NaN and numbers gives the largest number, and a window whose values are all NaN (or all
``-inf``) gives ``-FLT_MAX`` (-3.4028235e38), in float64 too. fastconv does exactly this, and
so does this oracle's reference: a port whose MAX propagates NaN (numpy's ``max``, for one)
fails there and is named (``max_nan_propagated``). AVE pooling sums, so a NaN spreads to every
window that holds it.

Tolerance per element: ``atol + rtol * S`` with ``S`` the same pooling of ``|x|`` and
``rtol = (3*sqrt(K) + 2) * u(actual.dtype)``, K = kernel_h*kernel_w for AVE and 1 for MAX (a
maximum is exact but for rounding the result to ``actual``'s dtype).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# The lower modules this oracle uses (public names only; re-pointed when they move).
from .._params.common import format_pair
from .._params.keras_conv import keras_out_size_and_pad
from .._params.pooling import caffe_pool2d_geometry, caffe_pool_out_size, pool_method
from ..caffe_ops import pool2d_caffe
from .compare import default_rtol
from .diagnosis import Change, Mistake, check, layout_changes

FLT_MAX = float(np.finfo(np.float32).max)
LAYOUTS = {"caffe": False, "keras": True}   # layout -> channels_last


@dataclass(frozen=True)
class PoolRules:
    """How a pooling sizes its output and treats padding.

    ``sizing``: 'caffe' (ceil, then the clip), 'floor', 'no_clip' (ceil without the clip) or
    'same' (Keras). ``max_padding``: 'ignored' (Caffe) or 'zero'. ``divisor`` (AVE): 'caffe'
    (the window clipped to in + pad), 'input_only' or 'kernel' (always kernel_h*kernel_w).
    ``max_nan``: 'dropped' (Caffe) or 'propagated'.
    """

    sizing: str = "caffe"
    max_padding: str = "ignored"
    divisor: str = "caffe"
    max_nan: str = "dropped"


@dataclass(frozen=True)
class PoolProblem:
    """x (N, C, H, W) float64, Caffe's pooling parameters, the caller's layout and the rules.

    ``fastconv_reference`` is true only for the call exactly as given: its output is
    ``pool2d_caffe``'s; every changed problem (a mistake) is computed by :func:`plain_pool`.
    """

    x: np.ndarray
    kernel: tuple
    stride: tuple
    pad: tuple
    method: str
    global_pooling: bool
    channels_last: bool
    rules: PoolRules = PoolRules()
    fastconv_reference: bool = True

    def replace(self, **changes):
        return dataclasses.replace(self, fastconv_reference=False, **changes)

    def with_rules(self, **rules):
        return self.replace(rules=dataclasses.replace(self.rules, **rules))

    @property
    def layout(self):
        return "nhwc" if self.channels_last else "nchw"

    @property
    def kernel_dim(self):
        return self.kernel[0] * self.kernel[1] if self.method == "ave" else 1

    def sizes(self):
        """Per axis ``(out, pad_before)`` under the rules, or None when there is no output."""
        any_pad = self.pad != (0, 0)
        sizes = []
        for size, kernel, stride, pad in zip(self.x.shape[2:], self.kernel, self.stride,
                                             self.pad):
            if self.rules.sizing == "same":
                out, (before, _) = keras_out_size_and_pad(size, kernel, stride, 1, "same")
                sizes.append((out, before))
                continue
            out = caffe_pool_out_size(size, kernel, stride, pad, any_pad,
                                      ceil_mode=self.rules.sizing != "floor")
            if self.rules.sizing == "no_clip":
                out = caffe_pool_out_size(size, kernel, stride, pad, False)
            sizes.append((out, pad))
        return None if min(out for out, _ in sizes) < 1 else tuple(sizes)

    def to_caller(self, y_nchw):
        return y_nchw.transpose(0, 2, 3, 1) if self.channels_last else y_nchw

    def _pool(self, x):
        if self.fastconv_reference:
            return pool2d_caffe(x, None if self.global_pooling else self.kernel,
                                stride=self.stride, pad=self.pad, method=self.method,
                                global_pooling=self.global_pooling), None
        return plain_pool(self.replace(x=x))

    @cached_property
    def _pooled(self):
        return self._pool(self.x)

    def output(self):
        y, _ = self._pooled
        return None if y is None else self.to_caller(y)

    def defined(self):
        """Where the output is defined: a mistaken port's window with no input cell (no clip,
        no padding counted) has no value anyone could predict."""
        _, defined = self._pooled
        return None if defined is None else self.to_caller(defined)

    def magnitude(self):
        """The same pooling of |x| (made positive: an all-NaN MAX window gives -FLT_MAX)."""
        y, _ = self._pool(np.abs(self.x))
        return self.to_caller(np.abs(y))

    def magnitude_bound(self):
        return float(np.abs(self.x).max(initial=0.0))

    def default_rtol(self, dtype):
        return default_rtol(dtype, self.kernel_dim)

    def cost(self):
        sizes = self.sizes()
        if sizes is None:
            return 0
        (out_h, _), (out_w, _) = sizes
        return float(self.x.shape[0] * self.x.shape[1] * out_h * out_w
                     * self.kernel[0] * self.kernel[1])

    def mistakes(self):
        return pool_mistakes(self)


def plain_pool(problem):
    """``(y, defined)``: the pooling ``problem`` describes, in plain numpy (NCHW, float64).

    One pass per kernel tap over every window at once. ``defined`` marks the windows with a
    value (None when all have one); None, None when the rules give no output.
    """
    sizes = problem.sizes()
    if sizes is None:
        return None, None
    x, rules = problem.x, problem.rules
    batch, channels, in_h, in_w = x.shape
    (out_h, top), (out_w, left) = sizes
    (kernel_h, kernel_w), (stride_h, stride_w) = problem.kernel, problem.stride
    # Window cell (i, j) of output (p, q) sits at row p*stride_h - top + i of the input; the
    # grid below holds every such row and column, shifted by (top, left).
    grid_h = max(top + in_h, (out_h - 1) * stride_h + kernel_h)
    grid_w = max(left + in_w, (out_w - 1) * stride_w + kernel_w)
    grid = np.zeros((batch, channels, grid_h, grid_w))
    grid[:, :, top:top + in_h, left:left + in_w] = x
    is_input = np.zeros((grid_h, grid_w), bool)
    is_input[top:top + in_h, left:left + in_w] = True
    # Caffe's divisor region: from -pad to in + pad on each axis.
    pad_h, pad_w = (problem.pad if rules.sizing != "same" else (top, left))
    in_region = np.zeros((grid_h, grid_w), bool)
    in_region[top - pad_h:top + in_h + pad_h, left - pad_w:left + in_w + pad_w] = True
    if problem.method == "max":
        # Caffe: start from -FLT_MAX, keep a value only if strictly greater (NaN never is).
        best = np.full((batch, channels, out_h, out_w),
                       -FLT_MAX if rules.max_nan == "dropped" else -np.inf)
        take = np.fmax if rules.max_nan == "dropped" else np.maximum
    else:
        total = np.zeros((batch, channels, out_h, out_w))
    input_cells = np.zeros((out_h, out_w))
    region_cells = np.zeros((out_h, out_w))
    for i in range(kernel_h):
        rows = slice(i, i + (out_h - 1) * stride_h + 1, stride_h)
        for j in range(kernel_w):
            cols = slice(j, j + (out_w - 1) * stride_w + 1, stride_w)
            values, inside = grid[:, :, rows, cols], is_input[rows, cols]
            input_cells += inside
            region_cells += in_region[rows, cols]
            if problem.method == "ave":
                total += np.where(inside, values, 0.0)
            elif rules.max_padding == "zero":   # padding cells are real zeros
                best = take(best, values)
            else:
                best = take(best, np.where(inside, values, -np.inf))
    if problem.method == "max":
        defined = input_cells > 0 if rules.max_padding == "ignored" else None
        return best, _all_or_none(defined, best.shape)
    divisor = {"caffe": region_cells, "input_only": input_cells,
               "kernel": np.full((out_h, out_w), float(kernel_h * kernel_w))}[rules.divisor]
    with np.errstate(invalid="ignore", divide="ignore"):
        y = total / divisor
    return y, _all_or_none(input_cells > 0, y.shape)


def _all_or_none(defined, shape):
    """None when every window is defined, else the mask broadcast to the output's shape."""
    return None if defined is None or defined.all() else np.broadcast_to(defined, shape)


def _problem(x, kernel_size, stride, pad, method, global_pooling, layout):
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} must be 'caffe' (x NCHW) or 'keras' (x NHWC)")
    x = np.asarray(x, dtype=np.float64)
    channels_last = LAYOUTS[layout]
    if channels_last:
        if x.ndim != 4:
            raise ValueError(f"x must be 4-D (N, H, W, C) for layout='keras'; got shape {x.shape}")
        x = x.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x)
    # The checks pool2d_caffe makes (and its refusal of what Caffe cannot run).
    geometry = caffe_pool2d_geometry(x.shape, kernel_size, stride, pad, global_pooling)
    return PoolProblem(x, (geometry.kernel_h, geometry.kernel_w),
                       (geometry.stride_h, geometry.stride_w),
                       (geometry.pad_top, geometry.pad_left), pool_method(method),
                       bool(global_pooling), channels_last)


def pool_reference(x, kernel_size, *, stride=1, pad=0, method="max", global_pooling=False,
                   layout="caffe"):
    """fastconv's float64 output of Caffe's Pooling, in the caller's layout (layout='caffe':
    x NCHW; 'keras': x NHWC). The parameters are Caffe's whatever the layout."""
    return _problem(x, kernel_size, stride, pad, method, global_pooling, layout).output()


def pool_mistakes(p):
    """:class:`Change` s for each mistake that changes this Pooling call."""
    if not p.global_pooling:
        yield from _sizing_mistakes(p)
    if p.method == "max":
        zero = p.with_rules(max_padding="zero")
        yield Change(Mistake("max_padding_as_zero",
                             "MAX pooling over zero padding (ZeroPadding2D before the pooling): "
                             "Caffe ignores padding cells, so a zero beats negative inputs",
                             "pool with the padding ignored: PyTorch max_pool2d(padding=pad, "
                             "ceil_mode=True); Keras: fastconv.keras.pooling_from_caffe (exact, "
                             "or ZeroPadding2D only with assume_nonnegative=True after a ReLU)",
                             family="max_padding"), zero)
        if np.isnan(p.x).any():
            yield Change(Mistake("max_nan_propagated",
                                 "MAX pooling propagates NaN; Caffe's MAX drops NaN (it keeps a "
                                 "value only when it is greater, starting from -FLT_MAX)",
                                 "replace NaN by -inf before a NaN-propagating max, or accept "
                                 "the difference", family="max_nan"),
                         p.with_rules(max_nan="propagated"))
    elif not p.global_pooling:
        yield Change(Mistake("ave_padding_not_counted",
                             "AVE divisor counts only input cells (Keras/TensorFlow 'same', "
                             "PyTorch count_include_pad=False); Caffe counts the padding cells "
                             "up to in + pad",
                             "PyTorch avg_pool2d(count_include_pad=True, ceil_mode=True); Keras: "
                             "ZeroPadding2D(pad) before the pooling "
                             "(fastconv.keras.pooling_from_caffe)", family="divisor"),
                     p.with_rules(divisor="input_only"))
        yield Change(Mistake("ave_divisor_full_kernel",
                             "AVE divisor always kernel_h*kernel_w; Caffe's divisor stops at "
                             "in + pad, so a last window running past the padded input divides "
                             "by fewer cells", "divide by the window clipped to in + pad "
                             "(Caffe); PyTorch avg_pool2d(ceil_mode=True) does", family="divisor"),
                     p.with_rules(divisor="kernel"))
    if not p.global_pooling:
        yield from _parameter_mistakes(p)
    yield from layout_changes(p)


def _sizing_mistakes(p):
    fixes = ("Caffe rounds the output size up: PyTorch max_pool2d/avg_pool2d(ceil_mode=True); "
             "Keras: fastconv.keras.pooling_from_caffe(params, input_size=(H, W))")
    yield Change(Mistake("floor_instead_of_ceil",
                         "output size rounded down (floor: Keras 'valid', PyTorch "
                         "ceil_mode=False); Caffe's pooling rounds (in + 2*pad - kernel)/stride "
                         "up", fixes, family="sizing"), p.with_rules(sizing="floor"))
    if p.pad != (0, 0):
        yield Change(Mistake("last_window_not_clipped",
                             "Caffe's last-window clip missing: with padding on the layer, "
                             "Caffe drops a last window that would start at or past in + pad "
                             "(on both axes, even one without padding)",
                             "after ceil: if pad_h or pad_w and (out - 1)*stride >= in + pad: "
                             "out -= 1, per axis (PyTorch's ceil_mode does it)", family="sizing"),
                     p.with_rules(sizing="no_clip"))
    yield Change(Mistake("keras_same_pooling",
                         f"Keras padding='same' pooling used for Caffe's pad={format_pair(p.pad)} "
                         "(ceil(in/stride) outputs, the odd padding cell at the bottom/right, "
                         "padding never counted)",
                         "fastconv.keras.pooling_from_caffe(params, input_size=(H, W)) builds "
                         "the exact Keras layers, or says why none exist", family="sizing"),
                 p.with_rules(sizing="same", divisor="input_only"))


def _parameter_mistakes(p):
    if p.stride == (1, 1) and p.kernel != (1, 1):
        yield Change(Mistake("stride_defaulted_to_kernel",
                             f"stride {format_pair(p.kernel)} (the pool size: Keras's "
                             "strides=None, PyTorch's stride=None) where Caffe's stride "
                             "defaults to 1", "strides=1 (Caffe's default)", family="stride"),
                     p.replace(stride=p.kernel))
    for name, key in (("kernel_hw_swapped", "kernel"), ("stride_hw_swapped", "stride"),
                      ("pad_hw_swapped", "pad")):
        value = getattr(p, key)
        if value[0] != value[1]:
            yield Change(Mistake(name, f"{key} h and w swapped (used {value[::-1]})",
                                 f"({key}_h, {key}_w): Caffe's h comes first", family=key),
                         p.replace(**{key: value[::-1]}))


def check_pool(actual, x, kernel_size, *, stride=1, pad=0, method="max", global_pooling=False,
               layout="caffe", rtol=None, atol=None, diagnosis=True, after=None):
    """Compare ``actual`` with Caffe's Pooling of ``x``; return a
    :class:`~fastconv.testing.Verdict` (true when it passes; unpacks to
    ``(Comparison, [Diagnosis, ...])``). Arguments as :func:`assert_pool_close`."""
    problem = _problem(x, kernel_size, stride, pad, method, global_pooling, layout)
    what = f"{'MAX' if problem.method == 'max' else 'AVE'} pooling"
    return check(what, f"Caffe Pooling, layout={layout!r}, {problem.layout.upper()}", actual,
                 problem, rtol=rtol, atol=atol, diagnosis=diagnosis, after=after)


def assert_pool_close(actual, x, kernel_size, *, stride=1, pad=0, method="max",
                      global_pooling=False, layout="caffe", rtol=None, atol=None, after=None):
    """Assert ``actual`` is Caffe's Pooling of ``x``; explain it if not.

    ``kernel_size``, ``stride`` (Caffe's default 1, not the kernel size) and ``pad`` are an int
    or an (h, w) pair, ``method`` 'max' or 'ave'; ``global_pooling=True`` pools each whole map
    (pass ``kernel_size=None``). ``layout='caffe'``: x and actual NCHW; ``'keras'``: NHWC (the
    parameters stay Caffe's). Output size per axis: ``ceil((in + 2*pad - kernel)/stride) + 1``,
    less one when the layer has padding and that last window would start at or past
    ``in + pad``. MAX drops NaN as Caffe does (an all-NaN window gives -FLT_MAX); see the module
    docstring for that and for the tolerance. On failure the AssertionError names the mistake
    (floor vs ceil, the missing clip, MAX over zero padding, the AVE divisor, Keras 'same',
    strides defaulted to the pool size, NHWC/NCHW mix-ups, or a pair of them) whose re-run
    reproduces ``actual``. ``after``: a function the port applied to the pooled output (say,
    the in-place layers that follow it in Caffe), applied to the reference and to every re-run
    in the caller's layout (see fastconv.testing.diagnosis). Returns the Comparison when it
    passes.
    """
    result = check_pool(actual, x, kernel_size, stride=stride, pad=pad, method=method,
                        global_pooling=global_pooling, layout=layout, rtol=rtol, atol=atol,
                        after=after)
    if not result:
        raise AssertionError(str(result))
    return result.comparison
