"""Run-time configuration: which compute engine (instruction set) runs, and how many threads.

Both live in the C core (``csrc/dispatch.c``, loaded by ``fastconv._engine``), decided once at
import:

- the engine is the best one this CPU supports (``avx512`` > ``avx2`` > ``generic``), unless the
  environment variable ``FASTCONV_KERNEL`` names a lower one (to test every code path);
- the thread count is ``FASTCONV_NUM_THREADS`` if set, otherwise as many threads as OpenMP says
  this process may use (``OMP_NUM_THREADS``, the CPU affinity mask). Small calls run on one
  thread whatever the setting: starting threads would cost more than the work.

Results never depend on the thread count: work is split over images, output channels and pixel
blocks, never over the reduction, so every output element is summed in the same order.

Large outputs (4 MiB and more) take their memory from a small cache of blocks that earlier
outputs gave back when their last array died: fresh memory would be zeroed by the kernel, page by
page, inside the convolution (40 % of a batch-32 AlexNet conv1 on a Xeon). The cache keeps at
most ``FASTCONV_OUTPUT_CACHE_MB`` MiB (default 256) in at most four blocks;
``set_output_cache_limit`` changes that, 0 turns it off.
"""
from __future__ import annotations

import numbers
import os

import numpy as np

from . import _engine

__all__ = ["cpu_info", "get_num_threads", "set_num_threads", "set_output_cache_limit"]


# More threads than this per CPU only adds OS threads that wait for a core (each one started and
# kept by OpenMP for the life of the process); a typo such as 10**6 would start a million.
THREADS_PER_CPU_LIMIT = 4


def set_num_threads(n):
    """Use at most ``n`` OpenMP threads in every later call, from any Python thread.

    ``1 <= n <= 4 * os.cpu_count()``; larger values are refused (ValueError).
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n={n!r} must be an int >= 1 (the number of threads)")
    n = int(n)
    if n < 1:
        raise ValueError(f"n={n} must be >= 1 (the number of threads)")
    cpus = os.cpu_count() or 1
    if n > THREADS_PER_CPU_LIMIT * cpus:
        raise ValueError(
            f"n={n} threads is more than {THREADS_PER_CPU_LIMIT} per CPU on this machine "
            f"({cpus} CPUs, so at most {THREADS_PER_CPU_LIMIT * cpus}): the extra threads would "
            "only wait for a core"
        )
    _engine.set_num_threads(n)


def set_output_cache_limit(megabytes):
    """Keep at most ``megabytes`` MiB of freed output memory for reuse (0: keep none, and free
    what is kept now). Returns the previous limit in MiB."""
    if isinstance(megabytes, bool) or not isinstance(megabytes, (int, float)):
        raise TypeError(f"megabytes={megabytes!r} must be a number >= 0 (MiB of output memory)")
    if not 0 <= megabytes < 2**40:
        raise ValueError(f"megabytes={megabytes!r} must be >= 0 (MiB of output memory)")
    return _engine.set_output_cache_limit(int(megabytes * 2**20)) / 2**20


def get_num_threads():
    """The most threads a call will use."""
    return _engine.get_num_threads()


def cpu_info():
    """Which micro-kernel runs and with how many threads.

    Returns a dict: ``kernel`` (the active engine: 'avx512', 'avx2' or 'generic'), ``threads``
    (``get_num_threads()``), ``available`` (the engines this CPU can run, best first),
    ``blocking`` (the micro-tile MR x NR and the block sizes KC, MC, NC per dtype, and the
    ``cache_bytes`` (L1d, L2, L3) this machine reported, from which they were derived), and
    ``prefer_direct_tile`` (whether the forward pass runs the direct tile more widely: over
    the GEMM reading a stride-1 layer's rows in place, and for float32 kernels of 3x3 and up
    with any number of outputs; chosen per CPU, the bits are the same).
    """
    return {
        "kernel": _engine.active_kernel(),
        "threads": _engine.get_num_threads(),
        "available": _engine.available_kernels(),
        "blocking": _engine.blocking(),
        "prefer_direct_tile": _engine.prefer_direct_tile(),
    }
