#!/usr/bin/env python3
"""Write tests/data/caffe_golden/ from real Caffe 1.0 running in the bullseye chroot.

    sudo sh tools/caffe_reference/setup_env.sh          # once: the chroot with python3-caffe
    sudo python3 tools/caffe_reference/generate.py      # rewrite the golden data
    sudo python3 tools/caffe_reference/generate.py --check   # regenerate elsewhere, compare bytes

Every expected value comes from Caffe: the host only draws the inputs (seeded, so a rerun is
byte-identical), renders each case's prototxt, and packs Caffe's answers. Each family is one
``.npz`` whose keys are ``<case>/<field>``:

    x, w, b, dy        inputs (float32; w and b absent where the layer has none)
    y, dx, dw, db      Caffe's forward output and gradients (dw/db absent where not applicable)
    prototxt           the net Caffe ran (Input layer ``data`` + layer ``layer``, top ``out``)
    params             JSON: the layer's parameters normalised the way Caffe reads them
    y_rows, y_cols ... when present, y/dx hold only those rows/columns (the seed layer, for size)
    relu_mask          with a ReLU after the layer: np.packbits(Caffe's output > 0), full size

The geometries Caffe refuses (or accepts although fastconv must not) are run one process each
and recorded in ``refused.json`` with the signal and the fatal log line.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORKER = HERE / "caffe_worker.py"
DATA_DIR = HERE.parent.parent / "tests" / "data" / "caffe_golden"
DEFAULT_ROOT = "/opt/fastconv-caffe-bullseye"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the archives do not depend on when they were made


def caffe_root():
    return os.environ.get("FASTCONV_CAFFE_ROOT", DEFAULT_ROOT)


def chroot_ready(root):
    return Path(root, "usr/lib/python3/dist-packages/caffe").is_dir()


# ---------------------------------------------------------------------------------------------
# Cases: a layer type, an input shape and the layer's proto fields in prototxt order (repeated
# fields such as kernel_size appear once per value, exactly as they will be written).


def case(name, layer, input_shape, fields, *, relu=False, x_kind="normal", dy_kind="normal",
         keep_every=None):
    return {"name": name, "layer": layer, "input_shape": list(input_shape),
            "fields": [list(f) for f in fields], "relu": relu, "x_kind": x_kind,
            "dy_kind": dy_kind, "keep_every": keep_every}


def _field_text(key, value):
    if isinstance(value, bool):
        return f"{key}: {'true' if value else 'false'}"
    return f"{key}: {value}"  # ints, and enums such as MAX / AVE


def prototxt(spec):
    dims = " ".join(f"dim: {d}" for d in spec["input_shape"])
    param_block = {"Convolution": "convolution_param", "Deconvolution": "convolution_param",
                   "Pooling": "pooling_param"}[spec["layer"]]
    fields = " ".join(_field_text(k, v) for k, v in spec["fields"])
    text = (
        'name: "golden"\n'
        "force_backward: true\n"
        f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}\n'
        f'layer {{ name: "layer" type: "{spec["layer"]}" bottom: "data" top: "out"\n'
        f"  {param_block} {{ {fields} }} }}\n"
    )
    if spec["relu"]:
        text += 'layer { name: "relu" type: "ReLU" bottom: "out" top: "out" }\n'
    return text


def _values(fields, key):
    return [v for k, v in fields if k == key]


def _per_axis(fields, name, plural, default, naxes):
    """How Caffe fills one spatial parameter: the ``_h``/``_w`` pair wins (an unset one reads
    as the proto default 0), else the repeated field (one value applies to every axis)."""
    h, w = _values(fields, name + "_h"), _values(fields, name + "_w")
    if h or w:
        return [h[0] if h else 0, w[0] if w else 0]
    values = _values(fields, plural)
    if not values:
        return [default] * naxes
    return values * naxes if len(values) == 1 else values


def normalise(spec):
    """The case's parameters as fastconv takes them, plus Caffe's own names for 2-D layers."""
    fields, shape = spec["fields"], spec["input_shape"]
    naxes = len(shape) - 2
    one = lambda key, default: (_values(fields, key) or [default])[0]  # noqa: E731
    params = {"layer": spec["layer"], "input_shape": shape, "relu": spec["relu"]}
    if spec["layer"] == "Pooling":
        params["pool"] = one("pool", "MAX")
        params["global_pooling"] = one("global_pooling", False)
        if params["global_pooling"]:
            params["kernel"] = list(shape[2:])
        else:
            params["kernel"] = _per_axis(fields, "kernel", "kernel_size", 0, naxes)
        params["stride"] = _per_axis(fields, "stride", "stride", 1, naxes)
        params["pad"] = _per_axis(fields, "pad", "pad", 0, naxes)
        names = ("kernel", "stride", "pad")
    else:
        params["num_output"] = one("num_output", 0)
        params["group"] = one("group", 1)
        params["bias_term"] = one("bias_term", True)
        params["kernel"] = _per_axis(fields, "kernel", "kernel_size", 0, naxes)
        params["stride"] = _per_axis(fields, "stride", "stride", 1, naxes)
        params["pad"] = _per_axis(fields, "pad", "pad", 0, naxes)
        params["dilation"] = _per_axis(fields, "dilation", "dilation", 1, naxes)
        names = ("kernel", "stride", "pad", "dilation")
    if naxes == 2:
        for name in names:
            params[name + "_h"], params[name + "_w"] = params[name]
    return params


def expected_output_shape(params):
    """Caffe's output-size rules as read in its sources; Caffe's actual output shape is checked
    against this, so a wrong reading stops the generator instead of shaping dy wrongly."""
    shape = params["input_shape"]
    n, c, spatial = shape[0], shape[1], shape[2:]
    out = []
    if params["layer"] == "Pooling":
        padded = any(params["pad"])  # Caffe clips every axis once any axis is padded
        for size, k, s, p in zip(spatial, params["kernel"], params["stride"], params["pad"]):
            o = math.ceil((size + 2 * p - k) / s) + 1
            if padded and (o - 1) * s >= size + p:
                o -= 1
            out.append(o)
        return [n, c, *out]
    for size, k, s, p, d in zip(spatial, params["kernel"], params["stride"], params["pad"],
                                params["dilation"]):
        extent = d * (k - 1) + 1
        if params["layer"] == "Convolution":
            out.append(int((size + 2 * p - extent) / s) + 1)  # C division truncates toward 0
        else:
            out.append(s * (size - 1) + extent - 2 * p)
    return [n, params["num_output"], *out]


def parameter_shapes(params):
    if params["layer"] == "Pooling":
        return None, None
    c, o, g, k = params["input_shape"][1], params["num_output"], params["group"], params["kernel"]
    if params["layer"] == "Convolution":
        w = (o, c // g, *k)
    else:
        w = (c, o // g, *k)
    return w, (o,) if params["bias_term"] else None


def _draw(rng, kind, shape):
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":  # few distinct integers: MAX pooling windows hold several maxima
        return rng.integers(0, 3, shape).astype(np.float32)
    if kind == "negative_ties":  # all below the zero padding: MAX must ignore the padding
        return rng.integers(-3, 0, shape).astype(np.float32)
    if kind == "image":  # 6-bit pixel-like values, exact in float32 and compressible
        return (rng.integers(-32, 32, shape) / 32).astype(np.float32)
    if kind == "quarters":  # 9 levels: compressible gradients for the large seed layer
        return (rng.integers(-4, 5, shape) / 4).astype(np.float32)
    raise ValueError(kind)


def inputs_for(spec, params):
    rng = np.random.default_rng(zlib.crc32(spec["name"].encode()))
    arrays = {"x": _draw(rng, spec["x_kind"], spec["input_shape"])}
    w_shape, b_shape = parameter_shapes(params)
    if w_shape is not None:
        fan_in = int(np.prod(w_shape[1:]))
        arrays["w"] = (rng.standard_normal(w_shape) / math.sqrt(fan_in)).astype(np.float32)
    if b_shape is not None:
        arrays["b"] = rng.standard_normal(b_shape).astype(np.float32)
    arrays["dy"] = _draw(rng, spec["dy_kind"], expected_output_shape(params))
    return arrays


# ---------------------------------------------------------------------------------------------
# Talking to the chroot


def _run_worker(root, cases, arrays_per_case, timeout):
    """Run caffe_worker.py inside the chroot on a list of cases; returns (process, outputs)."""
    job_dir = Path(tempfile.mkdtemp(prefix="fastconv-caffe-", dir=Path(root, "tmp")))
    try:
        (job_dir / "job.json").write_text(json.dumps(cases))
        flat = {f"{i}/{key}": value for i, arrays in enumerate(arrays_per_case)
                for key, value in arrays.items()}
        np.savez(job_dir / "inputs.npz", **flat)
        with open(WORKER, "rb") as script:
            proc = subprocess.run(
                ["chroot", str(root), "env", "GLOG_minloglevel=2", "OMP_NUM_THREADS=1",
                 "python3", "-", "/tmp/" + job_dir.name],
                stdin=script, capture_output=True, text=True, timeout=timeout)
        outputs = [dict() for _ in cases]
        if proc.returncode == 0:
            with np.load(job_dir / "outputs.npz") as data:
                for key in data.files:
                    i, field = key.split("/", 1)
                    outputs[int(i)][field] = data[key]
        return proc, outputs
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def run_caffe(cases, arrays_per_case, root=None, timeout=1800):
    """Forward + backward in real Caffe for each (prototxt, inputs); a list of output dicts.

    ``cases`` are dicts with a ``prototxt`` key. Used by the generator and by the live tests."""
    root = root or caffe_root()
    proc, outputs = _run_worker(root, [{"prototxt": c["prototxt"]} for c in cases],
                                arrays_per_case, timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"Caffe worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return outputs


def caffe_verdict(prototxt_text, x, root=None):
    """What Caffe does with one net, each pass alone in its process: set-up and forward, then
    (if those survive) forward and backward with a top diff of ones. A pass is accepted (with
    the output shape and any non-finite or -FLT_MAX outputs counted) or killed by a signal
    (with glog's fatal message, stripped of time and pid, or the C library's last words)."""
    root = root or caffe_root()
    verdict = {"forward": _one_pass(prototxt_text, x, False, root)}
    if verdict["forward"]["outcome"] == "accepted":
        verdict["backward"] = _one_pass(prototxt_text, x, True, root)
    return verdict


def _one_pass(prototxt_text, x, backward, root):
    proc, outputs = _run_worker(root, [{"prototxt": prototxt_text, "backward": backward}],
                                [{"x": x}], timeout=120)
    if proc.returncode == 0:
        y = outputs[0]["y"]
        return {"outcome": "accepted", "output_shape": list(y.shape),
                "output_nan": int(np.isnan(y).sum()),
                "output_lowest_float": int((y == np.finfo(np.float32).min).sum())}
    verdict = {"outcome": "crashed"}
    if proc.returncode < 0:
        verdict["signal"] = signal.Signals(-proc.returncode).name
    else:
        verdict["exit_status"] = proc.returncode
    fatal = [line for line in proc.stderr.splitlines() if re.match(r"^F\d{4} ", line)]
    if fatal:
        verdict["message"] = fatal[0].split("] ", 1)[1]
        verdict["source"] = re.search(r"(\S+\.cpp):\d+\]", fatal[0]).group(1)
    elif proc.stderr.strip():
        verdict["message"] = proc.stderr.strip().splitlines()[-1]
    return verdict


# ---------------------------------------------------------------------------------------------
# The catalogue


def conv_cases():
    c = "Convolution"
    return [
        case("k3", c, (1, 3, 7, 7), [("num_output", 4), ("kernel_size", 3)]),
        case("k3_pad1", c, (1, 3, 7, 7), [("num_output", 4), ("kernel_size", 3), ("pad", 1)]),
        case("k3_stride2_pad1", c, (1, 3, 8, 8),
             [("num_output", 4), ("kernel_size", 3), ("stride", 2), ("pad", 1)]),
        case("kh3_kw5", c, (1, 2, 8, 9),
             [("num_output", 3), ("kernel_h", 3), ("kernel_w", 5)]),
        case("kernel_size_repeated_2_4", c, (1, 2, 8, 9),
             [("num_output", 3), ("kernel_size", 2), ("kernel_size", 4)]),
        case("stride_h2_w3", c, (1, 2, 11, 13),
             [("num_output", 3), ("kernel_size", 3), ("stride_h", 2), ("stride_w", 3)]),
        case("stride_repeated_3_2", c, (1, 2, 11, 13),
             [("num_output", 3), ("kernel_size", 3), ("stride", 3), ("stride", 2)]),
        case("pad_h2_w1", c, (1, 2, 6, 7),
             [("num_output", 3), ("kernel_size", 3), ("pad_h", 2), ("pad_w", 1)]),
        case("pad_h_only", c, (1, 2, 6, 7),
             [("num_output", 3), ("kernel_size", 3), ("pad_h", 2)]),
        case("pad_w_only", c, (1, 2, 6, 7),
             [("num_output", 3), ("kernel_size", 3), ("pad_w", 2)]),
        case("pad_repeated_0_2", c, (1, 2, 6, 7),
             [("num_output", 3), ("kernel_size", 3), ("pad", 0), ("pad", 2)]),
        case("dilation2", c, (1, 2, 11, 12),
             [("num_output", 3), ("kernel_size", 3), ("dilation", 2)]),
        case("dilation_h2_w3", c, (1, 2, 12, 13),
             [("num_output", 3), ("kernel_size", 3), ("dilation", 2), ("dilation", 3)]),
        case("dilation2_pad2_stride2", c, (1, 2, 9, 10),
             [("num_output", 3), ("kernel_size", 3), ("dilation", 2), ("pad", 2), ("stride", 2)]),
        case("group2", c, (1, 4, 6, 6),
             [("num_output", 6), ("kernel_size", 3), ("group", 2)]),
        case("group3_kh2_kw3_stride_pad", c, (2, 6, 7, 8),
             [("num_output", 9), ("kernel_h", 2), ("kernel_w", 3), ("stride_h", 2),
              ("stride_w", 1), ("pad_h", 1), ("pad_w", 0), ("group", 3)]),
        case("depthwise", c, (1, 4, 7, 7),
             [("num_output", 4), ("kernel_size", 3), ("pad", 1), ("group", 4)]),
        case("depthwise_multiplier2", c, (1, 3, 7, 6),
             [("num_output", 6), ("kernel_size", 3), ("group", 3)]),
        case("no_bias", c, (1, 3, 6, 6),
             [("num_output", 4), ("kernel_size", 3), ("bias_term", False)]),
        case("k1_fast_path", c, (2, 5, 4, 6), [("num_output", 3), ("kernel_size", 1)]),
        case("k1_stride2", c, (1, 5, 5, 6),
             [("num_output", 3), ("kernel_size", 1), ("stride", 2)]),
        case("k1_pad1", c, (1, 5, 4, 4), [("num_output", 3), ("kernel_size", 1), ("pad", 1)]),
        case("k1_group2_no_bias", c, (2, 4, 3, 5),
             [("num_output", 6), ("kernel_size", 1), ("group", 2), ("bias_term", False)]),
        case("stride3_uneven", c, (1, 2, 8, 10),
             [("num_output", 3), ("kernel_size", 3), ("stride", 3)]),
        case("stride2_uneven_pad1", c, (1, 2, 8, 9),
             [("num_output", 3), ("kernel_size", 3), ("stride", 2), ("pad", 1)]),
        case("pad3_ge_kernel2", c, (1, 2, 4, 5),
             [("num_output", 3), ("kernel_size", 2), ("pad", 3)]),
        case("pad4_ge_kernel3_stride2", c, (1, 2, 5, 5),
             [("num_output", 3), ("kernel_size", 3), ("pad", 4), ("stride", 2)]),
        case("truncation_in5_k6_s4", c, (1, 2, 5, 5),
             [("num_output", 3), ("kernel_size", 6), ("stride", 4)]),
        case("truncation_in3_k6_s4", c, (1, 2, 3, 3),
             [("num_output", 3), ("kernel_size", 6), ("stride", 4)]),
        case("truncation_h_only", c, (1, 2, 5, 7),
             [("num_output", 3), ("kernel_h", 6), ("kernel_w", 3), ("stride_h", 4),
              ("stride_w", 2)]),
        case("truncation_dilated", c, (1, 2, 6, 6),
             [("num_output", 3), ("kernel_size", 3), ("dilation", 3), ("stride", 2)]),
        case("truncation_padded", c, (1, 2, 3, 4),
             [("num_output", 3), ("kernel_size", 7), ("pad", 1), ("stride", 3)]),
        case("kernel_equals_input", c, (2, 3, 5, 4),
             [("num_output", 4), ("kernel_h", 5), ("kernel_w", 4)]),
        case("stride_larger_than_input", c, (1, 2, 3, 3),
             [("num_output", 3), ("kernel_size", 1), ("stride", 5)]),
        case("batch3_nonsquare", c, (3, 3, 6, 10),
             [("num_output", 5), ("kernel_size", 3), ("pad", 1)]),
        case("input_1x1", c, (2, 3, 1, 1), [("num_output", 2), ("kernel_size", 1)]),
        case("input_1xN_kernel_1x3", c, (1, 2, 1, 9),
             [("num_output", 3), ("kernel_h", 1), ("kernel_w", 3), ("stride_w", 2),
              ("stride_h", 1)]),
        case("channels16_k3", c, (1, 16, 6, 6),
             [("num_output", 8), ("kernel_size", 3), ("pad", 1)]),
        case("everything", c, (2, 6, 9, 11),
             [("num_output", 4), ("kernel_h", 2), ("kernel_w", 3), ("stride_h", 2),
              ("stride_w", 1), ("pad_h", 1), ("pad_w", 2), ("dilation", 2), ("dilation", 1),
              ("group", 2), ("bias_term", False)]),
        case("everything_with_bias", c, (2, 4, 10, 7),
             [("num_output", 6), ("kernel_h", 3), ("kernel_w", 2), ("stride_h", 1),
              ("stride_w", 3), ("pad_h", 0), ("pad_w", 3), ("dilation", 1), ("dilation", 2),
              ("group", 2)]),
        case("relu_after", c, (1, 3, 7, 7),
             [("num_output", 4), ("kernel_size", 3), ("stride", 2)], relu=True),
    ]


def _pair_fields(rng, name, plural, h, w, default, repeated):
    """Write one spatial parameter in a randomly chosen valid form: omitted when default, the
    scalar, the repeated field (Convolution only; PoolingParameter's are not repeated), or the
    ``_h``/``_w`` pair (which Caffe 1.0 has for every parameter but dilation)."""
    forms = []
    if h == w:
        forms += ["omit"] if h == default else []
        forms += ["scalar"]
    if repeated:
        forms += ["repeated"]
    if name != "dilation":
        forms += ["pair"]
    form = forms[rng.integers(len(forms))]
    if form == "omit":
        return []
    if form == "scalar":
        return [(plural, h)]
    if form == "repeated":
        return [(plural, h), (plural, w)]
    return [(name + "_h", h), (name + "_w", w)]


def _sweep_axes(rng, layer):
    """Random (size, kernel, stride, pad, dilation) per axis that Caffe accepts."""
    while True:
        axes = []
        for _ in range(2):
            size, k = int(rng.integers(1, 13)), int(rng.integers(1, 6))
            s, p = int(rng.integers(1, 5)), int(rng.integers(0, 4))
            d = int(rng.integers(1, 4)) if layer != "Pooling" else 1
            axes.append((size, k, s, p, d))
        if layer == "Convolution":
            ok = all(int((n + 2 * p - d * (k - 1) - 1) / s) + 1 >= 1 for n, k, s, p, d in axes)
        elif layer == "Deconvolution":
            ok = all(s * (n - 1) + d * (k - 1) + 1 - 2 * p >= 1 for n, k, s, p, d in axes)
        else:
            ok = all(p < k for _, k, _, p, _ in axes) and _pool_windows_touch_input(axes)
        if ok:
            return axes


def _pool_windows_touch_input(axes):
    """Whether Caffe's pooled size is >= 1 and its last window starts inside the input or its
    left padding; without any padding Caffe keeps windows that lie wholly past the input (MAX
    then yields -FLT_MAX and corrupts memory in backward, AVE yields 0/0), see refused.json."""
    params = {"layer": "Pooling", "input_shape": [1, 1] + [a[0] for a in axes],
              "kernel": [a[1] for a in axes], "stride": [a[2] for a in axes],
              "pad": [a[3] for a in axes]}
    out = expected_output_shape(params)[2:]
    return all(o >= 1 and (o - 1) * s - p < n for o, (n, _, s, p, _) in zip(out, axes))


def sweep_cases(layer, prefix, count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        axes = _sweep_axes(rng, layer)
        (h, kh, sh, ph, dh), (w, kw, sw, pw, dw) = axes
        batch = int(rng.integers(1, 3))
        if layer == "Pooling":
            channels = int(rng.integers(1, 4))
            fields = [("pool", "MAX" if rng.integers(2) == 0 else "AVE")]
        else:
            group = int(rng.choice([1, 1, 2, 3]))
            channels = group * int(rng.integers(1, 4))
            fields = [("num_output", group * int(rng.integers(1, 4)))]
            if group > 1:
                fields.append(("group", group))
            if rng.integers(4) == 0:
                fields.append(("bias_term", False))
        repeated = layer != "Pooling"
        fields += _pair_fields(rng, "kernel", "kernel_size", kh, kw, None, repeated)
        fields += _pair_fields(rng, "stride", "stride", sh, sw, 1, repeated)
        fields += _pair_fields(rng, "pad", "pad", ph, pw, 0, repeated)
        if layer != "Pooling":
            fields += _pair_fields(rng, "dilation", "dilation", dh, dw, 1, repeated)
        x_kind = "ties" if layer == "Pooling" and i % 3 == 0 else "normal"
        cases.append(case(f"{prefix}{i:02d}", layer, (batch, channels, h, w), fields,
                          x_kind=x_kind))
    return cases


def seed_cases():
    # The seed's layer (AlexNet conv1 shape): x is pixel-like and dy has 9 levels so the two
    # large inputs compress; y and dx are kept on a grid of rows/columns (first and last
    # included) and the ReLU mask is kept whole, so the full backward can be checked.
    return [case("alexnet_conv1_relu", "Convolution", (1, 3, 500, 500),
                 [("num_output", 96), ("kernel_size", 11), ("stride", 4)], relu=True,
                 x_kind="image", dy_kind="quarters", keep_every=6)]


def deconv_cases():
    d = "Deconvolution"
    return [
        case("k3", d, (1, 3, 5, 5), [("num_output", 4), ("kernel_size", 3)]),
        case("k3_stride2", d, (1, 3, 4, 5), [("num_output", 2), ("kernel_size", 3), ("stride", 2)]),
        case("k4_stride2_pad1", d, (2, 3, 4, 4),
             [("num_output", 2), ("kernel_size", 4), ("stride", 2), ("pad", 1)]),
        case("kh2_kw3", d, (1, 2, 4, 5), [("num_output", 3), ("kernel_h", 2), ("kernel_w", 3)]),
        case("stride_h3_w2", d, (1, 2, 4, 5),
             [("num_output", 3), ("kernel_size", 3), ("stride_h", 3), ("stride_w", 2)]),
        case("pad_h1_w2", d, (1, 2, 4, 5),
             [("num_output", 3), ("kernel_size", 3), ("stride", 2), ("pad_h", 1), ("pad_w", 2)]),
        case("pad_h_only", d, (1, 2, 4, 5),
             [("num_output", 3), ("kernel_size", 3), ("pad_h", 1)]),
        case("stride_smaller_than_kernel_gap", d, (1, 2, 3, 4),
             [("num_output", 2), ("kernel_size", 2), ("stride", 3)]),
        case("dilation2", d, (1, 2, 4, 4),
             [("num_output", 3), ("kernel_size", 3), ("dilation", 2)]),
        case("dilation_h1_w3_stride2", d, (1, 2, 4, 5),
             [("num_output", 3), ("kernel_size", 3), ("dilation", 1), ("dilation", 3),
              ("stride", 2)]),
        case("group2", d, (1, 4, 4, 4), [("num_output", 6), ("kernel_size", 3), ("group", 2)]),
        case("depthwise_stride2", d, (1, 4, 4, 5),
             [("num_output", 4), ("kernel_size", 4), ("stride", 2), ("pad", 1), ("group", 4)]),
        case("no_bias", d, (1, 3, 4, 4),
             [("num_output", 2), ("kernel_size", 3), ("stride", 2), ("bias_term", False)]),
        case("k1", d, (2, 4, 3, 5), [("num_output", 3), ("kernel_size", 1)]),
        case("k1_stride2", d, (1, 4, 3, 3), [("num_output", 3), ("kernel_size", 1), ("stride", 2)]),
        case("pad_eats_output", d, (1, 2, 3, 3),
             [("num_output", 2), ("kernel_size", 3), ("pad", 2)]),
        case("batch3_nonsquare", d, (3, 2, 3, 6),
             [("num_output", 3), ("kernel_size", 3), ("stride", 2), ("pad", 1)]),
        case("everything", d, (2, 4, 3, 4),
             [("num_output", 6), ("kernel_h", 3), ("kernel_w", 2), ("stride_h", 2),
              ("stride_w", 3), ("pad_h", 1), ("pad_w", 0), ("dilation", 2), ("dilation", 1),
              ("group", 2), ("bias_term", False)]),
    ]


def pool_cases():
    p = "Pooling"
    cases = []
    for pool in ("MAX", "AVE"):
        m = pool.lower()
        cases += [
            case(f"{m}_k2_s2", p, (1, 2, 6, 6),
                 [("pool", pool), ("kernel_size", 2), ("stride", 2)]),
            case(f"{m}_k3_s2_ceil", p, (2, 2, 6, 7),
                 [("pool", pool), ("kernel_size", 3), ("stride", 2)]),
            case(f"{m}_k3_s2_ceil_55", p, (1, 1, 55, 55),
                 [("pool", pool), ("kernel_size", 3), ("stride", 2)]),
            case(f"{m}_k3_s2_pad1", p, (1, 2, 6, 6),
                 [("pool", pool), ("kernel_size", 3), ("stride", 2), ("pad", 1)]),
            case(f"{m}_k3_s1_pad1", p, (1, 2, 5, 4),
                 [("pool", pool), ("kernel_size", 3), ("stride", 1), ("pad", 1)]),
            case(f"{m}_clip_in5_k2_s3_pad1", p, (1, 2, 5, 5),
                 [("pool", pool), ("kernel_size", 2), ("stride", 3), ("pad", 1)]),
            case(f"{m}_clip_in7_k3_s4_pad1", p, (1, 2, 7, 8),
                 [("pool", pool), ("kernel_size", 3), ("stride", 4), ("pad", 1)]),
            case(f"{m}_kh2_kw3_sh1_sw2", p, (1, 2, 5, 7),
                 [("pool", pool), ("kernel_h", 2), ("kernel_w", 3), ("stride_h", 1),
                  ("stride_w", 2)]),
            case(f"{m}_pad_h1_w0", p, (1, 2, 5, 6),
                 [("pool", pool), ("kernel_size", 3), ("stride", 2), ("pad_h", 1),
                  ("pad_w", 0)]),
            case(f"{m}_pad_h0_w2_k3", p, (1, 1, 4, 5),
                 [("pool", pool), ("kernel_size", 3), ("stride", 2), ("pad_h", 0),
                  ("pad_w", 2)]),
            case(f"{m}_stride3_gt_kernel2", p, (1, 2, 7, 8),
                 [("pool", pool), ("kernel_size", 2), ("stride", 3)]),
            case(f"{m}_window4_on_3x3_s2", p, (1, 2, 3, 3),
                 [("pool", pool), ("kernel_size", 4), ("stride", 2)]),
            case(f"{m}_window5_on_3x4_s3_pad2", p, (1, 2, 3, 4),
                 [("pool", pool), ("kernel_size", 5), ("stride", 3), ("pad", 2)]),
            case(f"{m}_pad_h_clips_w", p, (1, 2, 6, 3),
                 [("pool", pool), ("kernel_h", 3), ("kernel_w", 1), ("stride_h", 2),
                  ("stride_w", 4), ("pad_h", 1), ("pad_w", 0)]),
            case(f"{m}_global", p, (2, 3, 5, 7), [("pool", pool), ("global_pooling", True)]),
            case(f"{m}_global_1x1", p, (1, 2, 1, 1), [("pool", pool), ("global_pooling", True)]),
            case(f"{m}_k1_s1", p, (1, 2, 3, 4), [("pool", pool), ("kernel_size", 1)]),
        ]
    cases += [
        case("max_ties_k2_s2", p, (1, 3, 6, 6),
             [("pool", "MAX"), ("kernel_size", 2), ("stride", 2)], x_kind="ties"),
        case("max_ties_overlap_k3_s1", p, (2, 2, 6, 5),
             [("pool", "MAX"), ("kernel_size", 3), ("stride", 1)], x_kind="ties"),
        case("max_ties_overlap_k3_s2_pad1", p, (1, 3, 7, 7),
             [("pool", "MAX"), ("kernel_size", 3), ("stride", 2), ("pad", 1)], x_kind="ties"),
        case("max_negative_with_pad", p, (1, 2, 5, 5),
             [("pool", "MAX"), ("kernel_size", 3), ("stride", 2), ("pad", 1)],
             x_kind="negative_ties"),
        case("max_ties_global", p, (1, 3, 4, 4), [("pool", "MAX"), ("global_pooling", True)],
             x_kind="ties"),
        case("ave_ties_k3_s2_pad1", p, (1, 2, 6, 6),
             [("pool", "AVE"), ("kernel_size", 3), ("stride", 2), ("pad", 1)], x_kind="ties"),
    ]
    return cases


def conv3d_cases():
    c = "Convolution"
    return [
        case("k3_2_2", c, (1, 2, 5, 6, 7),
             [("num_output", 3), ("kernel_size", 3), ("kernel_size", 2), ("kernel_size", 2)]),
        case("k2_scalar", c, (1, 2, 4, 5, 3), [("num_output", 3), ("kernel_size", 2)]),
        case("stride_1_2_3", c, (1, 2, 5, 7, 8),
             [("num_output", 2), ("kernel_size", 2), ("stride", 1), ("stride", 2), ("stride", 3)]),
        case("pad_1_0_2", c, (1, 2, 4, 4, 5),
             [("num_output", 2), ("kernel_size", 3), ("pad", 1), ("pad", 0), ("pad", 2)]),
        case("dilation2", c, (1, 2, 5, 6, 6),
             [("num_output", 2), ("kernel_size", 2), ("dilation", 2)]),
        case("dilation_1_2_3", c, (1, 1, 4, 6, 8),
             [("num_output", 2), ("kernel_size", 2), ("dilation", 1), ("dilation", 2),
              ("dilation", 3)]),
        case("group2_no_bias", c, (2, 4, 4, 4, 5),
             [("num_output", 4), ("kernel_size", 2), ("kernel_size", 3), ("kernel_size", 2),
              ("group", 2), ("bias_term", False)]),
        case("k1_fast_path", c, (2, 3, 3, 4, 2), [("num_output", 2), ("kernel_size", 1)]),
        case("truncation_in5_k6_s4", c, (1, 1, 5, 4, 6),
             [("num_output", 2), ("kernel_size", 6), ("kernel_size", 2), ("kernel_size", 3),
              ("stride", 4)]),
        case("everything", c, (2, 4, 5, 6, 7),
             [("num_output", 2), ("kernel_size", 3), ("kernel_size", 1), ("kernel_size", 2),
              ("stride", 2), ("stride", 1), ("stride", 3), ("pad", 1), ("pad", 2), ("pad", 0),
              ("dilation", 1), ("dilation", 1), ("dilation", 2), ("group", 2)]),
    ]


FAMILIES = {
    "conv2d": conv_cases,
    "conv2d_sweep": lambda: sweep_cases("Convolution", "sweep", 40, 20240101),
    "conv2d_seed": seed_cases,
    "deconv2d": lambda: deconv_cases() + sweep_cases("Deconvolution", "sweep", 14, 20240102),
    "pool2d": lambda: pool_cases() + sweep_cases("Pooling", "sweep", 16, 20240103),
    "conv3d": conv3d_cases,
}


def refused_cases():
    """Geometries real Caffe rejects (or accepts although it makes no sense), each with the
    fastconv call that must raise ValueError instead; ``fastconv_call`` is None when the fault
    lives in the prototxt's syntax and cannot be spelled in fastconv's API."""
    c, d, p = "Convolution", "Deconvolution", "Pooling"

    def conv_call(fn, x_shape, w_shape, **kwargs):
        return {"function": fn, "x_shape": list(x_shape), "w_shape": list(w_shape),
                "kwargs": kwargs}

    def pool_call(x_shape, kernel_size, **kwargs):
        return {"function": "pool2d_caffe", "x_shape": list(x_shape),
                "kernel_size": kernel_size, "kwargs": kwargs}

    x4 = (1, 2, 6, 6)
    return [
        (case("conv_stride_h_without_stride_w", c, x4,
              [("num_output", 2), ("kernel_size", 3), ("stride_h", 2)]),
         conv_call("conv2d_caffe", x4, (2, 2, 3, 3), stride=[2, 0])),
        (case("conv_stride_w_without_stride_h", c, x4,
              [("num_output", 2), ("kernel_size", 3), ("stride_w", 2)]),
         conv_call("conv2d_caffe", x4, (2, 2, 3, 3), stride=[0, 2])),
        (case("conv_stride0", c, x4, [("num_output", 2), ("kernel_size", 3), ("stride", 0)]),
         conv_call("conv2d_caffe", x4, (2, 2, 3, 3), stride=0)),
        (case("conv_kernel_h_without_kernel_w", c, x4, [("num_output", 2), ("kernel_h", 3)]),
         conv_call("conv2d_caffe", x4, (2, 2, 3, 0))),
        (case("conv_kernel0", c, x4, [("num_output", 2), ("kernel_size", 0)]),
         conv_call("conv2d_caffe", x4, (2, 2, 0, 0))),
        (case("conv_dilation0", c, x4, [("num_output", 2), ("kernel_size", 3), ("dilation", 0)]),
         conv_call("conv2d_caffe", x4, (2, 2, 3, 3), dilation=0)),
        (case("conv_output_below_1", c, (1, 2, 3, 3), [("num_output", 2), ("kernel_size", 5)]),
         conv_call("conv2d_caffe", (1, 2, 3, 3), (2, 2, 5, 5))),
        (case("conv_extent_exceeds_input_by_stride", c, (1, 2, 2, 2),
              [("num_output", 2), ("kernel_size", 6), ("stride", 4)]),
         conv_call("conv2d_caffe", (1, 2, 2, 2), (2, 2, 6, 6), stride=4)),
        (case("conv_group_not_dividing_channels", c, (1, 3, 5, 5),
              [("num_output", 2), ("kernel_size", 3), ("group", 2)]),
         conv_call("conv2d_caffe", (1, 3, 5, 5), (2, 1, 3, 3), group=2)),
        (case("conv_group_not_dividing_num_output", c, (1, 4, 5, 5),
              [("num_output", 3), ("kernel_size", 3), ("group", 2)]),
         conv_call("conv2d_caffe", (1, 4, 5, 5), (3, 2, 3, 3), group=2)),
        (case("conv_kernel_size_and_kernel_h", c, x4,
              [("num_output", 2), ("kernel_size", 3), ("kernel_h", 3), ("kernel_w", 3)]), None),
        (case("conv_pad_and_pad_h", c, x4,
              [("num_output", 2), ("kernel_size", 3), ("pad", 1), ("pad_h", 1), ("pad_w", 1)]),
         None),
        (case("conv3d_kernel_h", c, (1, 1, 4, 4, 4), [("num_output", 2), ("kernel_h", 2),
                                                      ("kernel_w", 2)]), None),
        (case("conv3d_two_kernel_sizes_for_three_axes", c, (1, 1, 4, 4, 4),
              [("num_output", 2), ("kernel_size", 2), ("kernel_size", 3)]),
         conv_call("convnd_caffe", (1, 1, 4, 4, 4), (2, 1, 2, 3, 3), stride=[1, 1])),
        (case("deconv_output_below_1", d, (1, 2, 1, 1),
              [("num_output", 2), ("kernel_size", 3), ("pad", 2)]),
         conv_call("deconv2d_caffe", (1, 2, 1, 1), (2, 2, 3, 3), stride=1, pad=2, dilation=1,
                   group=1)),
        (case("deconv_stride_h_without_stride_w", d, (1, 2, 3, 3),
              [("num_output", 2), ("kernel_size", 3), ("stride_h", 2)]),
         conv_call("deconv2d_caffe", (1, 2, 3, 3), (2, 2, 3, 3), stride=[2, 0], pad=0,
                   dilation=1, group=1)),
        (case("pool_pad_equals_kernel", p, x4,
              [("pool", "MAX"), ("kernel_size", 2), ("stride", 2), ("pad", 2)]),
         pool_call(x4, 2, stride=2, pad=2, method="max")),
        (case("pool_ave_pad_greater_than_kernel", p, x4,
              [("pool", "AVE"), ("kernel_size", 2), ("pad", 3)]),
         pool_call(x4, 2, stride=1, pad=3, method="ave")),
        (case("pool_global_with_pad", p, x4, [("pool", "AVE"), ("global_pooling", True),
                                              ("pad", 1)]),
         pool_call(x4, None, stride=1, pad=1, method="ave", global_pooling=True)),
        (case("pool_global_with_stride", p, x4, [("pool", "MAX"), ("global_pooling", True),
                                                 ("stride", 2)]),
         pool_call(x4, None, stride=2, pad=0, method="max", global_pooling=True)),
        (case("pool_global_with_kernel", p, x4, [("pool", "MAX"), ("global_pooling", True),
                                                 ("kernel_size", 2)]), None),
        (case("pool_window_larger_than_input_output_below_1", p, (1, 2, 3, 3),
              [("pool", "MAX"), ("kernel_size", 6), ("stride", 1)]),
         pool_call((1, 2, 3, 3), 6, stride=1, pad=0, method="max")),
        (case("pool_kernel_h_without_kernel_w", p, x4, [("pool", "MAX"), ("kernel_h", 2)]),
         pool_call(x4, [2, 0], stride=1, pad=0, method="max")),
        (case("pool_stride_h_without_stride_w", p, x4,
              [("pool", "MAX"), ("kernel_size", 2), ("stride_h", 2)]),
         pool_call(x4, 2, stride=[2, 0], pad=0, method="max")),
        (case("pool_pad_h_without_pad_w", p, x4,
              [("pool", "MAX"), ("kernel_size", 3), ("pad_h", 1)]), None),
        (case("pool_stride0", p, x4, [("pool", "MAX"), ("kernel_size", 2), ("stride", 0)]),
         pool_call(x4, 2, stride=0, pad=0, method="max")),
        (case("pool_max_window_past_input", p, (1, 2, 4, 4),
              [("pool", "MAX"), ("kernel_size", 1), ("stride", 2)]),
         pool_call((1, 2, 4, 4), 1, stride=2, pad=0, method="max")),
        (case("pool_ave_window_past_input", p, (1, 2, 4, 4),
              [("pool", "AVE"), ("kernel_size", 1), ("stride", 2)]),
         pool_call((1, 2, 4, 4), 1, stride=2, pad=0, method="ave")),
        (case("pool_max_window_past_input_w_only", p, (1, 2, 5, 3),
              [("pool", "MAX"), ("kernel_h", 2), ("kernel_w", 1), ("stride_h", 1),
               ("stride_w", 4)]),
         pool_call((1, 2, 5, 3), [2, 1], stride=[1, 4], pad=0, method="max")),
        (case("pool_3d_input", p, (1, 1, 4, 4, 4), [("pool", "MAX"), ("kernel_size", 2)]),
         pool_call((1, 1, 4, 4, 4), 2, stride=1, pad=0, method="max")),
    ]


# ---------------------------------------------------------------------------------------------
# Writing


def write_npz(path, arrays):
    """np.savez_compressed stamps each member with the current time; this writes the same
    format with a fixed date so identical data gives identical bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())


def _grid(size, step):
    return np.array(sorted(set(range(0, size, step)) | {size - 1}), dtype=np.int64)


def family_arrays(specs, outputs, inputs, params_list, texts):
    arrays = {}
    for spec, out, ins, params, text in zip(specs, outputs, inputs, params_list, texts):
        name = spec["name"]
        if list(out["y"].shape) != expected_output_shape(params):
            raise RuntimeError(f"{name}: Caffe's output shape {out['y'].shape} differs from "
                               f"the rule's {expected_output_shape(params)}")
        if params["layer"] == "Pooling" and not params["global_pooling"] and \
                not _pool_windows_touch_input(list(zip(params["input_shape"][2:], params["kernel"],
                                                       params["stride"], params["pad"],
                                                       params["pad"]))):
            raise RuntimeError(f"{name}: a pooling window lies past the input; see refused.json")
        params = dict(params, output_shape=list(out["y"].shape))
        keep = {**ins, **out}
        if spec["relu"]:
            keep["relu_mask"] = np.packbits(out["y"] > 0)  # in-place ReLU: y > 0 iff its input is
        if spec["keep_every"]:
            for field in ("y", "dx"):
                rows = _grid(keep[field].shape[2], spec["keep_every"])
                cols = _grid(keep[field].shape[3], spec["keep_every"])
                keep[field] = keep[field][:, :, rows][:, :, :, cols]
                keep[field + "_rows"], keep[field + "_cols"] = rows, cols
        for field, value in keep.items():
            arrays[f"{name}/{field}"] = value
        arrays[f"{name}/prototxt"] = np.asarray(text)
        arrays[f"{name}/params"] = np.asarray(json.dumps(params, sort_keys=True))
    return arrays


def generate(out_dir, root):
    out_dir.mkdir(parents=True, exist_ok=True)
    for family, make in FAMILIES.items():
        specs = make()
        params_list = [normalise(s) for s in specs]
        texts = [prototxt(s) for s in specs]
        inputs = [inputs_for(s, p) for s, p in zip(specs, params_list)]
        outputs = run_caffe([{"prototxt": t} for t in texts], inputs, root)
        write_npz(out_dir / f"{family}.npz",
                  family_arrays(specs, outputs, inputs, params_list, texts))
        print(f"{family}: {len(specs)} cases, {(out_dir / f'{family}.npz').stat().st_size} bytes")

    refused = []
    for spec, call in refused_cases():
        text = prototxt(spec)
        x = _draw(np.random.default_rng(zlib.crc32(spec["name"].encode())), "normal",
                  spec["input_shape"])
        verdict = caffe_verdict(text, x, root)
        refused.append({"name": spec["name"], "layer": spec["layer"],
                        "input_shape": spec["input_shape"], "prototxt": text,
                        "caffe": verdict, "fastconv_call": call})
        print(f"refused {spec['name']}: {verdict}")
    (out_dir / "refused.json").write_text(json.dumps(refused, indent=1, sort_keys=True) + "\n")


def command_line(argv, description, generate_into, default_out):
    """The generators' shared command line: write ``--out``, or with ``--check`` generate into a
    temporary folder and compare it with ``--out`` file by file, byte by byte."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", default=caffe_root(), help="the chroot (FASTCONV_CAFFE_ROOT)")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--check", action="store_true",
                        help="generate into a temporary folder and compare with --out byte by byte")
    args = parser.parse_args(argv)
    if not chroot_ready(args.root):
        sys.exit(f"no Caffe chroot at {args.root}: run tools/caffe_reference/setup_env.sh first")
    if not args.check:
        generate_into(args.out, args.root)
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate_into(Path(tmp), args.root)
        names = sorted(p.name for p in Path(tmp).iterdir())
        recorded = sorted(p.name for p in args.out.iterdir())
        differ = [n for n in names if not (args.out / n).is_file()
                  or (args.out / n).read_bytes() != (Path(tmp) / n).read_bytes()]
        if differ or names != recorded:
            sys.exit(f"regenerated data differs from {args.out}: {differ or recorded}")
        print(f"regenerated data is byte-identical to {args.out} ({len(names)} files)")


def main(argv=None):
    command_line(argv, __doc__.split("\n\n")[0], generate, DATA_DIR)


if __name__ == "__main__":
    main()
