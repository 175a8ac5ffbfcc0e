"""Run-time configuration: which compute engine (instruction set) runs, and how many threads.

Both live in the C core (``csrc/dispatch.c``), decided once at import:

- the engine is the best one this CPU supports (``avx512`` > ``avx2`` > ``generic``), unless the
  environment variable ``FASTCONV_KERNEL`` names a lower one (to test every code path);
- the thread count is ``FASTCONV_NUM_THREADS`` if set, otherwise as many threads as OpenMP says
  this process may use (``OMP_NUM_THREADS``, the CPU affinity mask). Small calls run on one
  thread whatever the setting: starting threads would cost more than the work.

Results never depend on the thread count: work is split over images, output channels and pixel
blocks, never over the reduction, so every output element is summed in the same order.
"""
from __future__ import annotations

import os
import warnings


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
    finally:
        if shorten:
            del os.environ["GOMP_SPINCOUNT"]
    return _core


_core = _load_core()

__all__ = ["cpu_info", "get_num_threads", "set_num_threads"]

if _core.init_status() != 0:
    warnings.warn(
        f"FASTCONV_KERNEL={os.environ.get('FASTCONV_KERNEL')!r} is not one of the kernels "
        f"this CPU can run {_core.available_kernels()}; using {_core.active_kernel()!r}",
        RuntimeWarning,
        stacklevel=2,
    )


def set_num_threads(n):
    """Use at most ``n`` OpenMP threads (n >= 1) in every later call, from any Python thread."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n={n!r} must be an int >= 1 (the number of threads)")
    if n < 1:
        raise ValueError(f"n={n} must be >= 1 (the number of threads)")
    _core.set_num_threads(n)


def get_num_threads():
    """The most threads a call will use."""
    return _core.get_num_threads()


def cpu_info():
    """Which micro-kernel runs and with how many threads.

    Returns a dict: ``kernel`` (the active engine: 'avx512', 'avx2' or 'generic'), ``threads``
    (``get_num_threads()``), ``available`` (the engines this CPU can run, best first).
    """
    return {
        "kernel": _core.active_kernel(),
        "threads": _core.get_num_threads(),
        "available": _core.available_kernels(),
    }
