"""The oracle for Caffe's Deconvolution: the reference, the comparison, and the diagnosis.

Converters get Deconvolution wrong in their own ways: Caffe's ``pad`` is a crop of the full
transposed convolution, taken equally from every side; Keras's ``Conv2DTranspose`` crops as
TensorFlow pads ("same": the odd cell at the bottom/right), or not at all ("valid"); a crop of
``2*pad`` from one side gives the right shape and shifted values; Caffe's Deconvolution blob is
``(C_in, num_output/group, kh, kw)``, the transpose of a Convolution blob's first two axes; and
dilation gets dropped. :func:`assert_deconv_close` compares an output with fastconv's reference
and, on a mismatch, re-runs the reference under each of those mistakes and names the one whose
output reproduces ``actual`` (never on resemblance alone).

Arguments are Caffe's (NCHW data, the Deconvolution blob, ``stride``, ``pad``, ``dilation``,
``group``); transpose Keras/PyTorch data and kernels first (``fastconv.nhwc_to_nchw``, and
``kernel.transpose(3, 2, 0, 1)`` for a Keras ``Conv2DTranspose`` kernel).

Tolerance per element: ``atol + rtol * S`` with ``S`` the deconvolution of ``|x|`` by ``|w|``
plus ``|b|`` and ``rtol = (3*sqrt(K) + 2) * u``, K = C_in/group * kh * kw (an upper bound on the
terms one output sums), as for convolutions (fastconv.testing.compare).
"""
from __future__ import annotations

import numpy as np

from .._params.common import as_pair
from ..caffe import deconv2d_caffe
from ..keras_ops import conv2d_transpose_keras
from ..layout import nchw_to_nhwc, nhwc_to_nchw
from .compare import compare, default_rtol
from .diagnosis import Diagnosis, Mistake, diagnosis_lines

_CROP_FIX = ("crop pad_h/pad_w from every side: Conv2DTranspose(padding='valid') then "
             "keras.layers.Cropping2D(((pad_h, pad_h), (pad_w, pad_w))) "
             "(fastconv.keras.from_caffe(..., layer_type='Deconvolution') builds it)")


def _params(stride, pad, dilation, group):
    return dict(stride=as_pair(stride, "stride", "stride"), pad=as_pair(pad, "pad", "pad"),
                dilation=as_pair(dilation, "dilation", "dilation"), group=group)


def _f64(array):
    return None if array is None else np.asarray(array, dtype=np.float64)


def deconv_reference(x, w, b=None, *, stride=1, pad=0, dilation=1, group=1):
    """fastconv's float64 output of Caffe's Deconvolution (NCHW; w ``(C_in, O/group, kh, kw)``)."""
    return deconv2d_caffe(_f64(x), _f64(w), _f64(b), stride=stride, pad=pad, dilation=dilation,
                          group=group)


def _magnitude(x, w, b, params):
    """S per output element: the deconvolution of |x| by |w|, plus |b|."""
    return deconv2d_caffe(np.abs(_f64(x)), np.abs(_f64(w)), None if b is None else np.abs(_f64(b)),
                          **params)


def _kernel_dim(w, group):
    c_in, _, kernel_h, kernel_w = np.shape(w)
    return c_in // group * kernel_h * kernel_w


def _crop(full, top, left, height, width):
    return full[:, :, top:top + height, left:left + width]


def _mistaken_outputs(x, w, b, params):
    """(Mistake, output, magnitude) for each mistake that changes this call."""
    (pad_h, pad_w), (dil_h, dil_w) = params["pad"], params["dilation"]
    group = params["group"]

    def run(xx=x, ww=w, bb=b, **changes):
        changed = dict(params, **changes)
        return deconv_reference(xx, ww, bb, **changed), _magnitude(xx, ww, bb, changed)

    if pad_h or pad_w:
        full, full_scale = run(pad=(0, 0))
        height, width = full.shape[2] - 2 * pad_h, full.shape[3] - 2 * pad_w
        yield (Mistake("deconv_pad_not_cropped",
                       f"Caffe's pad={_show(params['pad'])} not cropped (a transposed "
                       "convolution with padding='valid' and no Cropping2D: the output is "
                       "2*pad larger)", _CROP_FIX), full, full_scale)
        for name, top, left, where in (
                ("deconv_crop_at_top_left", 2 * pad_h, 2 * pad_w, "top/left"),
                ("deconv_crop_at_bottom_right", 0, 0, "bottom/right")):
            yield (Mistake(name, f"Caffe's pad cropped as 2*pad from the {where} only instead "
                                 "of pad from every side (output shifted by pad)", _CROP_FIX),
                   _crop(full, top, left, height, width), _crop(full_scale, top, left, height,
                                                               width))
        keras_same = _keras_same(x, w, b, params) if group == 1 else None  # no Keras groups
        if keras_same is not None:
            yield keras_same
    if (dil_h, dil_w) != (1, 1):
        yield (Mistake("deconv_dilation_dropped",
                       f"dilation {_show(params['dilation'])} dropped (ran with 1)",
                       "pass the dilation on: Conv2DTranspose(dilation_rate=...), "
                       "conv_transpose2d(dilation=...)"), *run(dilation=(1, 1)))
    yield (Mistake("deconv_kernel_flipped", "kernel spatially flipped (w[:, :, ::-1, ::-1])",
                   "do not flip: Caffe's Deconvolution uses the blob as stored "
                   "(it is the adjoint of a Convolution with the same blob)"),
           *run(ww=np.asarray(w)[:, :, ::-1, ::-1]))
    c_in, per_group, _, _ = np.shape(w)
    if group == 1 and c_in == per_group:
        yield (Mistake("deconv_blob_axes_swapped",
                       "blob read as (num_output, C_in, kh, kw), a Convolution's order, "
                       "instead of Deconvolution's (C_in, num_output, kh, kw)",
                       "Caffe Deconvolution w -> Keras Conv2DTranspose kernel: "
                       "w.transpose(2, 3, 1, 0) (filters third); PyTorch conv_transpose2d "
                       "takes w as it is"), *run(ww=np.asarray(w).transpose(1, 0, 2, 3)))
    if b is not None and np.any(np.asarray(b) != 0):
        yield (Mistake("bias_missing", "bias missing (the layer ran without its bias)",
                       "load the bias blob (Conv2DTranspose(use_bias=True) and set its "
                       "weights)"), *run(bb=None))
    for name, key in (("deconv_stride_hw_swapped", "stride"), ("deconv_pad_hw_swapped", "pad")):
        value = params[key]
        if value[0] != value[1]:
            try:
                yield (Mistake(name, f"{key} h and w swapped (used {value[::-1]})",
                               f"{key}=(h, w): Caffe's {key}_h is the first"),
                       *run(**{key: value[::-1]}))
            except ValueError:   # the swapped geometry has no output
                pass


def _keras_same(x, w, b, params):
    """Keras Conv2DTranspose(padding='same') on the same weights, back in NCHW."""
    kernel = np.asarray(w, np.float64).transpose(2, 3, 1, 0)
    strides, dilation = params["stride"], params["dilation"]
    mistake = Mistake("deconv_keras_same_for_caffe_pad",
                      f"Keras Conv2DTranspose(padding='same') used for Caffe's "
                      f"pad={_show(params['pad'])} ('same' gives in*stride and crops the odd "
                      "cell at the bottom/right)", _CROP_FIX)
    try:
        same = nhwc_to_nchw(conv2d_transpose_keras(nchw_to_nhwc(_f64(x)), kernel, _f64(b),
                                                   strides=strides, padding="same",
                                                   dilation_rate=dilation))
        scale = nhwc_to_nchw(conv2d_transpose_keras(
            nchw_to_nhwc(np.abs(_f64(x))), np.abs(kernel), None if b is None else np.abs(_f64(b)),
            strides=strides, padding="same", dilation_rate=dilation))
    except ValueError:   # TensorFlow refuses this 'same' geometry: not a mistake anyone made
        return None
    return mistake, same, scale


def _show(pair):
    return pair[0] if pair[0] == pair[1] else tuple(pair)


def check_deconv(actual, x, w, b=None, *, stride=1, pad=0, dilation=1, group=1, rtol=None,
                 atol=None, diagnosis=True):
    """Compare ``actual`` with the Deconvolution reference; ``(Comparison, [Diagnosis, ...])``."""
    params = _params(stride, pad, dilation, group)
    actual = np.asarray(actual)
    expected = deconv_reference(x, w, b, **params)
    kernel_dim = _kernel_dim(w, group)
    if rtol is None:
        rtol = default_rtol(actual.dtype, kernel_dim)
    report = compare(actual, expected, rtol=rtol, atol=atol, scale=_magnitude(x, w, b, params),
                     kernel_dim=kernel_dim)
    if report.passed or not diagnosis:
        return report, []
    found = []
    for mistake, output, scale in _mistaken_outputs(x, w, b, params):
        if output.shape != actual.shape:
            continue
        evidence = compare(actual, output, rtol=rtol, atol=atol, scale=scale,
                           kernel_dim=kernel_dim)
        if evidence.passed:
            found.append(Diagnosis(mistake, evidence))
    found.sort(key=lambda d: d.evidence.max_rel_error)
    return report, found


def assert_deconv_close(actual, x, w, b=None, *, stride=1, pad=0, dilation=1, group=1,
                        rtol=None, atol=None):
    """Assert ``actual`` is Caffe's Deconvolution of ``x`` by ``w`` (+ ``b``); explain it if not.

    On failure the AssertionError gives the errors (or the shape mismatch), the worst element,
    the mismatch count, and the porting mistake that reproduces ``actual`` with its fix.
    """
    report, diagnoses = check_deconv(actual, x, w, b, stride=stride, pad=pad, dilation=dilation,
                                     group=group, rtol=rtol, atol=atol)
    if report.passed:
        return report
    lines = ["deconvolution output differs from fastconv's reference (Caffe Deconvolution, NCHW)",
             "  " + report.summary().replace("\n", "\n  ")]
    lines += diagnosis_lines(diagnoses, "uncropped/misplaced/'same' padding, dropped dilation, "
                                        "flipped kernel, swapped blob axes, missing bias, "
                                        "swapped h/w parameters")
    raise AssertionError("\n".join(lines))
