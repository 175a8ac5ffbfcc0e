#!/usr/bin/env bash
# Build fastconv's C core with AddressSanitizer and UndefinedBehaviorSanitizer in a scratch copy
# of the tree, and run the tests that drive the C code (every engine the CPU has, every layer,
# the thread tests, the real-Caffe golden data, whole nets, the oracle) under them. Any out-of-bounds access, use after
# free or undefined arithmetic stops the run with a report.
#
#     tools/sanitized_tests.sh [extra pytest args]      # about a minute on two cores
#
# Needs gcc with libasan/libubsan and the test dependencies installed (./run.sh test once).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar -cf - --) | tar -xf - -C "$scratch"
cd "$scratch"
FASTCONV_SANITIZE=1 python setup.py build_ext --inplace -q >build.log 2>&1 || { cat build.log; exit 1; }
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
python -m pytest -q -p no:cacheprovider "$@" tests/semantics tests/engine tests/net tests/oracle
