"""Whole nets: fastconv's Net against real Caffe 1.0, blob by blob.

tests/data/caffe_nets/ holds, per net, the deploy prototxt, the .caffemodel and what real Caffe
(Debian bullseye's Caffe 1.0, CPU, reference BLAS) showed after loading both and running one
TEST-phase forward: every blob in ``net.blobs`` order (split blobs and in-place overwrites
included), every parameter, the layer names and types, the inputs and outputs. Each blob was
recorded twice: by pycaffe (float32) and by ``caffe::Net<double>`` through Caffe's C++ API,
since pycaffe is float32 only. Nothing here was computed by fastconv; the data were made by
tools/caffe_reference/generate_nets.py (``--check`` regenerates them in Caffe and compares).

fastconv's Net runs each net in float32 and in float64, fed the recorded inputs, and must give
every blob of Caffe's run of the same precision, element by element, within the tolerance below.

Live mode: with ``FASTCONV_CAFFE_ROOT`` naming the chroot of tools/caffe_reference/setup_env.sh
(running as root, for chroot), every net is also rebuilt and run in real Caffe now (about ten
seconds), and the files must come out byte-identical to the recorded ones, so the comparisons
above hold against live Caffe too.
"""
from __future__ import annotations

import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

net_module = pytest.importorskip("fastconv.net")

DATA = Path(__file__).resolve().parent.parent / "data" / "caffe_nets"
NET_NAMES = sorted(path.stem for path in DATA.glob("*.npz"))
DTYPES = ("float32", "float64")

# Tolerance, per blob, relative to the largest magnitude of Caffe's float64 blob. Caffe's own
# float32 error on that blob (its float32 blob against its float64 one) measures how much float32
# rounding the blob's whole computation carries: the depth of the net above it, the length of
# its sums, how much its layers amplify. It is 0 to 13 units of roundoff (u = 2**-24) on these
# nets. fastconv rounds differently (other summation orders, other math library), by about as
# much, so it may differ from Caffe by 4 times Caffe's own error plus 8 units of roundoff. In
# float64 the same rule holds with u = 2**-53 (Caffe's float64 error is its float32 error scaled
# by 2**-29). A blob Caffe computes exactly in float32 (copies, slices, crops, maxima of the
# inputs, argmax, thresholds) must match exactly. A wrong formula or constant is far outside:
# BatchNorm's eps taken as the double 1e-5 instead of the float 1e-5 Caffe's Net<double> uses is
# about 700 units off in float64; LRN without k, a wrong divisor, a transposed weight are of
# order 1.
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
CAFFE_ERROR_FACTOR = 4
ROUNDOFF_ALLOWANCE = 8


def meta_of(name):
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as archive:
        return json.loads(str(archive["meta"]))


METAS = {name: meta_of(name) for name in NET_NAMES}
BLOB_CASES = [(name, dtype, index) for name in NET_NAMES for dtype in DTYPES
              for index in range(len(METAS[name]["blobs"]))]
PARAM_CASES = [(name, dtype, index) for name in NET_NAMES for dtype in DTYPES
               for index in range(len(METAS[name]["params"]))]


@lru_cache(maxsize=None)
def recorded(name):
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files if key != "meta"}


def recorded_inputs(name, dtype):
    arrays = recorded(name)
    return {input_name: arrays[f"input/{i}"].astype(dtype)
            for i, input_name in enumerate(METAS[name]["inputs"])}


@lru_cache(maxsize=None)
def loaded_net(name, dtype):
    """fastconv's Net for the recorded files, after one forward with the recorded inputs."""
    net = net_module.Net(str(DATA / f"{name}.prototxt"), str(DATA / f"{name}.caffemodel"),
                         net_module.TEST, dtype=np.dtype(dtype).type)
    inputs = recorded_inputs(name, dtype)
    returned = net.forward(**inputs)
    return net, inputs, returned


def tolerance(caffe32, caffe64, dtype):
    """The allowed max |fastconv - Caffe|, in units of max |Caffe's float64 blob| (see above),
    over the elements finite in both."""
    if np.array_equal(caffe32, caffe64, equal_nan=True):
        return 0.0
    finite = np.isfinite(caffe32) & np.isfinite(caffe64)
    scale = np.abs(caffe64[finite]).max(initial=0)
    difference = np.abs(caffe32[finite].astype(np.float64) - caffe64[finite])
    caffe_error = difference.max(initial=0) / scale
    return (CAFFE_ERROR_FACTOR * caffe_error / UNIT_ROUNDOFF["float32"]
            + ROUNDOFF_ALLOWANCE) * UNIT_ROUNDOFF[dtype]


def case_id(case):
    name, dtype, index = case
    return f"{name}-{dtype}-{METAS[name]['blobs'][index][0]}"


def param_case_id(case):
    name, dtype, index = case
    return f"{name}-{dtype}-{METAS[name]['params'][index][0]}"


@pytest.mark.parametrize("name", NET_NAMES)
def test_structure_matches_pycaffe(name):
    """Layer names and types (Caffe's upgraded V1 types, the Input layer of old-style inputs,
    the Split layers Caffe inserts), blob names and shapes in order, parameter layers and shapes,
    inputs and outputs: what pycaffe's net shows for the same files."""
    meta = METAS[name]
    net, _, _ = loaded_net(name, "float32")
    assert list(net._layer_names) == [layer for layer, _ in meta["layers"]]
    assert [layer.type for layer in net.layers] == [kind for _, kind in meta["layers"]]
    assert [(blob_name, list(blob.data.shape)) for blob_name, blob in net.blobs.items()] == \
        [(blob_name, shape) for blob_name, shape in meta["blobs"]]
    assert [(layer, [list(blob.data.shape) for blob in blobs])
            for layer, blobs in net.params.items()] == [tuple(p) for p in meta["params"]]
    assert list(net.inputs) == meta["inputs"]
    assert list(net.outputs) == meta["outputs"]


@pytest.mark.parametrize("case", BLOB_CASES, ids=[case_id(c) for c in BLOB_CASES])
def test_blob_matches_caffe(case):
    name, dtype, index = case
    blob_name = METAS[name]["blobs"][index][0]
    arrays = recorded(name)
    caffe32, caffe64 = arrays[f"f32/{index}"], arrays[f"f64/{index}"]
    expected = caffe32 if dtype == "float32" else caffe64
    net, _, _ = loaded_net(name, dtype)
    actual = net.blobs[blob_name].data
    assert actual.dtype == np.dtype(dtype), f"blob {blob_name!r} is {actual.dtype}"
    assert actual.shape == expected.shape, f"blob {blob_name!r}: shape {actual.shape}, " \
        f"Caffe's {expected.shape}"
    # inf and NaN (in_place_quirks' inf_or_1) in the same elements; the rest within tolerance.
    finite = np.isfinite(expected)
    assert np.array_equal(actual[~finite], expected[~finite], equal_nan=True), (
        f"{name} ({dtype}) blob {blob_name!r}: inf/NaN differ from Caffe's")
    allowed = tolerance(caffe32, caffe64, dtype)
    scale = max(np.abs(caffe64[np.isfinite(caffe64)]).max(initial=0), np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore"):   # inf - inf where both are inf: masked out
        error = np.where(finite, np.abs(actual.astype(np.float64) - expected.astype(np.float64)),
                         0)
    worst = np.unravel_index(np.argmax(error), error.shape)
    assert error.max() <= allowed * scale, (
        f"{name} ({dtype}) blob {blob_name!r}: max |fastconv - Caffe| = {error.max():.3g} "
        f"= {error.max() / scale:.3g} of the blob's scale {scale:.3g}, allowed {allowed:.3g}; "
        f"worst at {tuple(int(i) for i in worst)}: fastconv {actual[worst]!r}, "
        f"Caffe {expected[worst]!r}")


@pytest.mark.parametrize("case", PARAM_CASES, ids=[param_case_id(c) for c in PARAM_CASES])
def test_params_match_caffe(case):
    """Parameters after the forward. Read from the .caffemodel, not computed, they are exactly
    Caffe's values (the float64 net holds the same float32 numbers), also from V1 files whose
    blobs carry legacy 4-D sizes; a BatchNorm with ``use_global_stats: false`` updates its own
    during the forward, and those are held to the blob tolerance."""
    name, dtype, index = case
    layer, shapes = METAS[name]["params"][index]
    net, _, _ = loaded_net(name, dtype)
    blobs = net.params[layer]
    assert len(blobs) == len(shapes), f"layer {layer!r}: {len(blobs)} blobs, Caffe {len(shapes)}"
    for j, blob in enumerate(blobs):
        caffe32 = recorded(name)[f"param/{index}/{j}"]
        caffe64 = recorded(name)[f"param64/{index}/{j}"]
        expected = caffe32 if dtype == "float32" else caffe64
        assert blob.data.dtype == np.dtype(dtype), f"{layer!r}[{j}] is {blob.data.dtype}"
        assert blob.data.shape == expected.shape, f"{layer!r}[{j}]: shape {blob.data.shape}, " \
            f"Caffe's {expected.shape}"
        scale = max(np.abs(caffe64).max(initial=0), np.finfo(np.float64).tiny)
        error = np.abs(blob.data.astype(np.float64) - expected).max(initial=0)
        allowed = tolerance(caffe32, caffe64, dtype)
        assert error <= allowed * scale, (
            f"{name} ({dtype}) parameter {layer!r}[{j}]: max |fastconv - Caffe| = {error:.3g}, "
            f"allowed {allowed:.3g} of the scale {scale:.3g}")


@pytest.mark.parametrize("name", NET_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_returns_outputs_and_keeps_inputs(name, dtype):
    """pycaffe's forward returns {output name: its blob's data}; the inputs are not modified."""
    net, inputs, returned = loaded_net(name, dtype)
    assert sorted(returned) == sorted(METAS[name]["outputs"])
    for output in METAS[name]["outputs"]:
        np.testing.assert_array_equal(returned[output], net.blobs[output].data)
    for input_name, x in recorded_inputs(name, dtype).items():
        np.testing.assert_array_equal(inputs[input_name], x, err_msg=f"input {input_name!r}")


LIVE_ROOT = os.environ.get("FASTCONV_CAFFE_ROOT")


@pytest.mark.skipif(not LIVE_ROOT, reason="live mode only: FASTCONV_CAFFE_ROOT names the chroot "
                    "made by tools/caffe_reference/setup_env.sh")
def test_live_caffe_gives_the_recorded_nets(tmp_path):
    path = DATA.parent.parent.parent / "tools" / "caffe_reference" / "generate_nets.py"
    spec = importlib.util.spec_from_file_location("fastconv_caffe_generate_nets", path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generator.generate(tmp_path, LIVE_ROOT)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in DATA.iterdir())
    differ = [name for name in made if (tmp_path / name).read_bytes() != (DATA / name).read_bytes()]
    assert not differ, f"real Caffe now gives other files than recorded: {differ}"
