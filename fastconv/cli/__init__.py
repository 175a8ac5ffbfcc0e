"""``python -m fastconv`` / ``fastconv``: demo, check, bench, run, compare. Results on stdout, progress on stderr.

* ``demo``: the README's main job. An AlexNet-style conv1 (1x3x500x500 input, 96 filters 11x11,
  stride 4, ReLU) with Caffe's semantics (fastconv) against Keras's Conv2D loaded two ways: the kernel
  naively ``reshape``d and converted with ``caffe_to_keras_kernel``. Prints each port's relative
  disagreement, the output shapes and the time of fastconv against TensorFlow's convolution.
* ``check``: fastconv against Keras on this machine (CPU, and the GPU where Keras sees one), at
  the default precision and with full float32 forced.
* ``bench``: a short throughput table, fastconv against TensorFlow and PyTorch when installed.
* ``run`` and ``compare``: a whole Caffe model (``fastconv.cli.net``): run it layer by layer, or
  check a port's saved blobs against it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time

import numpy as np

from .. import __version__
from ..caffe import conv2d_caffe
from ..keras import conv2d_keras
from ..layout import caffe_to_keras_kernel, nchw_to_nhwc, nhwc_to_nchw
from . import net
from .bench_layers import BY_NAME, CLI_LAYERS


def progress(message):
    print(f"[fastconv] {message}", file=sys.stderr, flush=True)


def installed(module):
    return importlib.util.find_spec(module) is not None


def best_time(fn, repeats=5, budget_s=3.0):
    """Best wall time of ``repeats`` calls (fewer if the budget runs out), after one warm-up."""
    fn()
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return best


def best_times_interleaved(calls, repeats=5, settle_s=0.2):
    """Best wall time of each of ``calls`` (name -> function), their runs taken in turns after
    one warm-up each. The turns and a short pause before each run keep one library's thread
    pool, still spinning after its call, from being billed to the next library."""
    for fn in calls.values():
        fn()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, fn in calls.items():
            time.sleep(settle_s)
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def relative_disagreement(actual, expected):
    """``(||actual - expected|| / ||expected||, max|actual - expected| / max|expected|)``."""
    expected = np.asarray(expected, np.float64)
    difference = np.asarray(actual, np.float64) - expected
    return (float(np.linalg.norm(difference) / np.linalg.norm(expected)),
            float(np.abs(difference).max() / np.abs(expected).max()))


@contextlib.contextmanager
def native_stderr_to_log():
    """Keep TensorFlow's native log lines (absl's start-up notice, oneDNN, CUDA probing) out of
    fastconv's output. TensorFlow writes them to file descriptor 2 from C++, some before its
    logging reads TF_CPP_MIN_LOG_LEVEL, so descriptor 2 goes to a log file while a command
    runs; Python's own stderr (fastconv's progress, warnings, tracebacks) keeps the terminal.
    The log is kept, and named, only when something was written to it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handle, log_path = tempfile.mkstemp(prefix="fastconv-native-", suffix=".log")
    try:
        sys.stderr.flush()
        saved_fd2 = os.dup(2)
    except BaseException:                            # no descriptor 2 to save: leave no log
        os.close(handle)
        os.remove(log_path)
        raise
    python_stderr = sys.stderr
    try:
        python_stderr_is_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):   # already redirected (e.g. under pytest)
        python_stderr_is_fd2 = False
    if python_stderr_is_fd2:
        sys.stderr = open(os.dup(saved_fd2), "w", buffering=1, errors="backslashreplace")
    os.dup2(handle, 2)
    os.close(handle)
    try:
        yield
    finally:
        os.dup2(saved_fd2, 2)
        os.close(saved_fd2)
        if python_stderr_is_fd2:
            sys.stderr.close()
            sys.stderr = python_stderr
        if os.path.getsize(log_path):
            progress(f"the frameworks' own log lines (TensorFlow's C++ logging) are in {log_path}")
        else:
            os.remove(log_path)


def _import_tensorflow():
    progress("importing TensorFlow/Keras (takes a few seconds) ...")
    import keras
    import tensorflow as tf

    return tf, keras


# --- demo ------------------------------------------------------------------------------------

def demo(args):
    rng = np.random.default_rng(args.seed)
    size = args.size
    x = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    w = rng.standard_normal((96, 3, 11, 11)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    print(f"AlexNet-style conv1: 1x3x{size}x{size} input (NCHW), 96 filters 11x11, stride 4, "
          "+ ReLU; random normal data.")
    progress("Caffe semantics with fastconv.conv2d_caffe ...")
    reference = conv2d_caffe(x, w, b, stride=4)
    print(f"Caffe (fastconv.conv2d_caffe): output {reference.shape} NCHW")

    naive, proper = w.reshape(11, 11, 3, 96), caffe_to_keras_kernel(w)
    x_nhwc = nchw_to_nhwc(x)
    peer = None
    if installed("tensorflow") and installed("keras"):
        tf, keras = _import_tensorflow()
        peer = "TensorFlow"

        def keras_port(kernel):
            layer = keras.layers.Conv2D(96, 11, strides=4)   # ReLU applied below, to see both
            layer.build((None, None, None, 3))
            layer.set_weights([kernel, b])
            return nhwc_to_nchw(keras.ops.convert_to_numpy(layer(x_nhwc)))
        progress("Keras Conv2D, kernel reshaped and kernel transposed ...")
        ports = {"reshape": keras_port(naive), "caffe_to_keras_kernel": keras_port(proper)}
        label = "Keras Conv2D"
    else:
        print("note: TensorFlow/Keras is not installed: the two Keras ports below are computed "
              "with fastconv.conv2d_keras (Keras's semantics without Keras).")
        ports = {name: nhwc_to_nchw(conv2d_keras(x_nhwc, kernel, b, strides=4))
                 for name, kernel in (("reshape", naive), ("caffe_to_keras_kernel", proper))}
        label = "Keras semantics (fastconv)"
    print("Relative disagreement with Caffe, ||y - caffe|| / ||caffe|| (max|y - caffe| / max|caffe|):")
    for name, y in ports.items():
        conv_norm, conv_max = relative_disagreement(y, reference)
        relu_norm, relu_max = relative_disagreement(np.maximum(y, 0), np.maximum(reference, 0))
        verdict = "WRONG" if conv_norm > 1e-3 else "agrees"
        print(f"  {label}, kernel via {name + ':':23s} output {y.shape}: conv {conv_norm:8.2e} "
              f"({conv_max:8.2e}), after ReLU {relu_norm:8.2e} ({relu_max:8.2e})  {verdict}")

    progress(f"timing (best of {args.repeats}) ...")
    calls = {"fastconv": lambda: conv2d_caffe(x, w, b, stride=4)}
    if peer == "TensorFlow":
        x_tf, k_tf, b_tf = tf.constant(x_nhwc), tf.constant(proper), tf.constant(b)
        calls["TensorFlow tf.nn.conv2d"] = lambda: tf.nn.bias_add(
            tf.nn.conv2d(x_tf, k_tf, strides=4, padding="VALID"), b_tf).numpy()
    elif installed("torch"):
        progress("importing PyTorch ...")
        import torch

        x_t, w_t, b_t = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

        def torch_conv():
            with torch.no_grad():
                return torch.nn.functional.conv2d(x_t, w_t, b_t, stride=4)
        calls["PyTorch conv2d"] = torch_conv
    else:
        print("note: neither TensorFlow nor PyTorch is installed: no peer to time against.")
    times = best_times_interleaved(calls, args.repeats)
    print(f"Time on this machine, convolution + bias, best of {args.repeats} taken in turns, "
          "same process:")
    for name, seconds in times.items():
        ratio = "" if name == "fastconv" else f"  (fastconv is {seconds / times['fastconv']:.2f}x its speed)"
        print(f"  {name:26s} {seconds * 1e3:8.2f} ms{ratio}")
    return 0


# --- check -----------------------------------------------------------------------------------

def check(args):
    if not installed("keras"):
        print("Keras is not installed: nothing to check against (pip install fastconv[keras]).")
        return 0
    from . import validation

    progress("importing Keras ...")
    backend = validation.keras_backend()
    devices = ["cpu:0"] + (["gpu:0"] if validation.gpu_available(backend) else [])
    if len(devices) == 1:
        progress(f"no GPU visible to Keras's {backend} backend: CPU only")
    configs = validation.quick_configs() if args.quick else validation.CONFIGS
    rows = validation.validate(devices, configs, progress=progress)
    print(validation.format_table(rows))
    return 0 if all(not row.verdict.startswith("FAIL") for row in rows) else 1


# --- bench -----------------------------------------------------------------------------------



def bench(args):
    rng = np.random.default_rng(0)
    peers = {}
    if installed("tensorflow"):
        tf, _ = _import_tensorflow()

        def tf_conv(x, w, layer):
            pad = layer.pad
            x_tf = tf.constant(nchw_to_nhwc(np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))))
            k_tf = tf.constant(caffe_to_keras_kernel(w))
            return lambda: tf.nn.conv2d(x_tf, k_tf, strides=layer.stride, padding="VALID",
                                        dilations=layer.dilation).numpy()
        peers["TensorFlow"] = tf_conv
    if installed("torch"):
        progress("importing PyTorch ...")
        import torch

        def torch_conv(x, w, layer):
            x_t, w_t = torch.from_numpy(x), torch.from_numpy(w)

            def run():
                with torch.no_grad():
                    return torch.nn.functional.conv2d(x_t, w_t, stride=layer.stride, padding=layer.pad,
                                                      dilation=layer.dilation, groups=layer.group)
            return run
        peers["PyTorch"] = torch_conv
    header = ["layer", "fastconv GFLOP/s"] + [f"{p} GFLOP/s" for p in peers]
    rows = []
    for layer in (BY_NAME[name] for name in CLI_LAYERS):
        progress(f"bench {layer.name} ...")
        x = rng.standard_normal(layer.x_shape).astype(np.float32)
        w = rng.standard_normal(layer.w_shape).astype(np.float32)
        row = [layer.name, layer.flops / best_time(
            lambda: conv2d_caffe(x, w, stride=layer.stride, pad=layer.pad,
                                 dilation=layer.dilation, group=layer.group),
            args.repeats, budget_s=1.0) / 1e9]
        for make in peers.values():
            row.append(layer.flops / best_time(make(x, w, layer), args.repeats, budget_s=1.0) / 1e9)
        rows.append(row)
    print(f"Throughput, float32, batch 1, best of {args.repeats} (higher is better):")
    widths = [max(len(header[0]), *(len(r[0]) for r in rows))] + [len(h) for h in header[1:]]
    print("  ".join(h.ljust(wd) for h, wd in zip(header, widths)))
    for row in rows:
        print("  ".join([row[0].ljust(widths[0])] + [f"{v:{wd}.1f}" for v, wd in zip(row[1:], widths[1:])]))
    if not peers:
        print("note: neither TensorFlow nor PyTorch is installed: fastconv alone.")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastconv", description="Caffe's exact layers and whole "
                                     "Caffe models, and checks of ports against them.")
    parser.add_argument("--version", action="version", version=f"fastconv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    p_demo = commands.add_parser("demo", help="AlexNet-style conv1: kernel reshape vs transpose, and timing")
    p_demo.add_argument("--size", type=int, default=500, help="input height and width (500)")
    p_demo.add_argument("--repeats", type=int, default=5)
    p_demo.add_argument("--seed", type=int, default=0)
    p_check = commands.add_parser("check", help="fastconv against Keras, CPU and GPU where present")
    p_check.add_argument("--quick", action="store_true", help="shrunk layers")
    p_bench = commands.add_parser("bench", help="throughput against TensorFlow/PyTorch")
    p_bench.add_argument("--repeats", type=int, default=5)
    net.add_parsers(commands)
    args = parser.parse_args(argv)
    with native_stderr_to_log():
        return {"demo": demo, "check": check, "bench": bench, "run": net.run,
                "compare": net.compare}[args.command](args)
