"""Every micro-kernel (generic C, AVX2, AVX-512) against float64 numpy references.

The generic C engine is the contract: each vector engine must agree with numpy to the
rounding bound of any summation order, on odd sizes, edge tiles, transposed and strided
operands, both dtypes, and beta == 0 must overwrite a NaN-filled C without reading it.
Engines this CPU cannot run are skipped (they still compile everywhere).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import _core

from c_programs import build_and_run
from reference.conv import caffe_conv, gemm
from reference.tolerance import assert_scaled_close, gemm_error_bound

ALL_KERNELS = ["generic", "avx2", "avx512"]   # the ``kernel`` fixture's (engine/conftest.py)
DTYPES = [np.float32, np.float64]

# m, n, k: ones, sizes below and just above every engine's MR/NR (4/8, 6/16, 8/48 and the f64
# 8/24), and k across one and several reduction blocks (KC from the L1 size: 128 to 384 for
# the usual 32-48 KiB).
SIZES = [
    (1, 1, 1), (1, 7, 3), (5, 1, 2), (3, 5, 1), (6, 16, 7), (8, 48, 9), (9, 49, 130),
    (13, 17, 257), (37, 101, 300), (50, 33, 513),
]


def operand(rng, rows, cols, dtype, layout):
    """A rows x cols operand stored plainly, transposed, or as a strided view."""
    if layout == "plain":
        return rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "transposed":
        return rng.standard_normal((cols, rows)).astype(dtype).T
    return rng.standard_normal((2 * rows, 3 * cols)).astype(dtype)[::2, ::3]


def check_gemm(m, n, k, dtype, a_layout, b_layout, c_layout, beta, seed=0):
    rng = np.random.default_rng(seed)
    a = operand(rng, m, k, dtype, a_layout)
    b = operand(rng, k, n, dtype, b_layout)
    c = (np.empty((n, m), dtype).T if c_layout == "transposed" else np.empty((m, n), dtype))
    if beta:
        c[...] = rng.standard_normal((m, n))
        expected = gemm(a, b) + c.astype(np.float64)
    else:
        c[...] = np.nan
        expected = gemm(a, b)
    _core.gemm(a, b, c, beta)
    bound = gemm_error_bound(a, b) + (np.finfo(dtype).eps * np.abs(expected) if beta else 0)
    error = np.abs(c.astype(np.float64) - expected)
    assert np.all(error <= bound), (
        f"m={m} n={n} k={k} {np.dtype(dtype).name} a={a_layout} b={b_layout} c={c_layout} "
        f"beta={beta}: max error {error.max():.3g}, bound there {bound.flat[error.argmax()]:.3g}"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SIZES)
def test_gemm_sizes_beta0_overwrites_nan(kernel, m, n, k, dtype):
    check_gemm(m, n, k, dtype, "plain", "plain", "plain", beta=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_layout", ["plain", "transposed", "strided"])
@pytest.mark.parametrize("b_layout", ["plain", "transposed", "strided"])
def test_gemm_transposed_and_strided(kernel, a_layout, b_layout, dtype):
    # The backward passes' shapes: dW = dy * col^T and W^T * dy.
    check_gemm(19, 70, 261, dtype, a_layout, b_layout, "plain", beta=False)
    check_gemm(7, 33, 40, dtype, a_layout, b_layout, "transposed", beta=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (13, 17, 257), (50, 33, 513)])
def test_gemm_beta1_accumulates(kernel, m, n, k, dtype):
    check_gemm(m, n, k, dtype, "plain", "plain", "plain", beta=True)


def test_gemm_k0(kernel):
    c = np.full((3, 4), np.nan)
    _core.gemm(np.empty((3, 0)), np.empty((0, 4)), c, False)
    assert np.all(c == 0)
    c = np.ones((3, 4))
    _core.gemm(np.empty((3, 0)), np.empty((0, 4)), c, True)
    assert np.all(c == 1)


def test_vector_kernel_matches_the_c_contract(kernel):
    """The same product on the generic engine and on this one, within the rounding bound."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((45, 300))
    b = rng.standard_normal((300, 77))
    ours = np.empty((45, 77))
    _core.gemm(a, b, ours, False)
    _core.set_kernel("generic")
    contract = np.empty((45, 77))
    _core.gemm(a, b, contract, False)
    _core.set_kernel(kernel)
    assert np.all(np.abs(ours - contract) <= 2 * gemm_error_bound(a, b))


# Convolutions through every engine: fused im2col packing, 1x1, grouped and depthwise paths,
# with kernel_h != kernel_w, stride_h != stride_w, pad_h != pad_w (square kernels hide bugs).
CONV_CASES = [
    # x shape, w shape, stride, pad, dilation, group
    ((2, 6, 13, 11), (8, 3, 3, 2), (1, 2), (1, 0), (1, 1), 2),
    ((1, 3, 20, 23), (5, 3, 5, 4), (2, 3), (2, 1), (2, 1), 1),
    ((1, 3, 30, 30), (20, 3, 11, 11), (4, 4), (0, 0), (1, 1), 1),
    ((2, 32, 7, 9), (70, 32, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    # 1x1 with the image read in place: whole vectors short of a panel, then a partial one
    ((1, 520, 16, 20), (13, 520, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    ((1, 40, 5, 11), (9, 40, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    # stride 1, output rows of 48 and 32 pixels: B read in place from a padded copy
    ((1, 12, 7, 48), (10, 12, 3, 3), (1, 1), (0, 1), (1, 1), 1),
    ((2, 8, 5, 36), (6, 4, 3, 5), (1, 1), (1, 0), (1, 1), 2),
    ((1, 300, 6, 5), (20, 300, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 16, 9, 10), (16, 1, 3, 2), (1, 2), (1, 2), (2, 1), 16),
    ((1, 1, 5, 5), (1, 1, 6, 6), (4, 4), (0, 0), (1, 1), 1),  # Caffe's truncation: 1x1 out
    ((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),  # the tiny layer
    # stride_w 2 on rows wide enough for the vector gather, ending exactly at the input's edge
    ((1, 3, 40, 64), (8, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1),  # ResNet's stem, shrunk
    ((1, 2, 9, 70), (3, 2, 3, 7), (1, 2), (1, 3), (1, 1), 1),
    ((2, 4, 6, 37), (4, 2, 2, 3), (2, 2), (0, 0), (1, 2), 2),
    ((1, 3, 15, 140), (6, 3, 11, 11), (4, 4), (0, 1), (1, 1), 1),  # stride 4, rows of 33
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda case: "x{}w{}".format(*case[:2]))
def test_conv_every_engine(kernel, case, dtype):
    x_shape, w_shape, stride, pad, dilation, group = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    y = fastconv.conv2d_caffe(x, w, b, stride=stride, pad=pad, dilation=dilation, group=group)
    assert y.dtype == dtype
    assert_scaled_close(y, caffe_conv(x, w, b, stride, pad, dilation, group), w[0].size + 1, dtype)


@pytest.mark.parametrize("name", ALL_KERNELS)
def test_environment_variable_selects_the_kernel(name):
    env = dict(os.environ, FASTCONV_KERNEL=name)
    script = (
        "import warnings; warnings.simplefilter('error');"
        "import fastconv; print(fastconv.cpu_info()['kernel'])"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True)
    if name in _core.available_kernels():
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == name
    else:
        # An engine this CPU cannot run is refused with a warning, never executed.
        assert "RuntimeWarning" in result.stderr and "FASTCONV_KERNEL" in result.stderr


def test_cpu_info():
    info = fastconv.cpu_info()
    assert info["kernel"] in info["available"]
    assert info["available"][-1] == "generic"
    assert info["threads"] == fastconv.get_num_threads() >= 1
    # The forward's direct-over-shifted-rows choice is keyed on AMD's family 19h with AVX-512
    # (Zen 4), read here from the kernel's /proc/cpuinfo rather than cpuid.
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        first = cpuinfo.read_text().split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        zen4 = (fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
                and "avx512f" in fields.get("flags", "").split())
        assert info["prefer_direct_tile"] is zen4


def test_set_kernel_refuses_unknown():
    with pytest.raises(ValueError, match="not available"):
        _core.set_kernel("sse9")


def test_avx512_blocking_emulated(tmp_path):
    """The AVX-512 engine's blocking (MR 8, NR 48/24, KC 128) through the real drivers, with
    vector extensions for intrinsics: covers that path's logic on CPUs without AVX-512."""
    result = build_and_run("emulated_avx512", tmp_path,
                           ["-O1", "-std=gnu11", "-Wno-unknown-pragmas"])
    assert result.returncode == 0, result.stdout


def _sysfs_cache_bytes(level):
    """L`level` data (or unified) cache of CPU 0 as Linux's sysfs states it, or None."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")) if root.is_dir() else []:
        try:
            if (int((index / "level").read_text()) == level
                    and (index / "type").read_text().strip() != "Instruction"):
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * {"K": 1024, "M": 1 << 20}[size[-1]]
        except (OSError, ValueError, KeyError):
            return None
    return None


def test_blocking_comes_from_this_machines_caches(kernel):
    """Block sizes are derived at run time from the cache sizes found: the A micro-panel
    (MR x KC, the one the macro-kernel keeps in L1) fits in half of L1, the B block (KC x NC)
    in three quarters of L2 and the A block (MC x KC) in half of it."""
    blocking = _core.blocking()
    l1, l2, _ = blocking["cache_bytes"]
    for level, found in ((1, l1), (2, l2)):
        stated = _sysfs_cache_bytes(level)
        if stated is not None:
            assert found == stated
    for dtype, item in (("float32", 4), ("float64", 8)):
        sizes = blocking[dtype]
        assert sizes["kc"] % 8 == 0 and sizes["mc"] % sizes["mr"] == 0
        assert sizes["nc"] % sizes["nr"] == 0
        assert 64 <= sizes["kc"] <= 512
        if l1 >= 2 * 64 * sizes["mr"] * item:        # not clamped to the smallest KC
            assert sizes["kc"] * sizes["mr"] * item <= l1 // 2
        if l2 >= 4 * sizes["kc"] * 2 * sizes["nr"] * item:   # not clamped to the smallest NC
            assert sizes["nc"] * sizes["kc"] * item <= l2 * 3 // 4
            assert sizes["mc"] * sizes["kc"] * item <= l2 // 2
