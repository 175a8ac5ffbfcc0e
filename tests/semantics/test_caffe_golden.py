"""fastconv against real Caffe 1.0.

The expected values were computed by real Caffe (Debian bullseye's python3-caffe, CPU, float32)
and recorded by tools/caffe_reference/generate.py in tests/data/caffe_golden/; nothing here was
computed by fastconv. Each family file holds ``<case>/<field>`` arrays plus the case's prototxt
and its parameters as JSON, so a failing test id (``conv2d/stride_h2_w3``) leads straight to
the net Caffe ran. ``refused.json`` lists geometries Caffe kills itself on (or silently accepts
although they make no sense): fastconv must raise ValueError for each instead.

Live mode: with ``FASTCONV_CAFFE_ROOT`` naming the chroot made by
tools/caffe_reference/setup_env.sh (running as root, for chroot), every case is also run in
real Caffe now and fastconv is compared with that too, and every refused geometry is checked to
still be refused. See tools/caffe_reference/README.md.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import fastconv
from reference.tolerance import sum_tolerance

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "caffe_golden"

# family -> (forward function, backward function)
FAMILIES = {
    "conv2d": (fastconv.conv2d_caffe, fastconv.conv2d_caffe_backward),
    "conv2d_sweep": (fastconv.conv2d_caffe, fastconv.conv2d_caffe_backward),
    "conv2d_seed": (fastconv.conv2d_caffe, fastconv.conv2d_caffe_backward),
    "deconv2d": (fastconv.deconv2d_caffe, fastconv.deconv2d_caffe_backward),
    "pool2d": (fastconv.pool2d_caffe, fastconv.pool2d_caffe_backward),
    "conv3d": (fastconv.convnd_caffe, fastconv.convnd_caffe_backward),
}

# Tolerance, relative to the largest magnitude of Caffe's result: sum_tolerance(K) (float32,
# tests/reference/tolerance.py). Caffe (reference BLAS, one running sum) and fastconv (blocked
# GEMM) add in different orders; K is counted per result (weights and bias gradients sum over
# every output cell of the batch, which is where Caffe's own float32 loses most: 2e-5 relative
# was seen on bias gradients of the seed layer, K = 15129, allowance 6e-5).


# ---------------------------------------------------------------------------------------------
# Loading


def _family_case_names(family):
    with zipfile.ZipFile(DATA / f"{family}.npz") as zf:
        names = [n[: -len("/params.npy")] for n in zf.namelist() if n.endswith("/params.npy")]
    return names


@lru_cache(maxsize=None)
def load_family(family):
    cases = {}
    with np.load(DATA / f"{family}.npz", allow_pickle=False) as data:
        for key in data.files:
            name, field = key.split("/", 1)
            cases.setdefault(name, {})[field] = data[key]
    for fields in cases.values():
        fields["params"] = json.loads(str(fields["params"]))
        fields["prototxt"] = str(fields["prototxt"])
    return cases


CASE_IDS = [f"{family}/{name}" for family in FAMILIES for name in _family_case_names(family)]
REFUSED = json.loads((DATA / "refused.json").read_text())


def load_case(case_id):
    family, name = case_id.split("/", 1)
    return family, load_family(family)[name]


def describe(case):
    return f"params={json.dumps(case['params'], sort_keys=True)}\nprototxt:\n{case['prototxt']}"


# ---------------------------------------------------------------------------------------------
# Live Caffe (only when FASTCONV_CAFFE_ROOT names a ready chroot)


def _load_generator():
    path = REPO / "tools" / "caffe_reference" / "generate.py"
    spec = importlib.util.spec_from_file_location("fastconv_caffe_generate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIVE_ROOT = os.environ.get("FASTCONV_CAFFE_ROOT")
GENERATOR = _load_generator() if LIVE_ROOT else None
if LIVE_ROOT and not GENERATOR.chroot_ready(LIVE_ROOT):
    raise RuntimeError(f"FASTCONV_CAFFE_ROOT={LIVE_ROOT} holds no Caffe chroot: "
                       "run tools/caffe_reference/setup_env.sh or unset it")


@lru_cache(maxsize=None)
def live_family(family):
    """Every case of a family run in real Caffe now, in one worker process."""
    cases = load_family(family)
    names = list(cases)
    inputs = [{k: cases[n][k] for k in ("x", "w", "b", "dy") if k in cases[n]} for n in names]
    outputs = GENERATOR.run_caffe([{"prototxt": cases[n]["prototxt"]} for n in names], inputs,
                                  LIVE_ROOT)
    return dict(zip(names, outputs))


def references(family, case, field):
    """(label, Caffe's array) pairs to compare with: the recorded one, plus the live one."""
    refs = [("recorded Caffe", case[field])]
    if LIVE_ROOT:
        name = next(n for n, c in load_family(family).items() if c is case)
        live = crop(case, field, live_family(family)[name][field])
        np.testing.assert_allclose(live, case[field], rtol=0, atol=sum_tolerance(1) * _scale(live),
                                   err_msg=f"live Caffe no longer matches the recorded {field}")
        refs.append(("live Caffe", live))
    return refs


# ---------------------------------------------------------------------------------------------
# Comparison


def _scale(reference):
    return float(np.max(np.abs(reference))) if reference.size else 0.0


def crop(case, field, full):
    """The recorded rows/columns of a result kept only partly (the seed layer, for size)."""
    if f"{field}_rows" not in case:
        return full
    return full[:, :, case[f"{field}_rows"]][:, :, :, case[f"{field}_cols"]]


def assert_close(family, case, field, actual, terms):
    actual = crop(case, field, np.asarray(actual))
    for label, expected in references(family, case, field):
        assert actual.shape == expected.shape, (
            f"{field}: fastconv shape {actual.shape}, {label} {expected.shape}\n{describe(case)}")
        scale = _scale(expected)
        error = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
        allowed = sum_tolerance(terms) * scale
        assert error <= allowed, (
            f"{field}: max|fastconv - {label}| = {error:.3g} > {allowed:.3g} "
            f"(= {sum_tolerance(terms):.2g} x max|{label}| {scale:.3g}, K = {terms})\n{describe(case)}")


def _spatial(params, key):
    return tuple(params[key])


def conv_kwargs(params):
    return dict(stride=_spatial(params, "stride"), pad=_spatial(params, "pad"),
                dilation=_spatial(params, "dilation"), group=params["group"])


def pool_args(params):
    kernel = None if params["global_pooling"] else _spatial(params, "kernel")
    return kernel, dict(stride=_spatial(params, "stride"), pad=_spatial(params, "pad"),
                        method=params["pool"].lower(), global_pooling=params["global_pooling"])


def terms_per_result(params, field):
    """K, the number of terms summed into one element of ``field`` (an upper bound)."""
    n, c = params["input_shape"][:2]
    in_cells = math.prod(params["input_shape"][2:])
    out_cells = math.prod(params["output_shape"][2:])
    taps = math.prod(params["kernel"])
    if params["layer"] == "Pooling":
        windows = math.prod(math.ceil(k / s) for k, s in zip(params["kernel"], params["stride"]))
        return taps if field == "y" else windows
    per_group_in = c // params["group"]
    per_group_out = params["num_output"] // params["group"]
    if params["layer"] == "Deconvolution":
        per_group_in, per_group_out = per_group_out, per_group_in
    return {"y": per_group_in * taps + 1, "dx": per_group_out * taps,
            "dw": n * (in_cells if params["layer"] == "Deconvolution" else out_cells),
            "db": n * out_cells}[field]


def relu_mask(case):
    shape = case["params"]["output_shape"]
    bits = np.unpackbits(case["relu_mask"], count=math.prod(shape))
    return bits.reshape(shape).astype(bool)


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_forward(case_id):
    family, case = load_case(case_id)
    forward, _ = FAMILIES[family]
    params = case["params"]
    if params["layer"] == "Pooling":
        kernel, kwargs = pool_args(params)
        y = forward(case["x"], kernel, **kwargs)
    else:
        y = forward(case["x"], case["w"], case.get("b"), **conv_kwargs(params))
        if params["relu"]:
            y = np.maximum(y, 0)
    assert_close(family, case, "y", y, terms_per_result(params, "y"))


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_backward(case_id):
    family, case = load_case(case_id)
    _, backward = FAMILIES[family]
    params = case["params"]
    if params["layer"] == "Pooling":
        kernel, kwargs = pool_args(params)
        dx = backward(case["x"], case["dy"], kernel, **kwargs)
        assert_close(family, case, "dx", dx, terms_per_result(params, "dx"))
        return
    dy = case["dy"]
    if params["relu"]:
        # ReLU's backward, with Caffe's own mask: a fastconv output within round-off of zero
        # must not flip which gradients reach the convolution.
        dy = np.where(relu_mask(case), dy, np.float32(0))
    dx, dw, db = backward(case["x"], case["w"], dy, bias=params["bias_term"],
                          **conv_kwargs(params))
    assert_close(family, case, "dx", dx, terms_per_result(params, "dx"))
    assert_close(family, case, "dw", dw, terms_per_result(params, "dw"))
    if params["bias_term"]:
        assert_close(family, case, "db", db, terms_per_result(params, "db"))


FASTCONV_REFUSALS = [entry for entry in REFUSED if entry["fastconv_call"] is not None]


@pytest.mark.parametrize("entry", FASTCONV_REFUSALS, ids=[e["name"] for e in FASTCONV_REFUSALS])
def test_refused_geometry_raises(entry):
    """Where Caffe crashes, or accepts nonsense, fastconv raises ValueError instead."""
    call = entry["fastconv_call"]
    function = getattr(fastconv, call["function"])
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in call["kwargs"].items()}
    x = np.zeros(call["x_shape"], dtype=np.float32)
    if "w_shape" in call:
        args = (x, np.zeros(call["w_shape"], dtype=np.float32))
    else:
        kernel = call["kernel_size"]
        args = (x, tuple(kernel) if isinstance(kernel, list) else kernel)
    with pytest.raises(ValueError) as raised:
        function(*args, **kwargs)
    assert str(raised.value), f"empty ValueError for {entry['name']}"


if LIVE_ROOT:  # defined only in live mode, so CI collects no empty parameter set

    @pytest.mark.parametrize("entry", REFUSED, ids=[e["name"] for e in REFUSED])
    def test_live_caffe_still_refuses(entry):
        x = np.zeros(entry["input_shape"], dtype=np.float32)
        verdict = GENERATOR.caffe_verdict(entry["prototxt"], x, LIVE_ROOT)
        for stage, recorded in entry["caffe"].items():
            assert verdict[stage]["outcome"] == recorded["outcome"], (stage, verdict, recorded)
            assert verdict[stage].get("signal") == recorded.get("signal"), (stage, verdict)
