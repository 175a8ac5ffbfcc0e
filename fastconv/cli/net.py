"""``fastconv run`` and ``fastconv compare``: whole Caffe nets from the command line.

* ``run deploy.prototxt weights.caffemodel [--input [NAME=]x.npy | --random] [--dtype float64]
  [--save blobs.npz]``: runs the net layer by layer and prints a table (layer, type, top
  shapes, time); ``--save`` writes every blob after the forward (what pycaffe's ``net.blobs``
  holds) to an .npz, the file ``compare`` and a port's own tests can read.
* ``compare deploy.prototxt weights.caffemodel port.npz [--layout keras]``: checks a port's
  blobs (an .npz mapping Caffe's blob names to the port's arrays) with
  :func:`fastconv.testing.net.check_net` and prints the first diverging layer with its diagnosis;
  exit status 1 on a mismatch.

Results go to stdout, progress to stderr. :func:`add_parsers` adds both subcommands to the
``fastconv`` parser; :func:`run` and :func:`compare` take the parsed arguments and return the
exit status.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from ..net import Net
from ..testing.net import LAYOUTS, check_net

PROGRESS_EVERY_S = 1.0   # a progress line at most this often, so long nets show they move


def add_parsers(commands):
    """Add the ``run`` and ``compare`` subparsers to ``commands`` (argparse subparsers)."""
    p_run = commands.add_parser("run", help="run a Caffe net layer by layer: shapes and times")
    _add_net_files(p_run)
    source = p_run.add_mutually_exclusive_group()
    source.add_argument("--input", action="append", metavar="[NAME=]FILE.npy",
                        help="an input blob (NCHW); NAME= is needed when the net has several")
    source.add_argument("--random", action="store_true",
                        help="standard normal inputs of the net's declared shapes (the default)")
    p_run.add_argument("--seed", type=int, default=0, help="seed of --random (0)")
    p_run.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="precision of the whole net (float32, as Caffe)")
    p_run.add_argument("--save", metavar="BLOBS.npz", help="write every blob after the forward")
    p_compare = commands.add_parser(
        "compare", help="check a port's blobs (port.npz) against the Caffe net, layer by layer")
    _add_net_files(p_compare)
    p_compare.add_argument("port", help=".npz mapping Caffe's blob names to the port's arrays")
    p_compare.add_argument("--layout", choices=LAYOUTS, default="caffe",
                           help="keras: the port's 4-D arrays are NHWC (default caffe: NCHW)")
    p_compare.add_argument("--input", action="append", metavar="[NAME=]FILE.npy",
                           help="the inputs the port ran on, when port.npz does not hold them")


def _add_net_files(parser):
    parser.add_argument("prototxt", help="deploy.prototxt (text NetParameter)")
    parser.add_argument("weights", help="weights.caffemodel (binary NetParameter)")


def _load_net(args, dtype=np.float32):
    """The Net of ``args.prototxt`` and ``args.weights``; a file the reader refuses or a missing
    protobuf ends the command with the reader's message instead of a traceback."""
    _progress(f"loading {args.prototxt} and {args.weights} ...")
    try:
        return Net(args.prototxt, args.weights, dtype=dtype)
    except (ImportError, OSError, ValueError) as error:
        raise SystemExit(f"fastconv {args.command}: {error}") from None


def _progress(message):
    print(f"[fastconv] {message}", file=sys.stderr, flush=True)


def _load_inputs(specs, net):
    """``--input [NAME=]FILE.npy`` values -> {input name: array}."""
    inputs = {}
    for spec in specs:
        name, sep, path = spec.rpartition("=")
        if not sep:
            if len(net.inputs) != 1:
                raise SystemExit(f"--input {spec}: the net has inputs {list(net.inputs)}; "
                                 "write --input NAME=FILE.npy")
            name = net.inputs[0]
        if name not in net.inputs:
            raise SystemExit(f"--input {spec}: {name!r} is not an input of the net "
                             f"(inputs: {list(net.inputs)})")
        inputs[name] = np.load(path)
    return inputs


def _random_inputs(net, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(tuple(net.blobs[name].shape)) for name in net.inputs}


def _shape_text(shape):
    return "x".join(str(size) for size in shape)


def run(args):
    """``fastconv run``: forward the net one layer at a time, print the per-layer table."""
    net = _load_net(args, np.dtype(args.dtype))
    if args.input:
        inputs = _load_inputs(args.input, net)
        missing = [name for name in net.inputs if name not in inputs]
        if missing:
            raise SystemExit(f"--input gives no value for the net's input(s) {missing}")
        origin = ", ".join(args.input)
    else:
        inputs = _random_inputs(net, args.seed)
        origin = f"standard normal, seed {args.seed}"
    for name, value in inputs.items():
        if tuple(net.blobs[name].shape) != value.shape:
            net.blobs[name].reshape(*value.shape)
    net.reshape()
    print(f"{args.prototxt}: {len(net.layers)} layers, {args.dtype}; inputs ({origin}): "
          + ", ".join(f"{name} {_shape_text(v.shape)}" for name, v in inputs.items()))
    names = list(net._layer_names)
    rows = []
    last_report = time.perf_counter()
    total = 0.0
    for position, name in enumerate(names):
        start = time.perf_counter()
        net.forward(start=name, end=name, **(inputs if position == 0 else {}))
        seconds = time.perf_counter() - start
        total += seconds
        tops = ", ".join(_shape_text(net.blobs[top].shape) for top in net.top_names[name])
        rows.append((name, net.layers[position].type, tops, seconds))
        if time.perf_counter() - last_report > PROGRESS_EVERY_S:
            _progress(f"layer {position + 1}/{len(names)}: {name}")
            last_report = time.perf_counter()
    widths = [max(len(header), *(len(row[i]) for row in rows)) if rows else len(header)
              for i, header in enumerate(("layer", "type", "top shape"))]
    print("  ".join(h.ljust(w) for h, w in zip(("layer", "type", "top shape"), widths))
          + "  time (ms)")
    for name, kind, tops, seconds in rows:
        print("  ".join(text.ljust(w) for text, w in zip((name, kind, tops), widths))
              + f"  {seconds * 1e3:9.3f}")
    print(f"total {total * 1e3:.3f} ms")
    if args.save:
        np.savez(args.save, **{name: np.array(blob.data) for name, blob in net.blobs.items()})
        print(f"saved {len(net.blobs)} blobs to {args.save}")
    return 0


def compare(args):
    """``fastconv compare``: the first diverging layer of a port, with its diagnosis."""
    net = _load_net(args)
    with np.load(args.port) as archive:
        port = {name: archive[name] for name in archive.files}
    inputs = _load_inputs(args.input, net) if args.input else None
    missing = [name for name in net.inputs if name not in (inputs or port)]
    if missing:
        raise SystemExit(f"{args.port} does not hold the net's input(s) {missing}: give the "
                         "arrays the port ran on with --input NAME=FILE.npy")
    _progress("running the net in float32 and float64 and comparing ...")
    try:
        result = check_net(port, net, inputs, layout=args.layout)
    except (TypeError, ValueError) as error:   # names or shapes that do not fit the net
        raise SystemExit(f"fastconv compare: {args.port}: {error}") from None
    print(result)
    return 0 if result else 1
