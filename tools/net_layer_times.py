"""Where a whole net's forward time goes, per layer type (a developer tool).

    python tools/net_layer_times.py alexnet 8 [--forwards 10]

Builds the benchmark's net (benches/test_bench_nets.py: full-width AlexNet or ResNet-50, its
generated .caffemodel), runs it once, then times ``--forwards`` forwards with each layer type's
``compute_into`` wrapped by a clock, and prints the mean forward time and each type's share.
Wall-clock times on this machine only, no peer: it says where to look, not how fast fastconv
is against anyone (benches/ does that). It reaches into the Net's layer classes.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benches"))
import test_bench_nets as nets  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net", choices=sorted(nets.NETS))
    parser.add_argument("batch", type=int, choices=nets.BATCHES)
    parser.add_argument("--forwards", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        prototxts, caffemodel, _ = nets.net_files(directory, args.net)
        net = nets.net_module.Net(prototxts[args.batch], caffemodel, nets.net_module.TEST,
                                  dtype=np.float32)
    x = nets.inputs(args.net, args.batch)
    net.forward(data=x)
    seconds = collections.defaultdict(float)
    for kind in {type(layer) for layer in net.layers}:
        def timed(self, *arguments, _compute=kind.compute_into):
            start = time.perf_counter()
            result = _compute(self, *arguments)
            seconds[type(self).__name__] += time.perf_counter() - start
            return result
        kind.compute_into = timed
    start = time.perf_counter()
    for _ in range(args.forwards):
        net.forward(data=x)
    total = (time.perf_counter() - start) / args.forwards
    print(f"{args.net} batch {args.batch}: {total * 1e3:.1f} ms per forward")
    for name, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"  {name:24s} {spent / args.forwards * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
