"""Runs inside the bullseye chroot (Python 3.9, Debian's python3-caffe): real Caffe 1.0 on CPU.

Invoked by generate.py as ``chroot ROOT env GLOG_minloglevel=2 python3 - JOBDIR < caffe_worker.py``.
JOBDIR (a path inside the chroot) holds ``job.json``, a list of cases, and ``inputs.npz`` with
``<i>/x``, ``<i>/w``, ``<i>/b``, ``<i>/dy`` for case ``i``. Each case's net is its prototxt text:
an Input layer ``data`` and the layer under test named ``layer`` with top ``out`` (optionally an
in-place ReLU on ``out``). The worker runs forward, sets ``out``'s diff to dy, clears the
parameter diffs (Caffe accumulates them across backward passes) and runs backward, then writes
``outputs.npz`` with ``<i>/y``, ``<i>/dx``, ``<i>/dw``, ``<i>/db`` (float32, as pycaffe
computes). Data crosses the chroot boundary only as .npy inside .npz, a format stable across the
chroot's numpy 1.19 and the host's numpy 2.x.

A case whose geometry Caffe refuses kills this process (SIGFPE, or SIGABRT after a failed CHECK);
generate.py runs those one per process and records what happened; for them only ``x`` is given,
the parameters keep Caffe's fillers, and backward runs (with a top diff of ones) only when the
case says ``"backward": true``.
"""
import json
import os
import sys

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402


def run_case(prototxt_path, arrays, backward):
    caffe.set_mode_cpu()
    net = caffe.Net(prototxt_path, caffe.TEST)
    net.blobs["data"].data[...] = arrays["x"]
    params = net.params["layer"] if "layer" in net.params else []
    for blob, key in zip(params, ("w", "b")):
        if key in arrays:
            blob.data[...] = arrays[key]
    net.forward()
    out = {"y": net.blobs["out"].data.copy()}
    if not backward:
        return out
    for blob in params:
        blob.diff[...] = 0
    net.blobs["data"].diff[...] = 0
    dy = arrays.get("dy", np.ones_like(out["y"]))
    if dy.shape != out["y"].shape:
        raise ValueError("dy has shape %s, Caffe's top %s" % (dy.shape, out["y"].shape))
    net.blobs["out"].diff[...] = dy
    net.backward()
    out["dx"] = net.blobs["data"].diff.copy()
    if len(params) > 0:
        out["dw"] = params[0].diff.copy()
    if len(params) > 1:
        out["db"] = params[1].diff.copy()
    return out


def main(job_dir):
    with open(os.path.join(job_dir, "job.json")) as f:
        cases = json.load(f)
    inputs = np.load(os.path.join(job_dir, "inputs.npz"))
    results = {}
    for i, case in enumerate(cases):
        prototxt_path = os.path.join(job_dir, "case%d.prototxt" % i)
        with open(prototxt_path, "w") as f:
            f.write(case["prototxt"])
        arrays = {key.split("/", 1)[1]: inputs[key] for key in inputs.files
                  if key.split("/", 1)[0] == str(i)}
        backward = case.get("backward", "dy" in arrays)
        for key, value in run_case(prototxt_path, arrays, backward).items():
            results["%d/%s" % (i, key)] = value
    np.savez(os.path.join(job_dir, "outputs.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1])
