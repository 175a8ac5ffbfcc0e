"""Turn pytest-benchmark JSON from benches/ into markdown tables.

    python benches/report.py [--peak-gflops P] bench.json [more.json ...]

GFLOP/s per library at the median time, the speed ratios fastconv/TensorFlow, fastconv/PyTorch
and fastconv/(the faster of the two) per layer (> 1: fastconv is faster) and their geometric
means, plus the kernel, threads and OpenBLAS setting the run used. With several files, each
(layer, dtype, library) keeps its best median (reruns of benchmarks disturbed by other
processes). The backward benchmarks (dx and dW) get their own table, with the same ratios, and
so do Pooling (time, the rate input and output are moved at) and InnerProduct (time, the
rate the weights are read at, ratios to PyTorch and numpy).

Every layer also shows fastconv's share of the FMA peak of the kernel that ran (float64: half
of it, as both AVX2 and AVX-512 do half as many double lanes): ``--peak-gflops`` as measured by
tools/fma_peak.c on the benchmark machine; without it, the AVX-512 peak of shared/anchors.md
(540) when the kernel was avx512, and no share otherwise.
"""
import argparse
import json
import math

from fastconv.cli.bench_layers import FORWARD

ANCHOR_PEAK_GFLOPS = {"avx512": 540.0}  # 2 cores x 16-lane FMA x 2 pipes (shared/anchors.md)


def load(paths):
    medians, info = {}, {}
    for path in paths:
        with open(path) as handle:
            data = json.load(handle)
        for bench in data["benchmarks"]:
            extra = bench["extra_info"]
            if "inner_product" in extra:  # test_bench_inner_product.py
                key = ("inner_product", extra["inner_product"], extra["batch"], extra["library"])
                median = bench["stats"]["median"]
                if key not in medians or median < medians[key][0]:
                    medians[key] = (median, extra["gflop"], extra["weight_bytes"])
                continue
            if "pooling" in extra or "pooling_backward" in extra:  # test_bench_pooling.py
                kind = "pooling" if "pooling" in extra else "pooling_backward"
                key = (kind, extra[kind], extra["library"])
                median = bench["stats"]["median"]
                if key not in medians or median < medians[key][0]:
                    medians[key] = (median, extra["bytes_moved"], extra["method"])
                continue
            if "backward_layer" in extra:  # test_bench_backward.py
                key = ("backward", extra["backward_layer"], extra["library"])
                median = bench["stats"]["median"]
                if key not in medians or median < medians[key][0]:
                    medians[key] = (median, extra["gflop"])
                continue
            if "library" not in extra:
                continue
            key = (extra["layer"], extra["dtype"], extra["library"])
            median = bench["stats"]["median"]
            if key not in medians or median < medians[key]:
                medians[key] = median
            info.setdefault("fastconv", extra["fastconv"])
            info.setdefault("openblas", extra["openblas_coretype"])
            info.setdefault("versions", extra["versions"])
            info.setdefault("machine", extra.get("machine", ""))
            info.setdefault("loads", []).append(extra["load_average"][0])
        info.setdefault("date", data.get("datetime", ""))
    return medians, info


def geometric_mean(values):
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def ratio_cells(times, peers, ratios):
    """fastconv's speed ratio to each peer and to the faster one; collects them in ``ratios``."""
    cells = []
    present = [times[lib] for lib in peers if times.get(lib) is not None]
    for lib, time in [(lib, times.get(lib)) for lib in peers] + [
            ("best", min(present) if present else None)]:
        if time is None:
            cells.append("–")
            continue
        ratio = time / times["fastconv"]
        ratios[lib].append(ratio)
        cells.append(f"{ratio:.2f}")
    return cells


def summary(ratios, columns_before):
    means = " | ".join(f"**{geometric_mean(ratios[lib]):.2f}**" for lib in ratios)
    worst = {lib: min(values) if values else float("nan") for lib, values in ratios.items()}
    return [f"| **geometric mean** |{' |' * columns_before} {means} |", "",
            f"Lowest ratio: fastconv/TF {worst['tensorflow']:.2f}, "
            f"fastconv/torch {worst['torch']:.2f}, fastconv/best peer {worst['best']:.2f}."]


PEERS = ("tensorflow", "torch")


def table(medians, dtype, peak_gflops=None):
    peak = None if not peak_gflops else peak_gflops / (2 if dtype == "float64" else 1)
    lines = [
        f"### {dtype}" + (f" (share of the {peak:.0f} GFLOP/s FMA peak)" if peak else ""),
        "",
        "| layer | GFLOP | fastconv GFLOP/s | TF GFLOP/s | torch GFLOP/s | fastconv/TF | "
        "fastconv/torch | fastconv/best peer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = {"tensorflow": [], "torch": [], "best": []}
    for layer in FORWARD:
        times = {lib: medians.get((layer.name, dtype, lib)) for lib in ("fastconv",) + PEERS}
        if times["fastconv"] is None:
            continue
        cells = []
        for lib in ("fastconv",) + PEERS:
            t = times[lib]
            if t is None:
                cells.append("–")
            elif layer.name == "tiny":
                cells.append(f"{t * 1e6:.1f} µs")
            else:
                text = f"{layer.flops / t / 1e9:.0f}"
                if peak and lib == "fastconv":
                    text += f" ({layer.flops / t / 1e9 / peak:.0%} of {peak:.0f})"
                cells.append(text)
        cells += ratio_cells(times, PEERS, ratios)
        lines.append(f"| {layer.name} | {layer.flops / 1e9:.3g} | " + " | ".join(cells) + " |")
    return lines + summary(ratios, 4)


def backward_table(medians):
    rows = sorted(key[1] for key in medians if key[0] == "backward" and key[2] == "fastconv")
    if not rows:
        return []
    lines = ["### float32 backward (dx and dW of one call)", "",
             "| layer | GFLOP | fastconv GFLOP/s | TF GFLOP/s | fastconv/TF | torch GFLOP/s | "
             "fastconv/torch | fastconv/best peer |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = {"tensorflow": [], "torch": [], "best": []}
    for name in rows:
        ours, gflop = medians[("backward", name, "fastconv")]
        times = {lib: medians.get(("backward", name, lib), (None,))[0] for lib in PEERS}
        times["fastconv"] = ours
        tf_ratio, torch_ratio, best_ratio = ratio_cells(times, PEERS, ratios)
        speeds = {lib: f"{gflop / times[lib]:.0f}" if times[lib] else "–" for lib in PEERS}
        lines.append(f"| {name} | {gflop:.3g} | {gflop / ours:.0f} | {speeds['tensorflow']} | "
                     f"{tf_ratio} | {speeds['torch']} | {torch_ratio} | {best_ratio} |")
    means = {lib: f"**{geometric_mean(values):.2f}**" for lib, values in ratios.items()}
    return lines + [f"| **geometric mean** | | | | {means['tensorflow']} | | {means['torch']} | "
                    f"{means['best']} |", ""]


def inner_product_table(medians):
    """InnerProduct: each library's time, the rate it reads the weights at, and the ratios."""
    rows = sorted({key[1:3] for key in medians if key[0] == "inner_product"},
                  key=lambda row: (row[1], row[0]))
    if not rows:
        return []
    libraries = ("fastconv", "torch", "numpy")
    lines = ["### float32 InnerProduct (AlexNet's fc6, fc7, fc8; numpy on one BLAS thread)", "",
             "| layer | batch | weights MB | " + " | ".join(f"{lib} ms (GB/s)" for lib in libraries)
             + " | fastconv/torch | fastconv/numpy |", "|---|---:|---:|" + "---:|" * 5]
    for name, batch in rows:
        entries = {lib: medians.get(("inner_product", name, batch, lib)) for lib in libraries}
        if entries["fastconv"] is None:
            continue
        weight_bytes = entries["fastconv"][2]
        cells = [f"{entry[0] * 1e3:.2f} ({weight_bytes / entry[0] / 1e9:.0f})" if entry else "–"
                 for entry in entries.values()]
        ratios = [f"{entries[lib][0] / entries['fastconv'][0]:.2f}" if entries[lib] else "–"
                  for lib in ("torch", "numpy")]
        lines.append(f"| {name} | {batch} | {weight_bytes / 1e6:.0f} | " + " | ".join(cells)
                     + " | " + " | ".join(ratios) + " |")
    return lines + [""]


POOLING_TITLES = {
    "pooling": "### float32 Pooling, forward (time and GB/s of input read plus output written)",
    "pooling_backward": "### float32 Pooling, backward (time and GB/s of the gradients and the "
                        "input moved)",
}


def pooling_table(medians, kind="pooling"):
    """Pooling (or its backward): each library's time and the rate it moves its data at, and
    the ratios."""
    rows = sorted({key[1] for key in medians if key[0] == kind and key[2] == "fastconv"})
    if not rows:
        return []
    lines = [POOLING_TITLES[kind], "",
             "| layer | method | fastconv | TF | torch | fastconv/TF | fastconv/torch | "
             "fastconv/best peer |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    ratios = {"tensorflow": [], "torch": [], "best": []}
    for name in rows:
        ours, moved, method = medians[(kind, name, "fastconv")]
        times = {lib: medians.get((kind, name, lib), (None,))[0] for lib in PEERS}
        times["fastconv"] = ours
        speeds = [f"{times[lib] * 1e3:.3g} ms ({moved / times[lib] / 1e9:.0f})" if times[lib]
                  else "–" for lib in ("fastconv",) + PEERS]
        cells = ratio_cells(times, PEERS, ratios)
        lines.append(f"| {name} | {method} | " + " | ".join(speeds + cells) + " |")
    means = " | ".join(f"**{geometric_mean(values):.2f}**" if values else "–"
                       for values in ratios.values())
    return lines + [f"| **geometric mean** | | | | | {means} |", ""]


def nhwc_table(medians):
    """conv2d_keras on NHWC data against conv2d_caffe on the same layer, float32, same run."""
    lines = ["### float32, NHWC (`conv2d_keras`) time / NCHW (`conv2d_caffe`) time", "",
             "| layer | NCHW | NHWC | NHWC / NCHW |", "|---|---:|---:|---:|"]
    for layer in FORWARD:
        nchw = medians.get((layer.name, "float32", "fastconv"))
        nhwc = medians.get((layer.name, "float32", "fastconv_nhwc"))
        if nchw is None or nhwc is None:
            continue
        lines.append(f"| {layer.name} | {nchw * 1e3:.3g} ms | {nhwc * 1e3:.3g} ms | "
                     f"{nhwc / nchw:.2f} |")
    return lines + [""] if len(lines) > 4 else []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="pytest-benchmark JSON files")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="float32 FMA peak of the kernel that ran (tools/fma_peak.c)")
    args = parser.parse_args(argv)
    medians, info = load(args.paths)
    if "fastconv" not in info:  # only backward, pooling or InnerProduct entries
        print("\n".join(backward_table(medians) + pooling_table(medians)
                        + pooling_table(medians, "pooling_backward")
                        + inner_product_table(medians)))
        return
    fc = info["fastconv"]
    peak = args.peak_gflops or ANCHOR_PEAK_GFLOPS.get(fc["kernel"])
    loads = info["loads"]
    out = [
        f"fastconv kernel `{fc['kernel']}` (available: {', '.join(fc['available'])}), "
        f"{fc['threads']} threads; OPENBLAS_CORETYPE={info['openblas']} (numpy's OpenBLAS, "
        "used only for the float64 reference, limited to 1 thread); "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f"; {info['machine']}; {info['date']}",
        "",
        f"1-minute load average during the run: {min(loads):.2f}–{max(loads):.2f}. "
        "GFLOP/s at the median time; ratios are speed ratios (>1: fastconv faster); the tiny "
        "layer shows time per call.",
        "",
    ]
    for dtype in ("float32", "float64"):
        out += table(medians, dtype, peak) + [""]
    out += nhwc_table(medians)
    out += backward_table(medians)
    out += pooling_table(medians)
    out += pooling_table(medians, "pooling_backward")
    out += inner_product_table(medians)
    print("\n".join(out))


if __name__ == "__main__":
    main()
