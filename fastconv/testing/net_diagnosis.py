"""The layer-level diagnoses of fastconv.testing.net: the layer that wrote the first blob that
differs, checked alone on its real inputs (fastconv's oracles for Convolution, Deconvolution and
Pooling; InnerProduct's port mistakes here; every other layer re-run by the Net under the
parameter mistakes measured in converters), and a port that skipped an in-place layer."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .compare import compare
from .deconv import check_deconv
from .oracle import check_conv
from .pool import check_pool

ORACLE_TYPES = ("Convolution", "Deconvolution", "Pooling", "InnerProduct")


def _names(layers):
    return ", ".join(f"{layer.name!r} ({layer.type})" for layer in layers)


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


def diagnose_mismatch(blob, value, chain, net, writers, values64, port, port_before_in_place,
                      tol):
    """Lines for the first blob that differs: which layers were re-run on which inputs, then
    the porting mistake that reproduces the port's ``value`` (or what was tried)."""
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
    return lines


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


def _through_tail(tail, output):
    """``output`` after the in-place layers ``tail`` (the Net's own layers), in order."""
    for in_place in tail:
        output = in_place.forward(output)[0]
    return output


def _run_chain(layers, blob, bottoms):
    """``blob`` as the producer ``layers[0]`` and then its in-place layers compute it."""
    return _through_tail(layers[1:], layers[0].forward(*bottoms)[layers[0].tops.index(blob)])


def _rerun_diagnosis(blob, value, chain, bottoms, tol, oracle_lines):
    """Re-run ``blob``'s layers (the Net's own) on the port's inputs, as Caffe has them and
    under each parameter mistake of _PARAMETER_MISTAKES; lines saying what reproduces
    ``value``, or what was tried (after the oracle's lines, if any)."""
    def evidence(layers):
        return compare(value, _run_chain(layers, blob, bottoms), **tol)

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
        return oracle_lines
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
    evidence = compare(value, _run_chain(chain, blob, bottoms), **tol)
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
    the in-place layers (Net layers) Caffe applies after it. The port's value may be the
    layer's output before them (a Keras Conv2D and a separate ReLU layer) or after them (the
    value Caffe's blob holds: ``Conv2D(activation='relu')``): the oracle takes it as the
    former first and, when that names nothing, as the latter (its ``after=``)."""
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
        oracle = functools.partial(check_conv, value, x, weights[0], bias, **settings)
        tried = ("kernel/data/output layouts, flips, padding rules, groups, stride/dilation/"
                 "bias slips, TF32")
    elif layer.type == "Deconvolution":
        oracle = functools.partial(check_deconv, value, x, weights[0], bias, **settings)
        tried = ("uncropped/misplaced/'same' padding, dropped dilation, flipped kernel, "
                 "swapped blob axes, missing bias, swapped h/w parameters")
    elif layer.type == "InnerProduct":
        if settings["axis"] not in (1, 1 - x.ndim):   # the checks below flatten from axis 1
            return []
        return _diagnose_inner_product(layer, value, x, weights, settings["transpose"], tail)
    else:
        oracle = functools.partial(check_pool, value, x, **settings)
        tried = ("output size rounding, last-window clip, padding in MAX and the AVE divisor, "
                 "Keras 'same', default strides, layouts")
    verdict, taken = oracle(), ""
    if not verdict and not verdict.diagnoses and tail:
        after_tail = oracle(after=functools.partial(_through_tail, tail))
        if after_tail or after_tail.diagnoses:
            verdict = after_tail
            taken = (f" (the port's value taken as {layer.name!r}'s output after the in-place "
                     f"{_names(tail)}, as Caffe's blob holds it)")
    if verdict:
        return [_RIGHT_ON_THESE_INPUTS.format(layer=layer.name) + taken]
    if not verdict.diagnoses:
        tried += f", each also followed by the in-place {_names(tail)}" if tail else ""
        return [f"{_NO_DIAGNOSIS} (tried {tried})"]
    first, *others = verdict.diagnoses
    return [f"diagnosis{taken}: {first}"] + (
        ["  also reproduced by: " + "; ".join(d.mistake.description for d in others)]
        if others else [])


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
        expected = _through_tail(tail, _inner_product(x_used, kernel_used, bias_used))
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

