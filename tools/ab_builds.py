"""Time two builds of fastconv's C core against each other in one process (a developer tool).

    git worktree add /tmp/base <commit> && (cd /tmp/base && python setup.py -q build_ext --inplace)
    python tools/ab_builds.py /tmp/base fwd alexnet_conv3 resnet_stem --reps 20
    python tools/ab_builds.py /tmp/base dx res7_b32=32,512,7,7,512,3,1,1

Single runs on the shared VMs move by 5-30 %, and two processes can land on differently loaded
cores; calls of the two builds in turns, on the same arrays, in one process, are comparable.
For each layer it prints both builds' median times, the median of the per-pair time ratios
(> 1: this checkout faster) and whether the two builds' results are bitwise equal.

Passes (float32, or float64 with --dtype): fwd (NCHW forward with bias), nhwc (channels-last
forward on pre-padded input), dx, dw, both (backward). Layers: names of
fastconv.cli.bench_layers, or name=N,C,H,W,O,K,stride,pad[,group].
It reaches into the core's private interface (`_core`, the geometry helper): this is a tool for
changing the engine, not an example of using fastconv.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import time

import numpy as np

from fastconv import _core
from fastconv._params.caffe_conv import caffe_convnd_geometry
from fastconv.cli.bench_layers import BY_NAME, Layer


def load_core(checkout):
    """The _core extension module built in-place in another checkout."""
    paths = glob.glob(os.path.join(checkout, "fastconv", "_core*.so"))
    if not paths:
        raise SystemExit(f"no built fastconv/_core*.so under {checkout}")
    spec = importlib.util.spec_from_file_location("fastconv._core", paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_layer(text):
    if "=" not in text:
        return BY_NAME[text]
    name, numbers = text.split("=")
    batch, channels, height, width, out, kernel, stride, pad, *group = map(int, numbers.split(","))
    return Layer(name, batch, channels, height, width, out, kernel, stride=stride, pad=pad,
                 group=group[0] if group else 1)


def runner(layer, mode, cores, dtype):
    """(call(core), outputs): one call of `mode` on fixed arrays of `dtype`, through either
    core."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape).astype(dtype)
    w = rng.standard_normal(layer.w_shape).astype(dtype)
    b = rng.standard_normal(layer.w_shape[0]).astype(dtype)
    geometry = caffe_convnd_geometry(x.shape, w.shape, b.shape, layer.stride, layer.pad,
                                     layer.dilation, layer.group, rank=2)
    empty = np.empty(0, dtype)
    if mode == "nhwc":
        pad = ((0, 0), (0, 0), (layer.pad, layer.pad), (layer.pad, layer.pad))
        x_padded = np.pad(x, pad)
        geometry = caffe_convnd_geometry(x_padded.shape, w.shape, b.shape, layer.stride, 0,
                                         layer.dilation, layer.group, rank=2)
        x_last = np.ascontiguousarray(x_padded.transpose(0, 2, 3, 1))
        w_last = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        plans = {id(core): core.ConvPlan(geometry, dtype, True) for core in cores}
        y = np.empty(plans[id(cores[0])].output_shape, dtype)
        return (lambda core: plans[id(core)].run(x_last, w_last, b, y)), (y,)
    y = np.empty(geometry.output_shape, dtype)
    dy = rng.standard_normal(geometry.output_shape).astype(dtype)
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    if mode == "fwd":
        return (lambda core: core.convnd_forward(geometry, x.ravel(), w.ravel(), b,
                                                 y.reshape(-1))), (y,)
    want_dx, want_dw = mode in ("dx", "both"), mode in ("dw", "both")
    return (lambda core: core.convnd_backward(
        geometry, x.ravel() if want_dw else empty, w.ravel(), dy.ravel(),
        dx.reshape(-1) if want_dx else empty, dw.reshape(-1) if want_dw else empty,
        empty)), (dx, dw)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="checkout whose in-place build is the base")
    parser.add_argument("mode", choices=["fwd", "nhwc", "dx", "dw", "both"])
    parser.add_argument("layers", nargs="+")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    base = load_core(args.base)
    for layer in map(parse_layer, args.layers):
        call, outputs = runner(layer, args.mode, (_core, base), np.dtype(args.dtype))
        call(base)
        base_results = [out.copy() for out in outputs]
        call(_core)
        same = all(np.array_equal(a, c, equal_nan=True) for a, c in zip(base_results, outputs))
        base_times, times = [], []
        for _ in range(args.reps):
            for core, into in ((base, base_times), (_core, times)):
                start = time.perf_counter()
                call(core)
                into.append(time.perf_counter() - start)
        ratio = np.median(np.array(base_times) / np.array(times))
        print(f"{layer.name:20s} {args.mode:4s} {args.dtype} "
              f"base {1e3 * np.median(base_times):8.3f} ms  "
              f"this {1e3 * np.median(times):8.3f} ms  speed-up {ratio:.3f}  "
              f"bits same: {same}")


if __name__ == "__main__":
    main()
