"""Checking a whole ported Caffe model blob by blob: which layer of the port is wrong, and why.

:func:`check_net` runs the Caffe net (a float64 and a float32 copy of fastconv's
:class:`~fastconv.net.Net`) on the port's inputs, compares every blob the port provides in the
net's order and stops counting at the **first** blob that differs: it names the layer that wrote
it (name and type), gives the error figures and the worst element, and checks that layer alone
on its real inputs (the port's own input blobs where it gave them, else Caffe's) and weights:
Convolution with :func:`~fastconv.testing.check_conv`, Deconvolution with
:func:`~fastconv.testing.check_deconv`, Pooling with :func:`~fastconv.testing.check_pool`,
InnerProduct in fastconv.testing.net_diagnosis (a 4-D bottom flattened in NHWC order, the
weight matrix reshaped instead of transposed, a missing bias). Every other layer (and an
in-place chain such as conv + ReLU) is re-run by the Net itself on those inputs, as Caffe has
it and under the converter mistakes measured against real Caffe (LRN's k ignored or alpha not
divided by local_size, ReLU's negative_slope or ELU's alpha dropped, Eltwise coefficients
ignored, Softmax over the wrong axis), and a layer that read an input before that input's in-place layers (a missing ReLU) is
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

    |port - caffe64| <= atol + rtol * S                  (caffe64: the blob in float64)
    rtol = (u / u32) * max(R32, 4 * D32)
    S    = max|caffe64|, or the largest S of the layer's bottoms where the layer passes its
           bottoms' errors on undiminished and that is larger (ReLU, pooling, Split, Concat,
           Slice, Crop, Flatten, Reshape, Dropout, AbsVal, TanH, Sigmoid, BNLL)
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

from __future__ import annotations

import dataclasses

import numpy as np

from .compare import Comparison, compare
from .net_diagnosis import diagnose_mismatch
from .net_reference import blob_writers, float_twin, run_layer_by_layer, tolerance_rule

LAYOUTS = ("caffe", "keras")


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
            out.append("  (S = max|expected| over the blob, or its bottoms' where the layer passes "
                       "their errors on; rtol from float32 rounding along the net: see "
                       "fastconv.testing.net)")
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
    reference_net = float_twin(net, np.float64)
    values64 = run_layer_by_layer(reference_net, inputs)
    values32 = run_layer_by_layer(float_twin(net, np.float32), inputs)
    layers = reference_net.layers
    writers = blob_writers(layers)
    rule = tolerance_rule(reference_net, layers, values32, values64)
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
        tol = rule.of(key, value.dtype, rtol, atol)
        report = compare(value, values64[key], **tol)
        if report.passed:
            port[blob] = value
            continue
        if first is not None:
            consequences.append((blob, report))
            continue
        overwriting = _matched_before_in_place(blob, value, chain, values64, rule, rtol, atol)
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


def _matched_before_in_place(blob, value, chain, values64, rule, rtol, atol):
    """The in-place layers of ``chain`` (the writers of ``blob``) that ``value`` comes before,
    when it matches ``blob`` as an earlier writer left it; else None."""
    for position, writer in enumerate(chain[:-1]):
        key = (writer.name, blob)
        tol = rule.of(key, value.dtype, rtol, atol)
        if compare(value, values64[key], **tol).passed:
            return chain[position + 1:]
    return None


def _first_mismatch(blob, value, report, chain, net, writers, values64, port,
                    port_before_in_place, tol):
    lines = diagnose_mismatch(blob, value, chain, net, writers, values64, port,
                              port_before_in_place, tol)
    after = tuple((w.name, w.type) for w in chain[1:])
    return BlobMismatch(blob=blob, layer=chain[0].name, layer_type=chain[0].type,
                        in_place_after=after, comparison=report, diagnosis=tuple(lines))


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
