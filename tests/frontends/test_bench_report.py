"""benches/report.py: the README's benchmark table is computed, not typed. Fed made-up
pytest-benchmark JSON whose times give known ratios, it must print those ratios."""
import json
import math
import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parents[2] / "benches"
sys.path.insert(0, str(BENCHES))

import report  # noqa: E402
from fastconv.cli.bench_layers import LAYERS  # noqa: E402


def forward_entry(layer, dtype, library, seconds, load=0.5):
    return {"stats": {"median": seconds}, "extra_info": {
        "library": library, "layer": layer.name, "dtype": dtype, "flops": layer.flops,
        "fastconv": {"kernel": "avx2", "threads": 2, "available": ["avx2", "generic"]},
        "versions": {"numpy": "x"}, "openblas_coretype": "(unset)", "numpy_blas_threads": 1,
        "load_average": [load, load, load], "machine": "x86_64"}}


def backward_entry(name, library, seconds, gflop):
    return {"stats": {"median": seconds},
            "extra_info": {"gflop": gflop, "backward_layer": name, "library": library}}


def test_ratios_peak_share_geometric_mean_and_backward(tmp_path, capsys):
    seed = next(layer for layer in LAYERS if layer.name == "seed")
    tiny = next(layer for layer in LAYERS if layer.name == "tiny")
    seed_time = seed.flops / 100e9                          # fastconv at 100 GFLOP/s
    entries = [
        forward_entry(seed, "float32", "fastconv", seed_time),
        forward_entry(seed, "float32", "tensorflow", seed_time * 2),     # fastconv/TF 2.00
        forward_entry(seed, "float32", "torch", seed_time / 2),          # fastconv/torch 0.50
        forward_entry(tiny, "float32", "fastconv", 5e-6),
        forward_entry(tiny, "float32", "tensorflow", 4e-4),              # 80.00
        backward_entry("convX", "fastconv", 0.5, 10.0),                  # 20 GFLOP/s
        backward_entry("convX", "tensorflow", 0.25, 10.0),               # 40 GFLOP/s, 0.50
    ]
    first = tmp_path / "a.json"
    first.write_text(json.dumps({"benchmarks": entries, "datetime": "now"}))
    # A second, slower rerun of the seed: each library keeps its best median.
    second = tmp_path / "b.json"
    second.write_text(json.dumps({"benchmarks": [
        forward_entry(seed, "float32", "fastconv", seed_time * 3, load=1.5)], "datetime": "x"}))
    report.main(["--peak-gflops", "200", str(first), str(second)])
    out = capsys.readouterr().out
    seed_row = next(line for line in out.splitlines() if line.startswith("| seed "))
    assert "| 100 (50% of 200) | 50 | 200 | 2.00 | 0.50 |" in seed_row
    tiny_row = next(line for line in out.splitlines() if line.startswith("| tiny "))
    assert "5.0 µs" in tiny_row and "| 80.00 |" in tiny_row
    geometric = math.sqrt(2.0 * 80.0)
    assert f"**{geometric:.2f}**" in out
    assert "| convX | 10 | 20 | 40 | 0.50 |" in out
    assert "0.50–1.50" in out                                 # the load range of both runs


def test_peak_share_only_when_known(tmp_path, capsys):
    seed = next(layer for layer in LAYERS if layer.name == "seed")
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"benchmarks": [
        forward_entry(seed, "float32", "fastconv", seed.flops / 100e9)], "datetime": "now"}))
    report.main([str(path)])       # an avx2 run and no --peak-gflops: no made-up share
    assert "% of" not in capsys.readouterr().out


def test_nhwc_over_nchw_time(tmp_path, capsys):
    seed = next(layer for layer in LAYERS if layer.name == "seed")
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"benchmarks": [
        forward_entry(seed, "float32", "fastconv", 0.004),
        forward_entry(seed, "float32", "fastconv_nhwc", 0.005)], "datetime": "now"}))
    report.main([str(path)])
    out = capsys.readouterr().out
    assert "| seed | 4 ms | 5 ms | 1.25 |" in out
    assert "| seed | 1.05 | " in out                  # fastconv_nhwc is no peer in the main table


def test_inner_product_time_weight_rate_and_ratios(tmp_path, capsys):
    def entry(library, seconds, batch=1):
        return {"stats": {"median": seconds}, "extra_info": {
            "inner_product": "fc7", "batch": batch, "library": library, "gflop": 0.0336 * batch,
            "weight_bytes": 64_000_000}}
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"benchmarks": [
        entry("fastconv", 0.002), entry("torch", 0.004), entry("numpy", 0.001),
        entry("fastconv", 0.008, batch=8)], "datetime": "now"}))
    report.main([str(path)])
    out = capsys.readouterr().out
    # 64 MB in 2 ms: 32 GB/s; PyTorch half as fast (2.00), numpy twice (0.50); no peer: "–".
    assert "| fc7 | 1 | 64 | 2.00 (32) | 4.00 (16) | 1.00 (64) | 2.00 | 0.50 |" in out
    assert "| fc7 | 8 | 64 | 8.00 (8) | – | – | – | – |" in out


def test_pooling_forward_and_backward_tables(tmp_path, capsys):
    def entry(kind, library, seconds):
        return {"stats": {"median": seconds}, "extra_info": {
            kind: "poolX", "method": "max", "library": library, "bytes_moved": 8_000_000}}
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"benchmarks": [
        entry("pooling", "fastconv", 0.001), entry("pooling", "torch", 0.002),
        entry("pooling", "tensorflow", 0.004),
        entry("pooling_backward", "fastconv", 0.002), entry("pooling_backward", "torch", 0.001),
    ], "datetime": "now"}))
    report.main([str(path)])
    out = capsys.readouterr().out
    forward, backward = out.split("Pooling, backward")
    # 8 MB in 1 ms: 8 GB/s; TF 4x and PyTorch 2x slower; the faster peer is PyTorch.
    assert "| poolX | max | 1 ms (8) | 4 ms (2) | 2 ms (4) | 4.00 | 2.00 | 2.00 |" in forward
    # No TensorFlow backward: its cells and geometric mean are "–".
    assert "| poolX | max | 2 ms (4) | – | 1 ms (8) | – | 0.50 | 0.50 |" in backward
    assert "| **geometric mean** | | | | | – | **0.50** | **0.50** |" in backward
