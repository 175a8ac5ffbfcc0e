"""Validate Keras convolutions against fastconv on a GPU (or the CPU), default vs full float32.

    python tools/validate_gpu.py                # GPU if the Keras backend sees one, else CPU
    python tools/validate_gpu.py --device cpu   # CPU only (what the tests run)
    python tools/validate_gpu.py --device gpu --quick

Uses whatever Keras backend is installed (KERAS_BACKEND=tensorflow | jax | torch). For each layer
it prints the max relative error (max|keras - fastconv| / max|fastconv|) at the framework's
default precision and with full float32 forced (TF32 off), and a verdict from
fastconv.testing's tolerance and diagnosis. Exit status: 0 when every layer passes with float32
forced, 1 otherwise, 2 when a GPU was asked for and none is visible.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "gpu", "all"), default="auto",
                        help="auto: the GPU if visible, else the CPU; all: CPU and GPU")
    parser.add_argument("--quick", action="store_true", help="shrunk layers (about a second)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from fastconv.cli import validation

    validation.stderr_progress("importing Keras ...")
    backend = validation.keras_backend()
    has_gpu = validation.gpu_available(backend)
    if args.device == "gpu" and not has_gpu:
        print(f"no GPU visible to Keras's {backend} backend; nothing to validate "
              "(use --device cpu)", file=sys.stderr)
        return 2
    devices = {"cpu": ["cpu:0"], "gpu": ["gpu:0"], "all": ["cpu:0"] + (["gpu:0"] if has_gpu else []),
               "auto": ["gpu:0"] if has_gpu else ["cpu:0"]}[args.device]
    if args.device == "auto" and not has_gpu:
        validation.stderr_progress(f"no GPU visible to {backend}: validating on the CPU")
    configs = validation.quick_configs() if args.quick else validation.CONFIGS
    rows = validation.validate(devices, configs, seed=args.seed,
                               progress=validation.stderr_progress)
    print(validation.format_table(rows))
    return 0 if all(not row.verdict.startswith("FAIL (float32)") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
