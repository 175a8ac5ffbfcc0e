"""The oracle for Caffe's Deconvolution: the reference, the comparison, and the diagnosis.

Converters get Deconvolution wrong in their own ways: Caffe's ``pad`` is a crop of the full
transposed convolution, taken equally from every side; Keras's ``Conv2DTranspose`` crops as
TensorFlow pads ("same": the odd cell at the bottom/right), or not at all ("valid"); a crop of
``2*pad`` from one side gives the right shape and shifted values; Caffe's Deconvolution blob is
``(C_in, num_output/group, kh, kw)``, the transpose of a Convolution blob's first two axes; and
dilation gets dropped. :func:`assert_deconv_close` compares an output with fastconv's reference
and, on a mismatch, re-runs the reference under each of those mistakes (and pairs of them) and
names the one whose output reproduces ``actual`` (never on resemblance alone).

Arguments are Caffe's (NCHW data, the Deconvolution blob, ``stride``, ``pad``, ``dilation``,
``group``); transpose Keras/PyTorch data and kernels first (``fastconv.nhwc_to_nchw``, and
``kernel.transpose(3, 2, 0, 1)`` for a Keras ``Conv2DTranspose`` kernel).

Tolerance per element: ``atol + rtol * S`` with ``S`` the deconvolution of ``|x|`` by ``|w|``
plus ``|b|`` and ``rtol = (3*sqrt(K) + 2) * u``, K = C_in/group * kh * kw (an upper bound on the
terms one output sums), as for convolutions (fastconv.testing.compare); NaN must match NaN and
an infinity the same infinity.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

# The lower modules this oracle uses (public names only; re-pointed when they move).
from .._params.common import as_pair, extent, format_pair
from ..caffe_ops import deconv2d_caffe
from .compare import default_rtol
from .diagnosis import Change, Mistake, bias_missing_change, layout_changes
from .diagnosis import check, tf32_changes

_CROP_FIX = ("crop pad_h/pad_w from every side: Conv2DTranspose(padding='valid') then "
             "keras.layers.Cropping2D(((pad_h, pad_h), (pad_w, pad_w))) "
             "(fastconv.keras.from_caffe(..., layer_type='Deconvolution') builds it)")


def _f64(array):
    return None if array is None else np.ascontiguousarray(array, dtype=np.float64)


@dataclass(frozen=True)
class DeconvProblem:
    """x (N, C_in, H, W), w (C_in, O/group, kh, kw), b (O,) or None, all float64, and Caffe's
    parameters. ``crop`` is how the full transposed convolution was cut to the output: None
    for Caffe's ``pad`` from every side, else ``((top, height), (left, width))``, with zeros
    (plus the bias) where that window runs past the full output."""

    x: np.ndarray
    w: np.ndarray
    b: Optional[np.ndarray]
    stride: tuple
    pad: tuple
    dilation: tuple
    group: int
    crop: Optional[tuple] = None
    channels_last = False
    layout = "nchw"

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def kernel_dim(self):
        c_in, _, kernel_h, kernel_w = self.w.shape
        return c_in // self.group * kernel_h * kernel_w

    def full_size(self):
        """The uncropped transposed convolution's (height, width)."""
        return tuple(stride * (size - 1) + extent(kernel, dilation) for size, kernel, stride,
                     dilation in zip(self.x.shape[2:], self.w.shape[2:], self.stride,
                                     self.dilation))

    def _deconvolve(self, x, w, b):
        params = dict(stride=self.stride, dilation=self.dilation, group=self.group)
        if self.crop is None:
            return deconv2d_caffe(x, w, b, pad=self.pad, **params)
        full = deconv2d_caffe(x, w, None, **params)
        (top, height), (left, width) = self.crop
        y = np.zeros(full.shape[:2] + (height, width))
        window = full[:, :, top:top + height, left:left + width]
        y[:, :, :window.shape[2], :window.shape[3]] = window
        return y if b is None else y + b[None, :, None, None]

    def output(self):
        return self._deconvolve(self.x, self.w, self.b)

    def magnitude(self):
        """S per output element: the deconvolution of |x| by |w|, plus |b|."""
        return self._deconvolve(np.abs(self.x), np.abs(self.w),
                                None if self.b is None else np.abs(self.b))

    def magnitude_bound(self):
        # Each output sums some of x's channels times taps of one filter column w[:, o].
        column_sums = np.abs(self.w).sum(axis=(0, 2, 3))
        bias = 0.0 if self.b is None else float(np.abs(self.b).max())
        return float(np.abs(self.x).max(initial=0.0)) * float(column_sums.max(initial=0.0)) + bias

    def defined(self):
        return None

    def default_rtol(self, dtype):
        return default_rtol(dtype, self.kernel_dim)

    def cost(self):
        height, width = self.full_size()
        return float(self.x.shape[0] * self.w.shape[1] * self.group * height * width
                     * self.kernel_dim)

    def mistakes(self):
        return deconv_mistakes(self)


def _problem(x, w, b, stride, pad, dilation, group):
    return DeconvProblem(_f64(x), _f64(w), _f64(b), as_pair(stride, "stride", "stride"),
                         as_pair(pad, "pad", "pad"), as_pair(dilation, "dilation", "dilation"),
                         group)


def deconv_reference(x, w, b=None, *, stride=1, pad=0, dilation=1, group=1):
    """fastconv's float64 output of Caffe's Deconvolution (NCHW; w ``(C_in, O/group, kh, kw)``)."""
    return deconv2d_caffe(_f64(x), _f64(w), _f64(b), stride=stride, pad=pad, dilation=dilation,
                          group=group)


def deconv_mistakes(p):
    """:class:`Change` s for each mistake that changes this Deconvolution call."""
    (pad_h, pad_w) = p.pad
    if p.crop is None and (pad_h or pad_w):
        full_h, full_w = p.full_size()
        height, width = full_h - 2 * pad_h, full_w - 2 * pad_w
        yield Change(Mistake("deconv_pad_not_cropped",
                             f"Caffe's pad={format_pair(p.pad)} not cropped (a transposed "
                             "convolution with padding='valid' and no Cropping2D: the output is "
                             "2*pad larger)", _CROP_FIX, family="crop"),
                     p.replace(crop=((0, full_h), (0, full_w))))
        for name, top, left, where in (
                ("deconv_crop_at_top_left", 2 * pad_h, 2 * pad_w, "top/left"),
                ("deconv_crop_at_bottom_right", 0, 0, "bottom/right")):
            yield Change(Mistake(name, f"Caffe's pad cropped as 2*pad from the {where} only "
                                       "instead of pad from every side (output shifted by pad)",
                                 _CROP_FIX, family="crop"),
                         p.replace(crop=((top, height), (left, width))))
        if p.group == 1:   # Keras's Conv2DTranspose has no groups
            yield _keras_same(p)
    if p.dilation != (1, 1):
        yield Change(Mistake("deconv_dilation_dropped",
                             f"dilation {format_pair(p.dilation)} dropped (ran with 1)",
                             "pass the dilation on: Conv2DTranspose(dilation_rate=...), "
                             "conv_transpose2d(dilation=...)"), p.replace(dilation=(1, 1)))
    yield Change(Mistake("deconv_kernel_flipped", "kernel spatially flipped (w[:, :, ::-1, ::-1])",
                         "do not flip: Caffe's Deconvolution uses the blob as stored "
                         "(it is the adjoint of a Convolution with the same blob)"),
                 p.replace(w=p.w[:, :, ::-1, ::-1]))
    c_in, per_group, _, _ = p.w.shape
    if p.group == 1 and c_in == per_group:
        yield Change(Mistake("deconv_blob_axes_swapped",
                             "blob read as (num_output, C_in, kh, kw), a Convolution's order, "
                             "instead of Deconvolution's (C_in, num_output, kh, kw)",
                             "Caffe Deconvolution w -> Keras Conv2DTranspose kernel: "
                             "w.transpose(2, 3, 1, 0) (filters third); PyTorch conv_transpose2d "
                             "takes w as it is"), p.replace(w=p.w.transpose(1, 0, 2, 3)))
    yield from bias_missing_change(p, "load the bias blob (Conv2DTranspose(use_bias=True) and "
                                      "set its weights)")
    for name, key in (("deconv_stride_hw_swapped", "stride"), ("deconv_pad_hw_swapped", "pad")):
        value = getattr(p, key)
        if value[0] != value[1]:
            yield Change(Mistake(name, f"{key} h and w swapped (used {value[::-1]})",
                                 f"{key}=(h, w): Caffe's {key}_h is the first"),
                         p.replace(**{key: value[::-1]}))
    yield from layout_changes(p)
    yield from tf32_changes(p)


def _keras_same(p):
    """Keras Conv2DTranspose(padding='same'): ``in*stride`` outputs, cut from the full output
    where TensorFlow's forward 'same' convolution would pad (the odd cell at the bottom/right)."""
    crop = []
    for size, stride, kernel, dilation in zip(p.x.shape[2:], p.stride, p.w.shape[2:],
                                              p.dilation):
        crop.append((max(extent(kernel, dilation) - stride, 0) // 2, size * stride))
    return Change(Mistake("deconv_keras_same_for_caffe_pad",
                          f"Keras Conv2DTranspose(padding='same') used for Caffe's "
                          f"pad={format_pair(p.pad)} ('same' gives in*stride and crops the odd "
                          "cell at the bottom/right)", _CROP_FIX, family="crop"),
                  p.replace(crop=tuple(crop)))


def check_deconv(actual, x, w, b=None, *, stride=1, pad=0, dilation=1, group=1, rtol=None,
                 atol=None, diagnosis=True, after=None):
    """Compare ``actual`` with the Deconvolution reference; return a
    :class:`~fastconv.testing.Verdict` (true when it passes; unpacks to
    ``(Comparison, [Diagnosis, ...])``). ``after``: a function the port applied to the
    output (its activation), applied to the reference and to every re-run (NCHW); see
    fastconv.testing.diagnosis."""
    problem = _problem(x, w, b, stride, pad, dilation, group)
    return check("deconvolution", "Caffe Deconvolution, NCHW", actual, problem, rtol=rtol,
                 atol=atol, diagnosis=diagnosis, after=after)


def assert_deconv_close(actual, x, w, b=None, *, stride=1, pad=0, dilation=1, group=1,
                        rtol=None, atol=None, after=None):
    """Assert ``actual`` is Caffe's Deconvolution of ``x`` by ``w`` (+ ``b``); explain it if not.

    On failure the AssertionError gives the errors (or the shape mismatch), the worst element,
    the mismatch count, and the porting mistake (or pair) whose re-run reproduces ``actual``,
    with its fix; when none does, what was tried. ``after`` as in :func:`check_deconv`.
    Returns the Comparison when it passes.
    """
    result = check_deconv(actual, x, w, b, stride=stride, pad=pad, dilation=dilation,
                          group=group, rtol=rtol, atol=atol, after=after)
    if not result:
        raise AssertionError(str(result))
    return result.comparison
