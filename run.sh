#!/usr/bin/env bash
# fastconv's two commands for a new user (and CI):
#   ./run.sh          set up .venv, build fastconv, run the main job (Caffe vs Keras on an
#                     AlexNet-style conv1: kernel reshaped vs transposed, and timing)
#   ./run.sh test     set up .venv, build fastconv, run the whole test suite
#   ./run.sh bench    set up .venv, build fastconv, run the benchmark suite and print the table
# Needs only Python >= 3.9 with pip and venv, and a C compiler. Idempotent: a second run reuses
# .venv and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
venv=${FASTCONV_VENV:-.venv}

if [ ! -x "$venv/bin/python" ]; then
    echo "[fastconv] creating $venv" >&2
    "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

# pip's and the build's chatter goes to a log, shown only when a step fails.
log="$venv/install.log"
quietly() {
    "$@" >>"$log" 2>&1 || { cat "$log" >&2; echo "[fastconv] failed: $*" >&2; exit 1; }
}

stamp="$venv/.fastconv-deps"
: >"$log"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[fastconv] installing dependencies (TensorFlow is large: a few minutes the first time)" >&2
    quietly python -m pip install --upgrade pip
    quietly python -m pip install "setuptools>=64" wheel "Cython>=3.0" "numpy>=1.23"
    quietly python -m pip install -e ".[test,keras,bench,caffe]"
    touch "$stamp"
else
    # Rebuild the extension when C or Cython sources changed.
    quietly python -m pip install --no-build-isolation --no-deps -e .
fi

# PyTorch is an optional second peer (tests' extra reference, benchmarks' second column). Only a
# CPU wheel already on this machine's pip find-links is taken: PyPI's default torch is a
# several-GB CUDA build, not worth downloading for a reference.
install_torch_peer() {
    python -c "import torch" 2>/dev/null && return 0
    if python -m pip install --no-index --no-deps "torch==2.13.0" >>"$log" 2>&1; then
        quietly python -m pip install "torch==2.13.0"   # its small pure-Python dependencies
    else
        echo "[fastconv] no local PyTorch CPU wheel: PyTorch-peer checks will be skipped" >&2
    fi
}

case "${1:-demo}" in
    demo)
        shift || true
        python -m fastconv demo "$@"
        ;;
    test)
        shift
        install_torch_peer
        python -m pytest tests "$@"
        ;;
    bench)
        shift
        install_torch_peer
        mkdir -p .benchmarks
        python -m pytest benches --benchmark-json=.benchmarks/latest.json "$@"
        # The FMA peak of the kernel that ran, measured now, for the large layers' share of it.
        peak_args=()
        if gcc -O2 -fopenmp tools/fma_peak.c -o .benchmarks/fma_peak 2>/dev/null; then
            kernel=$(python -c "import fastconv; print(fastconv.cpu_info()['kernel'])")
            peak=$(.benchmarks/fma_peak "$(python -c "import fastconv; print(fastconv.get_num_threads())")" |
                   awk -v kernel="$kernel:" '$1 == kernel {print $2}')
            [ -n "$peak" ] && peak_args=(--peak-gflops "$peak")
        fi
        python benches/report.py "${peak_args[@]}" .benchmarks/latest.json
        ;;
    *)
        echo "usage: ./run.sh [demo|test|bench] [extra args]" >&2
        exit 2
        ;;
esac
