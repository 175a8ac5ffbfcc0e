"""The one door to the C core: loads ``fastconv._core`` with its run-time settings, owns the plan
cache, and holds every call into C on an already checked geometry.

No other module imports ``_core`` (tests/engine/test_package_layout.py checks it; import-linter
cannot see the extension module), so the
settings below are in force whatever module a program imports first. The callers check
arguments and infer geometries in ``fastconv._params``; the C core trusts what arrives here.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

# The two element types the C core computes in.
NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _load_core():
    """Import the C core with OpenMP's idle threads spinning briefly before they sleep.

    libgomp (loaded with the core) reads its settings once, at load. By default a thread that
    runs out of work spins ~300k iterations waiting for the others; on a 2-core machine shared
    with any other busy process that spinning keeps the core from the thread it waits for,
    and a 1 ms layer takes 10 ms. 10k spins cost nothing measurable on an idle machine. The
    variable is set only for the load (the process environment is left as it was), and never
    when the user chose GOMP_SPINCOUNT or OMP_WAIT_POLICY.
    """
    shorten = "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    if shorten:
        os.environ["GOMP_SPINCOUNT"] = "10000"
    try:
        from . import _core
    except ImportError as error:
        _explain_missing_core(error)
    finally:
        if shorten:
            del os.environ["GOMP_SPINCOUNT"]
    return _core


def _explain_missing_core(error):
    """Raise an ImportError that says why the compiled core is missing and what to do.

    Typically Python was started inside an unbuilt source checkout, whose fastconv/ shadows the
    installed one; Python's own message would then blame a circular import, hence ``from None``.
    """
    package = Path(__file__).resolve().parent
    built = sorted(p.name for p in package.glob("_core.*") if p.suffix in (".so", ".pyd"))
    if built:
        raise ImportError(f"fastconv's C core {built} in {package} could not be loaded ({error}); "
                          "rebuild it with `python setup.py build_ext --inplace`") from error
    raise ImportError(
        f"fastconv's C core (_core, compiled) is not built in {package}. This Python imported "
        "fastconv from that directory (a source checkout on sys.path, e.g. the current "
        "directory) instead of an installed fastconv. Build it in place with "
        "`python setup.py build_ext --inplace` (or `pip install -e .`), or run Python from "
        "another directory to use the installed fastconv."
    ) from None


_core = _load_core()

if _core.init_status() != 0:
    warnings.warn(
        f"FASTCONV_KERNEL={os.environ.get('FASTCONV_KERNEL')!r} is not one of the kernels "
        f"this CPU can run {_core.available_kernels()}; using {_core.active_kernel()!r}",
        RuntimeWarning,
        stacklevel=2,
    )


# ---------------------------------------------------------------------------------------------
# Run-time configuration (fastconv.runtime checks the arguments)


def _output_cache_limit_from_environment():
    """FASTCONV_OUTPUT_CACHE_MB in bytes; 256 MiB when unset or not a number >= 0."""
    try:
        megabytes = float(os.environ.get("FASTCONV_OUTPUT_CACHE_MB", "256"))
    except ValueError:
        megabytes = 256.0
    return int(megabytes * 2**20) if 0 <= megabytes < 2**40 else 256 * 2**20


_core.set_output_cache_limit(_output_cache_limit_from_environment())


def output_cache_bytes():
    return _core.output_cache_bytes()


def set_output_cache_limit(limit_bytes):
    """Set the output cache's limit; returns the previous one, in bytes."""
    return _core.set_output_cache_limit(limit_bytes)


def active_kernel():
    return _core.active_kernel()


def available_kernels():
    return _core.available_kernels()


def blocking():
    """The active engine's micro-tile and block sizes per dtype, and the cache sizes (L1d, L2,
    L3 in bytes, read at start-up) they were derived from."""
    return _core.blocking()


def prefer_direct_tile():
    """Whether this CPU's forward pass takes the direct tile more widely (over the GEMM reading
    shifted rows, and for float32 3x3 and up with any number of outputs): chosen at start-up."""
    return _core.prefer_direct_tile()


def get_num_threads():
    return _core.get_num_threads()


def set_num_threads(threads):
    _core.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Arrays as the core reads them


def is_small_output(shape, dtype):
    """Whether an output of this shape is below the output cache's size (plain ``np.empty``)."""
    return math.prod(shape) * np.dtype(dtype).itemsize < _core.OUTPUT_CACHE_MIN_BYTES


def empty_output(shape, dtype):
    """An uninitialised array for the C core to fill: ``np.empty``, or for large outputs memory
    from the core's output cache (reused blocks of earlier outputs: no fresh pages to fault in
    and zero inside the convolution). Either way an ordinary, writable, C-contiguous array."""
    dtype = np.dtype(dtype)
    if is_small_output(shape, dtype):
        return np.empty(shape, dtype=dtype)
    count = math.prod(shape)
    memory = _core.OutputBuffer(count * dtype.itemsize)
    return np.frombuffer(memory, dtype=dtype, count=count).reshape(shape)


def to_kernel_input(array, dtype):
    """C-contiguous, native byte order, in ``dtype``: what the C core reads.

    Copies only when needed (Fortran order, strides, big-endian, another dtype); never writes to
    the caller's array, so read-only inputs work as they are.
    """
    return np.ascontiguousarray(array, dtype=dtype)


def _flat(array, dtype):
    """The flat C-contiguous buffer the core reads; an empty one stands for None (no bias)."""
    return np.empty(0, dtype) if array is None else to_kernel_input(array, dtype).reshape(-1)


# ---------------------------------------------------------------------------------------------
# The 2-D forward convolution and its plan cache

# The fast path for repeated calls (small layers in test suites are dominated by argument
# checking otherwise): arrays that the C core can read as they are and plain int parameters
# are looked up by everything the checks depend on. A key is stored only after the full checks
# passed for it, so the fast path never accepts a call the checks would refuse.
_PLANS = {}
_MAX_PLANS = 256


def _plain_parameter(value):
    """An int, a str, or a tuple of ints: parameters a key can hold as they are."""
    kind = type(value)
    return kind is int or kind is str or (
        kind is tuple and all(type(item) is int for item in value))


def plan_key(frontend, x, w, b, *parameters):
    """The plan cache's key for a call of ``frontend`` ("caffe": NCHW, OIHW; "keras": NHWC,
    HWIO) with these parameters, or None when the call cannot take the fast path."""
    if type(x) is not np.ndarray or type(w) is not np.ndarray:
        return None
    for value in parameters:   # a loop, not all(...): a generator costs a tiny call 10 %
        if type(value) is not int and not _plain_parameter(value):
            return None
    dtype = x.dtype
    if not ((dtype is NATIVE_DTYPES[0] or dtype is NATIVE_DTYPES[1]) and w.dtype is dtype
            and x.flags.carray and w.flags.carray):
        return None
    if b is None:
        return (frontend, x.shape, w.shape, None, parameters, dtype.char)
    if type(b) is np.ndarray and b.dtype is dtype and b.flags.carray:
        return (frontend, x.shape, w.shape, b.shape, parameters, dtype.char)
    return None


def run_cached_plan(key, x, w, b, out=None):
    """The output of a call whose key passed the checks before, or None if it never did. With
    ``out``, the output is written there, if ``out`` plainly fits (the plan's shape and dtype,
    C-contiguous, writeable, apart from the inputs); else None, and the full checks decide."""
    entry = _PLANS.get(key)
    if entry is None:
        return None
    plan, small_output = entry
    if out is None:
        y = (np.empty(plan.output_shape, x.dtype) if small_output
             else empty_output(plan.output_shape, x.dtype))
    elif (type(out) is np.ndarray and out.dtype is x.dtype and out.flags.carray
          and out.flags.writeable and out.shape == plan.output_shape
          and not any(np.may_share_memory(out, operand) for operand in (x, w, b)
                      if operand is not None)):
        y = out
    else:
        return None
    plan.run(x, w, b, y)
    return y


def cache_plan(key, geometry, dtype):
    """Remember a checked call's plan (until the cache is full), and whether its output is
    below the output cache's size (then np.empty, without asking again)."""
    if len(_PLANS) < _MAX_PLANS:
        plan = _core.ConvPlan(geometry, dtype, key[0] == "keras")
        _PLANS[key] = (plan, is_small_output(plan.output_shape, dtype))


def forward(geometry, x, w, b, dtype, *, channels_last=False, out=None):
    """Run the C core's convolution forward on a checked geometry (``Conv2DGeometry`` or
    ``ConvNDGeometry``); inputs are converted, never modified. ``x`` and the result are NCHW,
    or NHWC with ``channels_last`` (read and written in place by the engine, which packs from
    either layout: no whole-tensor copies, the same bits); the weights are OIHW, or Keras's HWIO
    with ``channels_last``. The result goes to ``out`` (checked) when given."""
    plan = _core.ConvPlan(geometry, dtype, channels_last)
    y = empty_output(plan.output_shape, dtype) if out is None else out
    plan.run(
        to_kernel_input(x, dtype),
        to_kernel_input(w, dtype),
        None if b is None else to_kernel_input(b, dtype),
        y,
    )
    return y


# ---------------------------------------------------------------------------------------------
# N-D convolution, its gradients and Deconvolution (``ConvNDGeometry``)


def conv_forward(geometry, x, w, b, dtype):
    y = empty_output(geometry.output_shape, dtype)
    _core.convnd_forward(geometry, _flat(x, dtype), _flat(w, dtype), _flat(b, dtype),
                         y.reshape(-1))
    return y


def conv_backward(geometry, x, w, dy, dtype, *, want_dx=True, want_dw=True, want_db=True):
    """(dx, dw, db) of the convolution ``geometry`` describes; unwanted ones are None."""
    dx = empty_output(geometry.input_shape, dtype) if want_dx else None
    dw = empty_output(geometry.weight_shape, dtype) if want_dw else None
    db = np.empty(geometry.out_channels, dtype=dtype) if want_db else None
    # An empty buffer tells the core "not wanted" (its pointer is NULL); None would not do, as
    # Cython picks the float/double specialisation from the buffers' dtypes.
    absent = _flat(None, dtype)
    _core.convnd_backward(
        geometry, _flat(x if want_dw else None, dtype), _flat(w, dtype), _flat(dy, dtype),
        absent if dx is None else dx.reshape(-1), absent if dw is None else dw.reshape(-1),
        absent if db is None else db,
    )
    return dx, dw, db


def deconv_forward(geometry, x, w, b, dtype):
    """Deconvolution = backward-data of the convolution ``geometry`` describes, plus the bias."""
    y, _, _ = conv_backward(geometry, None, w, x, dtype, want_dw=False, want_db=False)
    if b is not None:
        y += np.asarray(b, dtype=dtype).reshape((-1,) + (1,) * geometry.rank)
    return y


def deconv_backward(geometry, x, w, dy, dtype, bias):
    """Deconvolution's gradients: its dx is the convolution's forward of dy, its dw the
    convolution's weight gradient with the roles of input and output gradient exchanged."""
    dx = conv_forward(geometry, dy, w, None, dtype)
    _, dw, _ = conv_backward(geometry, dy, w, x, dtype, want_dx=False, want_db=False)
    db = to_kernel_input(dy, dtype).sum(axis=(0, *range(2, dy.ndim))) if bias else None
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Pooling (``Pool2DGeometry``)


def pool(geometry, method, x, dtype):
    y = empty_output(geometry.output_shape, dtype)
    _core.pool2d_forward(geometry, method, _flat(x, dtype), y.reshape(-1))
    return y


def pool_backward(geometry, method, x, dy, dtype):
    dx = empty_output(x.shape, dtype)
    _core.pool2d_backward(geometry, method, _flat(x, dtype), _flat(dy, dtype), dx.reshape(-1))
    return dx


# ---------------------------------------------------------------------------------------------
# InnerProduct (``InnerProductShape``)


def inner_product(shape, x, w, b, dtype):
    """x (rows x inputs) times the weights' transpose, plus the bias after the product (Caffe's
    order). Transposed weights (inputs x outputs) are copied to outputs x inputs first: the core
    reads each output's weights as one contiguous row, so both layouts give the same bits."""
    x_rows = to_kernel_input(x, dtype).reshape(shape.rows, shape.inputs)
    weights = to_kernel_input(w.T if shape.transpose else w, dtype)
    y = empty_output((shape.rows, shape.outputs), dtype)
    _core.inner_product(x_rows, weights, y)
    if b is not None:
        y += to_kernel_input(b, dtype)
    return y.reshape(shape.output_shape)


# ---------------------------------------------------------------------------------------------
# ReLU


def relu(x, negative_slope, dtype, out=None):
    """Caffe's ReLU of x, into ``out`` (checked: C-contiguous, x's shape, ``dtype``; may be x
    itself) or a new array."""
    x_flat = to_kernel_input(x, dtype).reshape(-1)
    y = empty_output(np.shape(x), dtype) if out is None else out
    _core.relu(x_flat, float(dtype.type(negative_slope)), y.reshape(-1))
    return y


def libm(function, x, dtype, exponent=0.0):
    """The C library's ``function`` ("exp", "log", "tanh" or "pow" to ``exponent``) of every
    element of x in ``dtype`` (expf/logf/tanhf/powf for float32), as Caffe's code calls it; a
    new array."""
    y = np.array(x, dtype=dtype, order="C", copy=True)   # a 0-d x stays 0-d
    _core.libm(function, y.reshape(-1), float(dtype.type(exponent)), y.reshape(-1))
    return y


# ---------------------------------------------------------------------------------------------
# BatchNorm's and Scale's per-channel passes, Eltwise's sum


def channel_normalize(x, view, mean, deviation, dtype, out=None):
    """BatchNorm's ``(x - mean[c]) / deviation[c]`` with x viewed as ``view`` = (outer,
    channels, inner), into ``out`` (checked; may be x itself) or a new array."""
    x_rows = to_kernel_input(x, dtype).reshape(view)
    y = empty_output(np.shape(x), dtype) if out is None else out
    _core.channel_normalize(x_rows, to_kernel_input(mean, dtype),
                            to_kernel_input(deviation, dtype), y.reshape(view))
    return y


def channel_scale(x, view, scale, bias, dtype, out=None):
    """Scale's ``x * scale[c] (+ bias[c])`` with x viewed as ``view`` = (outer, channels,
    inner), into ``out`` (checked; may be x itself) or a new array."""
    x_rows = to_kernel_input(x, dtype).reshape(view)
    y = empty_output(np.shape(x), dtype) if out is None else out
    _core.channel_scale(x_rows, _flat(scale, dtype), _flat(bias, dtype), y.reshape(view))
    return y


def eltwise_sum(inputs, coeff, dtype, out=None):
    """Caffe's Eltwise SUM of ``inputs`` (arrays of one shape), ``coeff[i]`` times each, into
    ``out`` (checked; may be one of the inputs) or a new array."""
    flat = [to_kernel_input(array, dtype).reshape(-1) for array in inputs]
    y = empty_output(np.shape(inputs[0]), dtype) if out is None else out
    _core.eltwise_sum(flat, to_kernel_input(coeff, dtype), y.reshape(-1))
    return y


# ---------------------------------------------------------------------------------------------
# LRN's window


def lrn_window(x, size, alpha_over_size, k, dtype, three_quarter_power=False):
    """Caffe's LRN ACROSS_CHANNELS scale (k + the channel window's terms) for NCHW ``x``, a new
    array of x's shape; ``alpha_over_size`` and ``k`` already rounded to ``dtype``. With
    ``three_quarter_power`` (float32 only), the layer's output for beta = 0.75 instead:
    ``x * scale^-0.75``, the power glibc's powf's for every element (csrc/elementwise.h)."""
    if three_quarter_power and dtype != np.float32:
        raise ValueError("lrn_window: the three-quarter power route is float32's")
    x_rows = to_kernel_input(x, dtype)
    result = empty_output(x_rows.shape, dtype)
    shape3 = (x_rows.shape[0], x_rows.shape[1], int(np.prod(x_rows.shape[2:])))
    _core.lrn_window(x_rows.reshape(shape3), size, float(alpha_over_size), float(k),
                     result.reshape(shape3), three_quarter_power)
    return result
