"""Turn pytest-benchmark JSON from benches/test_bench_conv.py into a markdown table.

    python benches/report.py [--peak-gflops P] bench.json [more.json ...]

GFLOP/s per library at the median time, the speed ratios fastconv/TensorFlow and
fastconv/PyTorch per layer (> 1: fastconv is faster) and their geometric means, plus the
kernel, threads and OpenBLAS setting the run used. With several files, each (layer, dtype,
library) keeps its best median (reruns of benchmarks disturbed by other processes).

The large layers also show their share of the float32 FMA peak of the kernel that ran:
``--peak-gflops`` as measured by tools/fma_peak.c on the benchmark machine; without it, the
AVX-512 peak of shared/anchors.md (540) when the kernel was avx512, and no share otherwise.
"""
import argparse
import json
import math

from layers import LARGE, LAYERS

ANCHOR_PEAK_GFLOPS = {"avx512": 540.0}  # 2 cores x 16-lane FMA x 2 pipes (shared/anchors.md)


def load(paths):
    medians, info = {}, {}
    for path in paths:
        with open(path) as handle:
            data = json.load(handle)
        for bench in data["benchmarks"]:
            extra = bench["extra_info"]
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


def table(medians, dtype, peak_gflops=None):
    lines = [
        f"### {dtype}",
        "",
        "| layer | GFLOP | fastconv GFLOP/s | TF GFLOP/s | torch GFLOP/s | fastconv/TF | fastconv/torch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = {"tensorflow": [], "torch": []}
    for layer in LAYERS:
        times = {lib: medians.get((layer.name, dtype, lib))
                 for lib in ("fastconv", "tensorflow", "torch")}
        if times["fastconv"] is None:
            continue
        cells = []
        for lib in ("fastconv", "tensorflow", "torch"):
            t = times[lib]
            if t is None:
                cells.append("–")
            elif layer.name == "tiny":
                cells.append(f"{t * 1e6:.1f} µs")
            else:
                text = f"{layer.flops / t / 1e9:.0f}"
                if (peak_gflops and dtype == "float32" and lib == "fastconv"
                        and layer.name in LARGE):
                    text += f" ({layer.flops / t / 1e9 / peak_gflops:.0%} of {peak_gflops:.0f})"
                cells.append(text)
        for lib in ratios:
            if times[lib] is not None:
                ratio = times[lib] / times["fastconv"]
                ratios[lib].append(ratio)
                cells.append(f"{ratio:.2f}")
            else:
                cells.append("–")
        lines.append(f"| {layer.name} | {layer.flops / 1e9:.3g} | " + " | ".join(cells) + " |")
    lines.append(
        f"| **geometric mean** | | | | | **{geometric_mean(ratios['tensorflow']):.2f}** | "
        f"**{geometric_mean(ratios['torch']):.2f}** |"
    )
    worst = {lib: min(values) if values else float("nan") for lib, values in ratios.items()}
    lines.append("")
    lines.append(f"Lowest ratio: fastconv/TF {worst['tensorflow']:.2f}, "
                 f"fastconv/torch {worst['torch']:.2f}.")
    return lines


def backward_table(medians):
    rows = sorted(key[1] for key in medians if key[0] == "backward" and key[2] == "fastconv")
    if not rows:
        return []
    lines = ["### float32 backward (dx and dW of one call)", "",
             "| layer | GFLOP | fastconv GFLOP/s | TF GFLOP/s | fastconv/TF |",
             "|---|---:|---:|---:|---:|"]
    for name in rows:
        ours, gflop = medians[("backward", name, "fastconv")]
        theirs = medians.get(("backward", name, "tensorflow"), (None,))[0]
        tf_cells = (f"{gflop / theirs:.0f} | {theirs / ours:.2f}" if theirs else "– | –")
        lines.append(f"| {name} | {gflop:.3g} | {gflop / ours:.0f} | {tf_cells} |")
    return lines + [""]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="pytest-benchmark JSON files")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="float32 FMA peak of the kernel that ran (tools/fma_peak.c)")
    args = parser.parse_args(argv)
    medians, info = load(args.paths)
    if "fastconv" not in info:  # only backward entries
        print("\n".join(backward_table(medians)))
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
    out += backward_table(medians)
    print("\n".join(out))


if __name__ == "__main__":
    main()
