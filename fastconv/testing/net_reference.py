"""The reference side of fastconv.testing.net: float32/float64 twins of a Net, their run one
layer at a time, and the per-blob tolerance (the rule in fastconv.testing.net's docstring)."""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile

import numpy as np

from .compare import default_rtol, unit_roundoff

MEASURED_ERROR_FACTOR = 4   # another summation order may double or quadruple float32's error


# --- the net as a graph ----------------------------------------------------------------------

def blob_writers(layers):
    """Blob name -> the layers that write it, in order (the producer, then in-place layers)."""
    writers = {}
    for layer in layers:
        for top in layer.tops:
            writers.setdefault(top, []).append(layer)
    return writers


# --- running the reference -------------------------------------------------------------------

def run_layer_by_layer(net, inputs):
    """Run ``net`` on ``inputs`` (NCHW) one layer at a time; ``{(layer name, top): copy}``.

    Keeping each layer's tops as it wrote them is what lets a port's value be matched with a
    blob's value before an in-place layer overwrote it.
    """
    for name, value in inputs.items():
        if tuple(net.blobs[name].shape) != value.shape:
            net.blobs[name].reshape(*value.shape)
    net.reshape()
    values = {}
    for position, layer in enumerate(net.layers):
        net.forward(start=layer.name, end=layer.name, **(inputs if position == 0 else {}))
        for top in layer.tops:
            values[(layer.name, top)] = np.array(net.blobs[top].data, dtype=np.float64)
    return values


def float_twin(net, dtype):
    """A new Net with ``net``'s layers (Split layers included, so blob names stay) and its
    current parameter values, computing in ``dtype``; ``net`` itself is left as it is."""
    from google.protobuf import text_format

    from ..net import Net
    from ..net.schema import messages

    definition = messages()["NetParameter"](name=net.name)
    for layer in net.layers:
        copy = definition.layer.add()
        copy.CopyFrom(layer.layer_param)
        copy.ClearField("include")    # the layers were already chosen for net's state
        copy.ClearField("exclude")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "net.prototxt")
        with open(path, "w") as file:
            file.write(text_format.MessageToString(definition))
        twin = Net(path, dtype=dtype)
    for name, blobs in net.params.items():
        for source, target in zip(blobs, twin.params[name]):
            np.copyto(target.data, source.data, casting="unsafe")
    return twin


# --- tolerances ------------------------------------------------------------------------------

def _terms_per_output(net, layer, values):
    """K for one layer: weights per output channel, else bottom elements per top element."""
    params = net.params[layer.name] if layer.name in net.params else []
    top = values[(layer.name, layer.tops[0])] if layer.tops else None
    if params and top is not None and top.ndim >= 2:
        return max(1, params[0].data.size // top.shape[1])
    bottom_size = sum(net.blobs[b].data.size for b in layer.bottoms)
    return max(1, math.ceil(bottom_size / max(top.size, 1))) if top is not None else 1


def rounding_bounds(net, layers, values):
    """R per (layer name, top) for float32: the per-layer bounds summed along the net."""
    bound_of_blob = {}
    bounds = {}
    for layer in layers:
        inherited = max((bound_of_blob.get(b, 0.0) for b in layer.bottoms), default=0.0)
        bound = inherited + default_rtol(np.float32, _terms_per_output(net, layer, values))
        for top in layer.tops:
            bounds[(layer.name, top)] = bound_of_blob[top] = bound
    return bounds


def relative_deviation(values32, values64):
    """D32 per (layer name, top); 0 for a blob that is all zeros in float64."""
    deviation = {}
    for key, exact in values64.items():
        finite = np.isfinite(exact) & np.isfinite(values32[key])   # inf and NaN: compared as such
        scale = float(np.max(np.abs(exact), initial=0.0, where=finite))
        with np.errstate(invalid="ignore"):   # inf - inf, masked out
            error = float(np.max(np.abs(values32[key] - exact), initial=0.0, where=finite))
        deviation[key] = error / scale if scale > 0 else 0.0
    return deviation


# Layers whose top errs from the exact one by no more than their bottoms do (element by element
# or selecting, and 1-Lipschitz): a port's rounding upstream reaches their top undiminished, at
# the bottoms' scale, which may be far above the top's own (a ReLU that keeps only the small
# positive outputs of an InnerProduct whose negative ones are large).
_ERROR_PASSING = ("Pooling", "Split", "Flatten", "Reshape", "Concat", "Slice", "Crop", "Dropout",
                  "AbsVal", "TanH", "Sigmoid", "BNLL")


def _passes_errors(layer):
    if layer.type == "ReLU":
        return abs(layer.config.get("negative_slope", 0.0)) <= 1
    return layer.type in _ERROR_PASSING


def finite_max(values):
    """max|values| over the finite elements (0 for none)."""
    return float(np.max(np.abs(values), initial=0.0, where=np.isfinite(values)))


def error_scales(layers, values):
    """S per (layer name, top): max|blob| in float64, or, where the layer passes its bottoms'
    errors on (see above), the largest S of its bottoms when that is larger."""
    scale_of_blob, scales = {}, {}
    for layer in layers:
        inherited = max((scale_of_blob.get(b, 0.0) for b in layer.bottoms), default=0.0)
        for top in layer.tops:
            own = finite_max(values[(layer.name, top)])
            scale = max(own, inherited) if _passes_errors(layer) else own
            scales[(layer.name, top)] = scale_of_blob[top] = scale
    return scales


@dataclasses.dataclass(frozen=True)
class ToleranceRule:
    """The per-blob tolerance of fastconv.testing.net's docstring: R32 (``bounds``), D32
    (``deviation``) and S (``scales``)."""
    bounds: dict
    deviation: dict
    scales: dict

    def of(self, key, dtype, rtol, atol):
        """compare()'s rtol, atol and scale for one blob value: the rule, or the caller's
        rtol and atol (relative to the blob's own max|caffe64|)."""
        atol = 0.0 if atol is None else float(atol)
        if rtol is not None:
            return dict(rtol=float(rtol), atol=atol)
        ratio = unit_roundoff(dtype) / unit_roundoff(np.float32)
        rule = ratio * max(self.bounds[key], MEASURED_ERROR_FACTOR * self.deviation[key])
        return dict(rtol=rule, atol=atol, scale=self.scales[key])


def tolerance_rule(net, layers, values32, values64):
    """The ToleranceRule of a net from its float32 and float64 runs (layer by layer)."""
    return ToleranceRule(bounds=rounding_bounds(net, layers, values64),
                         deviation=relative_deviation(values32, values64),
                         scales=error_scales(layers, values64))

