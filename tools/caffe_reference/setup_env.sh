#!/bin/sh
# Create (or finish creating) a Debian bullseye chroot holding real Caffe 1.0 (CPU, float32 via
# pycaffe, and Net<double> through its C++ API), the ground truth for tests/data/caffe_golden
# and tests/data/caffe_nets. Run as root. Idempotent: each step is
# skipped when its result is already there, so rerunning after an interruption resumes.
#
#   sh tools/caffe_reference/setup_env.sh [DIR]     (default $FASTCONV_CAFFE_ROOT or
#                                                    /opt/fastconv-caffe-bullseye)
#
# Why bullseye: it is the last Debian release whose main archive has python3-caffe (Caffe 1.0,
# Python 3.9, reference BLAS); bookworm dropped it.
set -eu

ROOT="${1:-${FASTCONV_CAFFE_ROOT:-/opt/fastconv-caffe-bullseye}}"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup_env.sh: must run as root (debootstrap, chroot, mount)" >&2
    exit 1
fi

# Use the mirror the host's apt already trusts (deb822 or one-line sources), else Debian's.
host_mirror() {
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        url=$(grep -hoE 'https?://[^ ]*/debian/?( |$)' "$f" | grep -v security | head -n1 | tr -d ' ')
        if [ -n "$url" ]; then
            echo "${url%/}"
            return
        fi
    done
    echo "http://deb.debian.org/debian"
}
MIRROR="${FASTCONV_DEBIAN_MIRROR:-$(host_mirror)}"

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "== installing debootstrap on the host"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap
fi

# debootstrap leaves /debootstrap behind until it has finished, so its absence together with a
# working apt means the base system is complete.
if [ ! -x "$ROOT/usr/bin/apt-get" ] || [ -d "$ROOT/debootstrap" ]; then
    echo "== debootstrap bullseye into $ROOT from $MIRROR"
    mkdir -p "$ROOT"
    debootstrap --variant=minbase bullseye "$ROOT" "$MIRROR"
fi

if ! mountpoint -q "$ROOT/proc"; then
    echo "== mounting /proc in $ROOT"
    mount -t proc proc "$ROOT/proc"
fi

# Name resolution inside the chroot for apt.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

if ! chroot "$ROOT" env GLOG_minloglevel=2 python3 -c 'import caffe, numpy' >/dev/null 2>&1; then
    echo "== installing python3-caffe python3-numpy in the chroot"
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends python3-caffe python3-numpy
fi

# caffe_double.cpp (generate_nets.py's float64 runs) links against libcaffe: a compiler, Caffe's
# headers and the headers they include. libblas-dev is the reference BLAS pycaffe already uses
# (installing OpenBLAS instead would change every recorded float32 result).
if ! chroot "$ROOT" sh -c 'command -v g++ && command -v protoc && test -f /usr/include/caffe/net.hpp && test -f /usr/include/x86_64-linux-gnu/cblas.h' >/dev/null 2>&1; then
    echo "== installing the C++ toolchain and Caffe's headers in the chroot (for Net<double>)"
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends g++ libcaffe-dev libboost-dev \
        libgoogle-glog-dev libgflags-dev libprotobuf-dev libblas-dev protobuf-compiler
fi

chroot "$ROOT" env GLOG_minloglevel=2 python3 -c \
    'import caffe, numpy; print("caffe", caffe.__version__, "numpy", numpy.__version__, "ready")'
echo "FASTCONV_CAFFE_ROOT=$ROOT"
