"""Checking a whole ported Caffe model blob by blob: which layer of the port is wrong, and why.

:func:`check_net` runs the Caffe net (a float64 and a float32 copy of fastconv's
:class:`~fastconv.net.Net`) on the port's inputs, compares every blob the port provides in the
net's order and stops counting at the **first** blob that differs: it names the layer that wrote
it (name and type), gives the error figures and the worst element, and checks that layer alone
on its real inputs (the port's own input blobs where it gave them, else Caffe's) and weights:
Convolution with :func:`~fastconv.testing.check_conv`, Deconvolution with
:func:`~fastconv.testing.check_deconv`, Pooling with :func:`~fastconv.testing.check_pool`,
InnerProduct here (a 4-D bottom flattened in NHWC order, the weight matrix reshaped instead of
transposed, a missing bias). Every other layer (and an in-place chain such as conv + ReLU) is
re-run by the Net itself on those inputs, as Caffe has it and under the converter mistakes
measured against real Caffe (LRN's k ignored or alpha not divided by local_size, ReLU's
negative_slope or ELU's alpha dropped, Eltwise coefficients ignored, Softmax over the wrong
axis), and a layer that read an input before that input's in-place layers (a missing ReLU) is
named. So the porting mistake is named, or the layer is shown right on those inputs. Later
blobs that differ are listed as consequences of the first, not as more failures. Blobs the port
does not give are skipped (the report lists them; Caffe's Split copies aside).

Layouts: ``layout="caffe"``: every array as Caffe holds it (NCHW). ``layout="keras"``: 4-D
arrays are NHWC (the port's ``inputs`` too); arrays of any other rank are in Caffe's order.

In-place layers: after a forward, Caffe's blob holds the value after its last in-place layer
(``conv1`` after ``relu1``). A port that gives the value before it (Keras's Conv2D output
without the activation) matches that earlier value: the check accepts it, says so in the report,
and the next blob checks the in-place layer.

Tolerance rule, per blob (u: the unit roundoff of the port array's dtype, u32 float32's)::

    |port - caffe64| <= atol + rtol * max|caffe64|       (caffe64: the blob in float64)
    rtol = (u / u32) * max(R32, 4 * D32)
    R32  = sum over the layers on the blob's longest path of (3*sqrt(K) + 2) * u32
    D32  = max|caffe32 - caffe64| / max|caffe64|          (the net run in float32)

K is the length of a layer's dot products (weights per output channel; else bottom elements per
top element). R32 adds up fastconv.testing.compare's per-layer rounding bound along the net;
D32 is what float32 rounding did to this very blob in one real float32 run, times 4 for another
summation order or an amplifying layer. A planted porting mistake errs by tens of percent; a
correct float32 port (Keras/TensorFlow with oneDNN) stays well inside. ``rtol``/``atol`` given
explicitly replace the rule for every blob.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile

import numpy as np

from .compare import Comparison, compare, default_rtol, unit_roundoff
from .deconv import check_deconv
from .oracle import check_conv
from .pool import check_pool

LAYOUTS = ("caffe", "keras")
MEASURED_ERROR_FACTOR = 4   # another summation order may double or quadruple float32's error
ORACLE_TYPES = ("Convolution", "Deconvolution", "Pooling", "InnerProduct")


# --- the net as a graph ----------------------------------------------------------------------

def _writers(layers):
    """Blob name -> the layers that write it, in order (the producer, then in-place layers)."""
    writers = {}
    for layer in layers:
        for top in layer.tops:
            writers.setdefault(top, []).append(layer)
    return writers


# --- running the reference -------------------------------------------------------------------

def _run_layer_by_layer(net, inputs):
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


def _float_twin(net, dtype):
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


def _rounding_bounds(net, layers, values):
    """R per (layer name, top) for float32: the per-layer bounds summed along the net."""
    bound_of_blob = {}
    bounds = {}
    for layer in layers:
        inherited = max((bound_of_blob.get(b, 0.0) for b in layer.bottoms), default=0.0)
        bound = inherited + default_rtol(np.float32, _terms_per_output(net, layer, values))
        for top in layer.tops:
            bounds[(layer.name, top)] = bound_of_blob[top] = bound
    return bounds


def _relative_deviation(values32, values64):
    """D32 per (layer name, top); 0 for a blob that is all zeros in float64."""
    deviation = {}
    for key, exact in values64.items():
        scale = float(np.max(np.abs(exact), initial=0.0))
        error = float(np.max(np.abs(values32[key] - exact), initial=0.0))
        deviation[key] = error / scale if scale > 0 else 0.0
    return deviation


def _tolerance(bounds, deviation, key, dtype, rtol, atol):
    """(rtol, atol) for one blob value: the module docstring's rule, or the caller's."""
    atol = 0.0 if atol is None else float(atol)
    if rtol is not None:
        return float(rtol), atol
    ratio = unit_roundoff(dtype) / unit_roundoff(np.float32)
    return ratio * max(bounds[key], MEASURED_ERROR_FACTOR * deviation[key]), atol


# --- the report ------------------------------------------------------------------------------

def _summary(report):
    """``report.summary()``, with the worst element of a blob that is not 4-D given as a
    plain index (the Comparison names NCHW and NHWC positions, which only 4-D blobs have)."""
    if len(report.expected_shape) == 4 or report.worst_index is None:
        return report.summary()
    return (dataclasses.replace(report, worst_index=None).summary()
            + f"\nworst element: {list(report.worst_index)}: actual {report.worst_actual:.7g}, "
              f"expected {report.worst_expected:.7g}, allowed error {report.worst_allowed:.3g}")


@dataclasses.dataclass(frozen=True)
class BlobMismatch:
    """The first blob that differs: who wrote it, the comparison, and the layer's diagnosis."""

    blob: str
    layer: str
    layer_type: str
    in_place_after: tuple      # ((name, type), ...) in-place layers that overwrote the blob
    comparison: Comparison
    diagnosis: tuple           # lines

    def lines(self):
        writer = f"layer {self.layer!r} ({self.layer_type})"
        if self.in_place_after:
            chain = ", ".join(f"{name!r} ({kind})" for name, kind in self.in_place_after)
            writer += f", then in place {chain}"
        out = [f"first difference: blob {self.blob!r}, written by {writer}",
               "  " + _summary(self.comparison).replace("\n", "\n  ")]
        if self.comparison.shape_matches:
            out.append("  (S = max|expected| over the blob; rtol from float32 rounding along "
                       "the net: see fastconv.testing.net)")
        return out + ["  " + line.replace("\n", "\n  ") for line in self.diagnosis]


@dataclasses.dataclass(frozen=True)
class NetCheck:
    """The outcome of :func:`check_net`; ``bool(result)`` is the verdict."""

    passed: bool
    compared: tuple              # blob names compared, in the net's order
    not_provided: tuple          # the net's blobs the port did not give (split copies aside)
    first_mismatch: BlobMismatch | None
    consequences: tuple          # ((blob, Comparison), ...) after the first mismatch
    before_in_place: tuple       # ((blob, (in-place layer names...)), ...): port values
                                 # that matched the blob before those layers overwrote it
    layout: str

    def __bool__(self):
        return self.passed

    def summary(self):
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict}: {len(self.compared)} blob(s) compared in the net's order "
                 f"(layout={self.layout!r}): {', '.join(self.compared) or 'none'}"]
        if self.not_provided:
            lines.append(f"not in the port (skipped): {', '.join(self.not_provided)}")
        if self.before_in_place:
            before = ", ".join(f"{blob} (before {', '.join(layers)})"
                               for blob, layers in self.before_in_place)
            lines.append("note: compared as the value before the blob's in-place layers, which "
                         f"is what the port gave (Caffe's blob holds the value after them): "
                         f"{before}")
        if self.first_mismatch is not None:
            lines += self.first_mismatch.lines()
        if self.consequences:
            lines.append("later blobs differ too, as consequences (not counted as more failures): "
                         + ", ".join(f"{blob} (max rel error {c.max_rel_error:.2g})"
                                     if c.shape_matches else f"{blob} (shape {c.actual_shape} "
                                     f"vs {c.expected_shape})" for blob, c in self.consequences))
        return "\n".join(lines)

    __str__ = summary


# --- the check -------------------------------------------------------------------------------

def _to_caffe_order(array, layout, what):
    """A port's array in Caffe's order (NHWC 4-D arrays transposed for layout='keras')."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{what} must be a numeric array; got dtype {array.dtype}")
    if layout == "keras" and array.ndim == 4:
        return array.transpose(0, 3, 1, 2)
    return array


def _checked_names(actual, net, blobs):
    if not isinstance(actual, dict) and not hasattr(actual, "keys"):
        raise TypeError(f"actual must map blob names to arrays; got {type(actual).__name__}")
    unknown = sorted(set(actual) - set(net.blobs))
    if unknown:
        raise ValueError(f"actual names blob(s) the net does not have: {', '.join(unknown)}; "
                         f"the net's blobs are {', '.join(net.blobs)}")
    if blobs is None:
        return set(actual)
    missing = sorted(set(blobs) - set(actual))
    if missing:
        raise ValueError(f"blobs= asks for {', '.join(missing)}, which actual does not provide")
    return set(blobs)


def _checked_inputs(net, inputs, actual, layout):
    if inputs is None:
        inputs = {name: actual[name] for name in net.inputs if name in actual}
    missing = [name for name in net.inputs if name not in inputs]
    extra = sorted(set(inputs) - set(net.inputs))
    if missing or extra:
        raise ValueError(f"inputs must give exactly the net's inputs {list(net.inputs)}; "
                         f"missing {missing}, not inputs {extra}")
    checked = {}
    for name in net.inputs:
        value = np.asarray(_to_caffe_order(inputs[name], layout, f"inputs[{name!r}]"),
                           dtype=np.float64)
        declared = tuple(net.blobs[name].shape)
        if value.ndim != len(declared) or (value.ndim == 4 and value.shape[1] != declared[1]):
            where = "NHWC" if layout == "keras" else "NCHW"
            raise ValueError(f"inputs[{name!r}] has shape {np.shape(inputs[name])}, read as "
                             f"{where} (layout={layout!r}); the net declares {declared} (NCHW): "
                             "give NCHW arrays with layout='caffe', NHWC with layout='keras'")
        checked[name] = value
    return checked


def check_net(actual, net, inputs=None, *, layout="caffe", blobs=None, rtol=None, atol=None):
    """Compare a port's blobs with the Caffe net ``net``, blob by blob; return a :class:`NetCheck`.

    ``actual`` maps blob names (Caffe's) to the port's arrays; ``inputs`` maps the net's input
    names to the arrays the port ran on (default: taken from ``actual``). ``blobs`` restricts the
    comparison to those names. See the module docstring for layouts and the tolerance rule.
    ``net`` is not run (its blobs are left as they were): float32 and float64 copies are.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} must be 'caffe' (NCHW) or 'keras' (NHWC 4-D blobs)")
    wanted = _checked_names(actual, net, blobs)
    inputs = _checked_inputs(net, inputs, actual, layout)
    reference_net = _float_twin(net, np.float64)
    values64 = _run_layer_by_layer(reference_net, inputs)
    values32 = _run_layer_by_layer(_float_twin(net, np.float32), inputs)
    layers = reference_net.layers
    writers = _writers(layers)
    bounds = _rounding_bounds(reference_net, layers, values64)
    deviation = _relative_deviation(values32, values64)
    split_copies = {top for layer in layers if layer.type == "Split" for top in layer.tops}

    compared, before_in_place, consequences = [], [], []
    port = {}
    port_before_in_place = {}   # blob -> (the port's value, the in-place layers it precedes)
    first = None
    for blob in net.blobs:
        if blob not in wanted:
            continue
        compared.append(blob)
        value = _to_caffe_order(actual[blob], layout, f"actual[{blob!r}]")
        chain = writers[blob]
        key = (chain[-1].name, blob)
        tol = _tolerance(bounds, deviation, key, value.dtype, rtol, atol)
        report = compare(value, values64[key], rtol=tol[0], atol=tol[1])
        if report.passed:
            port[blob] = value
            continue
        if first is not None:
            consequences.append((blob, report))
            continue
        overwriting = _matched_before_in_place(blob, value, chain, values64, bounds, deviation,
                                               rtol, atol)
        if overwriting is not None:
            before_in_place.append((blob, tuple(layer.name for layer in overwriting)))
            port_before_in_place[blob] = (value, overwriting)
            continue
        first = _first_mismatch(blob, value, report, chain, reference_net, writers, values64,
                                port, port_before_in_place, tol)
    not_provided = tuple(b for b in net.blobs if b not in wanted and b not in split_copies)
    return NetCheck(passed=first is None, compared=tuple(compared), not_provided=not_provided,
                    first_mismatch=first, consequences=tuple(consequences),
                    before_in_place=tuple(before_in_place), layout=layout)


def _names(layers):
    return ", ".join(f"{layer.name!r} ({layer.type})" for layer in layers)


def _matched_before_in_place(blob, value, chain, values64, bounds, deviation, rtol, atol):
    """The in-place layers of ``chain`` (the writers of ``blob``) that ``value`` comes before,
    when it matches ``blob`` as an earlier writer left it; else None."""
    for position, writer in enumerate(chain[:-1]):
        key = (writer.name, blob)
        tol = _tolerance(bounds, deviation, key, value.dtype, rtol, atol)
        if compare(value, values64[key], rtol=tol[0], atol=tol[1]).passed:
            return chain[position + 1:]
    return None


def _value_before(blob, layer, net, writers, values64):
    """Caffe's value of ``blob`` as ``layer`` read it (float64): after its last writer that
    runs before ``layer``."""
    position = {other.name: index for index, other in enumerate(net.layers)}
    earlier = [w for w in writers[blob] if position[w.name] < position[layer.name]]
    return values64[(earlier[-1].name, blob)]


def _layer_inputs(layer, blob, net, writers, values64, port):
    """The bottoms ``layer`` gets: the port's values where the port gave them (and they
    matched), else Caffe's; and the names taken from the port."""
    arrays, from_port = [], []
    for bottom in layer.bottoms:
        if bottom in port and bottom != blob:
            arrays.append(port[bottom])
            from_port.append(bottom)
        else:
            arrays.append(_value_before(bottom, layer, net, writers, values64))
    return arrays, from_port


def _first_mismatch(blob, value, report, chain, net, writers, values64, port,
                    port_before_in_place, tol):
    producer, tail = chain[0], chain[1:]
    bottoms, from_port = _layer_inputs(producer, blob, net, writers, values64, port)
    skipped = _in_place_skipped(blob, value, chain, net, writers, values64, port,
                                port_before_in_place, tol)
    checked = [producer]
    if skipped:
        lines, early = skipped
        from_port = early + from_port
    else:
        lines = _diagnose_layer(producer, value, bottoms, net, tail)
        if not lines or lines[-1].startswith(_NO_DIAGNOSIS):
            lines = _rerun_diagnosis(blob, value, chain, bottoms, tol, lines)
            checked = chain
    source = (f"the port's {', '.join(map(repr, from_port))}" if from_port
              else "Caffe's values of its input blob(s)")
    weights = " and the weights" if any(layer.name in net.params for layer in checked) else ""
    lines.insert(0, f"layer-level check of {_names(checked)} on {source}{weights}:")
    after = tuple((w.name, w.type) for w in tail)
    return BlobMismatch(blob=blob, layer=producer.name, layer_type=producer.type,
                        in_place_after=after, comparison=report, diagnosis=tuple(lines))


@dataclasses.dataclass(frozen=True)
class _ParameterMistake:
    """A porting mistake on a layer fastconv has no oracle for, as a change to the layer's
    Caffe parameters: the Net re-runs the layer with ``change`` applied to a copy of them."""

    layer_type: str
    description: str
    fix: str
    applies: object     # (LayerParameter, bottom rank) -> bool: the change makes a difference
    change: object      # (LayerParameter copy) -> None


def _set(message, field, value):
    setattr(message, field, value)


# Mistakes measured in converters (OpenCV 4.x, caffe2onnx, MMdnn) against real Caffe.
_PARAMETER_MISTAKES = (
    _ParameterMistake(
        "LRN", "LRN's k ignored (computed with k = 1, as OpenCV 4.x does)",
        "scale = k + alpha/local_size * sum(x^2) with lrn_param.k (default 1)",
        lambda p, rank: p.lrn_param.norm_region == 0 and p.lrn_param.k != 1,
        lambda p: _set(p.lrn_param, "k", 1.0)),
    _ParameterMistake(
        "LRN", "LRN's alpha not divided by local_size",
        "scale = k + (alpha / local_size) * sum(x^2) (TensorFlow's local_response_normalization "
        "takes that quotient as its alpha)",
        lambda p, rank: p.lrn_param.local_size > 1,
        lambda p: _set(p.lrn_param, "alpha", p.lrn_param.alpha * p.lrn_param.local_size)),
    _ParameterMistake(
        "LRN", "LRN normalized over the other region (ACROSS_CHANNELS and WITHIN_CHANNEL "
        "swapped)",
        "follow lrn_param.norm_region: ACROSS_CHANNELS sums x^2 over local_size channels, "
        "WITHIN_CHANNEL over a local_size x local_size window of the channel",
        lambda p, rank: True,
        lambda p: _set(p.lrn_param, "norm_region", 1 - p.lrn_param.norm_region)),
    _ParameterMistake(
        "ReLU", "ReLU's negative_slope dropped (a plain ReLU)",
        "keras.layers.ReLU(negative_slope=...) / LeakyReLU with Caffe's relu_param.negative_slope",
        lambda p, rank: p.relu_param.negative_slope != 0,
        lambda p: _set(p.relu_param, "negative_slope", 0.0)),
    _ParameterMistake(
        "ELU", "ELU's alpha dropped (alpha = 1)", "pass elu_param.alpha on",
        lambda p, rank: p.elu_param.alpha != 1,
        lambda p: _set(p.elu_param, "alpha", 1.0)),
    _ParameterMistake(
        "Eltwise", "Eltwise SUM coefficients ignored (a plain sum)",
        "y = sum_i coeff_i * x_i with eltwise_param.coeff",
        lambda p, rank: p.eltwise_param.operation == 1 and any(c != 1 for c in
                                                                 p.eltwise_param.coeff),
        lambda p: p.eltwise_param.ClearField("coeff")),
    _ParameterMistake(
        "Softmax", "Softmax over the last axis instead of Caffe's softmax_param.axis (on a 4-D "
        "NCHW blob: over the width instead of the channels)",
        "softmax over Caffe's axis (default 1, the channels: axis=-1 on NHWC data)",
        lambda p, rank: p.softmax_param.axis % rank != rank - 1,
        lambda p: _set(p.softmax_param, "axis", -1)),
)


def _mistaken(layer, mistake, bottom_shapes):
    """``layer`` rebuilt with ``mistake``'s parameter change, sharing its weights."""
    from ..net import LAYER_TYPES

    param = type(layer.layer_param)()
    param.CopyFrom(layer.layer_param)
    mistake.change(param)
    changed = LAYER_TYPES[layer.type](param, layer.dtype)
    changed.setup(bottom_shapes)
    changed.blobs = layer.blobs
    return changed


def _run_chain(layers, blob, bottoms):
    """``blob`` as the producer ``layers[0]`` and then its in-place layers compute it."""
    output = layers[0].forward(*bottoms)[layers[0].tops.index(blob)]
    for in_place in layers[1:]:
        output = in_place.forward(output)[0]
    return output


def _rerun_diagnosis(blob, value, chain, bottoms, tol, oracle_lines):
    """Re-run ``blob``'s layers (the Net's own) on the port's inputs, as Caffe has them and
    under each parameter mistake of _PARAMETER_MISTAKES; lines saying what reproduces
    ``value``, or what was tried (after the oracle's lines, if any)."""
    def evidence(layers):
        return compare(value, _run_chain(layers, blob, bottoms), rtol=tol[0], atol=tol[1])

    if evidence(chain).passed:
        return [f"{_names(chain)} reproduce(s) the port's value on these inputs: their own "
                "arithmetic is right; the difference built up from smaller ones upstream"]
    shapes = [np.shape(b) for b in bottoms]
    tried = []
    for position, layer in enumerate(chain):
        layer_shapes = shapes if position == 0 else [np.shape(value)]
        for mistake in _PARAMETER_MISTAKES:
            if mistake.layer_type != layer.type or not mistake.applies(layer.layer_param,
                                                                       len(layer_shapes[0])):
                continue
            tried.append(mistake.description)
            changed = list(chain)
            changed[position] = _mistaken(layer, mistake, layer_shapes)
            found = evidence(changed)
            if found.passed:
                return [f"diagnosis: {layer.name!r}: {mistake.description} (re-running the "
                        "Net's layer with this mistake reproduces the port's value: max rel "
                        f"error {found.max_rel_error:.2g})\n  fix: {mistake.fix}"]
    if oracle_lines:
        return oracle_lines + ([f"note: Caffe's {blob!r} holds the value after the in-place "
                                f"{_names(chain[1:])}, and the oracle re-runs layer "
                                f"{chain[0].name!r} alone: give the port's output of that "
                                f"layer (before the in-place layers) under the name {blob!r} "
                                "to have the mistake named"]
                               if len(chain) > 1 and chain[0].type != "InnerProduct" else [])
    types = ", ".join(sorted({layer.type for layer in chain}))
    what = "; ".join(tried) if tried else f"nothing: fastconv knows no porting mistakes of {types}"
    return [f"{_NO_DIAGNOSIS} (tried {what}); re-running {_names(chain)} on these inputs "
            "gives Caffe's values, so the port computes something else there"]


def _in_place_skipped(blob, value, chain, net, writers, values64, port, port_before_in_place,
                      tol):
    """(diagnosis lines, the inputs concerned) when the port's layer read an input before that
    input's in-place layers (a port without Caffe's in-place ReLU, say): the producer of
    ``blob`` re-run by the Net on the port's earlier values (then ``blob``'s own in-place
    layers) reproduces ``value``; else None."""
    producer = chain[0]
    early = [bottom for bottom in producer.bottoms if bottom in port_before_in_place]
    if not early:
        return None
    bottoms, _ = _layer_inputs(producer, blob, net, writers, values64, port)
    bottoms = [port_before_in_place[b][0] if b in port_before_in_place else array
               for b, array in zip(producer.bottoms, bottoms)]
    output = producer.forward(*bottoms)[producer.tops.index(blob)]
    for in_place in chain[1:]:
        output = in_place.forward(output)[0]
    evidence = compare(value, output, rtol=tol[0], atol=tol[1])
    if not evidence.passed:
        return None
    skipped = [layer for b in early for layer in port_before_in_place[b][1]]
    return [f"diagnosis: the port's {producer.name!r} read {', '.join(map(repr, early))} "
            f"before the in-place {_names(skipped)}: re-running {producer.name!r} on those "
            f"values reproduces the port's {blob!r} (max rel error "
            f"{evidence.max_rel_error:.2g})\n  fix: apply {_names(skipped)} to "
            f"{', '.join(map(repr, early))} before {producer.name!r} (Caffe's in-place layers "
            "change the blob every later layer reads)"], early


def _diagnose_layer(layer, value, bottoms, net, tail):
    """Diagnosis lines from fastconv's oracle for ``layer``, given its real inputs; ``tail``:
    the in-place layers (Net layers) applied after it, which only InnerProduct's own check
    re-runs (the convolution family's oracles compare with the layer's output alone)."""
    if not bottoms:
        return [f"{layer.name!r} is an input: the port's value differs from the array given in "
                "inputs (which the net ran on)"]
    x = bottoms[0]
    if layer.type not in ORACLE_TYPES or (layer.type != "InnerProduct" and x.ndim != 4):
        return []
    weights = [np.array(blob.data, dtype=np.float64) for blob in net.params[layer.name]] \
        if layer.name in net.params else []
    bias = weights[1] if len(weights) > 1 else None
    settings = _oracle_settings(net, layer)
    if layer.type == "Convolution":
        report, diagnoses = check_conv(value, x, weights[0], bias, **settings)
        tried = ("kernel/data/output layouts, flips, padding rules, groups, stride/dilation/"
                 "bias slips, TF32")
    elif layer.type == "Deconvolution":
        report, diagnoses = check_deconv(value, x, weights[0], bias, **settings)
        tried = ("uncropped/misplaced/'same' padding, dropped dilation, flipped kernel, "
                 "swapped blob axes, missing bias, swapped h/w parameters")
    elif layer.type == "InnerProduct":
        if settings["axis"] not in (1, 1 - x.ndim):   # the checks below flatten from axis 1
            return []
        return _diagnose_inner_product(layer, value, x, weights, settings["transpose"], tail)
    else:
        report, diagnoses = check_pool(value, x, **settings)
        tried = ("output size rounding, last-window clip, padding in MAX and the AVE divisor, "
                 "Keras 'same', default strides, layouts")
    if report.passed:
        return [_RIGHT_ON_THESE_INPUTS.format(layer=layer.name)]
    if not diagnoses:
        return [f"{_NO_DIAGNOSIS} (tried {tried})"]
    others = [d.mistake.description for d in diagnoses[1:]]
    return ["diagnosis: " + str(diagnoses[0])] + (
        ["  also reproduced by: " + "; ".join(others)] if others else [])


_NO_DIAGNOSIS = "diagnosis: no single known porting mistake reproduces the port's value"


def _oracle_settings(net, layer):
    """The oracle's keyword arguments for ``layer``: its parameters as the Net resolved them
    (``layer.config``, Caffe's rules for the single, per-axis and _h/_w forms)."""
    config = net.layer_dict[layer.name].config
    if layer.type in ("Convolution", "Deconvolution"):
        return {name: config[name] for name in ("stride", "pad", "dilation", "group")}
    if layer.type == "Pooling":
        if config["global_pooling"]:
            return dict(kernel_size=None, global_pooling=True, method=config["method"])
        return dict(kernel_size=config["kernel"], stride=config["stride"], pad=config["pad"],
                    method=config["method"])
    return dict(transpose=config["transpose"], axis=config["axis"])


_RIGHT_ON_THESE_INPUTS = ("{layer!r} reproduces Caffe on these inputs: its own arithmetic is "
                          "right; the difference built up from smaller ones upstream")


def _inner_product(x, kernel, bias):
    """Caffe's InnerProduct (axis 1) in float64: flatten x from axis 1, times kernel (K, O)."""
    y = x.reshape(x.shape[0], -1) @ kernel
    return y if bias is None else y + bias


def _diagnose_inner_product(layer, value, x, weights, transpose, tail):
    """InnerProduct's port mistakes: a 4-D bottom flattened in NHWC order, the weight matrix
    reshaped instead of transposed, a missing bias; each re-run goes through the in-place
    ``tail`` as the port's value did."""
    kernel = weights[0] if transpose else weights[0].T     # (K, num_output)
    bias = weights[1] if len(weights) > 1 else None

    def reproduces(x_used, kernel_used, bias_used):
        expected = _inner_product(x_used, kernel_used, bias_used)
        for in_place in tail:
            expected = in_place.forward(expected)[0]
        scale = _inner_product(np.abs(x_used), np.abs(kernel_used),
                               None if bias_used is None else np.abs(bias_used))
        return compare(value, expected, scale=scale, kernel_dim=kernel.shape[0])

    if reproduces(x, kernel, bias).passed:
        return [_RIGHT_ON_THESE_INPUTS.format(layer=layer.name)]
    mistakes = []
    if x.ndim == 4:
        mistakes.append((
            "bottom flattened in NHWC order (Keras Flatten on channels_last data); Caffe "
            "flattens NCHW, channel-major",
            "keras.layers.Permute((3, 1, 2)) before Flatten, or reorder the Dense kernel's rows: "
            "kernel.reshape(C, H, W, -1).transpose(1, 2, 0, 3).reshape(C*H*W, -1)",
            x.transpose(0, 2, 3, 1), kernel, bias))
    if not transpose and min(kernel.shape) > 1:
        mistakes.append((
            "weight matrix reshaped instead of transposed (Caffe (num_output, K) -> Keras "
            "Dense (K, num_output))",
            "kernel = w.T, not w.reshape(K, num_output)",
            x, weights[0].reshape(kernel.shape), bias))
    if bias is not None and np.any(bias != 0):
        mistakes.append(("bias missing (the layer ran without its bias)",
                         "load the bias blob too (Dense(use_bias=True) and set its weights)",
                         x, kernel, None))
    for description, fix, *changed in mistakes:
        evidence = reproduces(*changed)
        if evidence.passed:
            return [f"diagnosis: {description} (re-running the reference with this mistake "
                    f"reproduces actual: max rel error {evidence.max_rel_error:.2g})"
                    f"\n  fix: {fix}"]
    return [f"{_NO_DIAGNOSIS} (tried NHWC flatten order, reshaped weight matrix, missing bias)"]


def assert_net_close(actual, net, inputs=None, *, layout="caffe", blobs=None, rtol=None,
                     atol=None):
    """Assert that the port's blobs ``actual`` match the Caffe net ``net`` run on ``inputs``.

    Arguments as :func:`check_net`. On failure the AssertionError names the first blob that
    differs, the layer that wrote it (name and type), the error figures and worst element, the
    layer-level diagnosis (the porting mistake that reproduces the port's value, with its fix),
    and the later blobs that differ as its consequences. Returns the :class:`NetCheck`.
    """
    result = check_net(actual, net, inputs, layout=layout, blobs=blobs, rtol=rtol, atol=atol)
    if not result:
        raise AssertionError(str(result))
    return result
