"""Naming the porting mistake behind a wrong convolution output.

:func:`diagnose` re-runs fastconv's reference under each known mistake (the catalogue below, one
mistake at a time) and reports those whose output matches ``actual`` within the default
tolerance of :mod:`fastconv.testing.compare`. A mistake is never claimed on resemblance alone:
its own output must reproduce ``actual``. Mistakes that cannot change this call (a swapped
stride when ``stride_h == stride_w``, say) are not tried.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compare import Comparison, compare, default_rtol, unit_roundoff
from ._problem import Padding

TF32_ROUNDOFF = 2.0 ** -11  # 10 explicit mantissa bits, round to nearest
TF32_FIX = ("force full float32: tf.config.experimental.enable_tensor_float_32_execution(False) | "
            "torch.backends.cudnn.allow_tf32 = False | "
            "jax.config.update('jax_default_matmul_precision', 'highest')")


@dataclass(frozen=True)
class Mistake:
    """One known porting mistake: a short ``name``, what happened, and the one-line fix."""

    name: str
    description: str
    fix: str


@dataclass(frozen=True)
class Diagnosis:
    """A mistake whose re-run reproduces ``actual``, with that comparison as evidence."""

    mistake: Mistake
    evidence: Comparison

    @property
    def name(self):
        return self.mistake.name

    def __str__(self):
        return (f"{self.mistake.description} (re-running the reference with this mistake "
                f"reproduces actual: max rel error {self.evidence.max_rel_error:.2g})\n"
                f"  fix: {self.mistake.fix}")


def diagnosis_lines(diagnoses, tried):
    """An assertion message's verdict: the best-matching mistake with its fix and any others
    that also reproduce the output, or, when none does, what was tried."""
    if not diagnoses:
        return [f"diagnosis: no single known porting mistake reproduces actual (tried {tried})"]
    lines = ["diagnosis: " + str(diagnoses[0])]
    others = [d.mistake.description for d in diagnoses[1:]]
    if others:
        lines.append("  also reproduced by: " + "; ".join(others))
    return lines


def _swap(pair):
    return (pair[1], pair[0])


def _mistaken_problems(p):
    """(Mistake, ConvProblem) for each mistake that changes this call."""
    out_ch, group_ch, kernel_h, kernel_w = p.w.shape
    batch, channels, height, width = p.x.shape
    w = p.w
    yield (Mistake("kernel_reshaped_caffe_to_keras",
                   "kernel reshaped instead of transposed (Caffe OIHW -> Keras HWIO)",
                   "kernel = fastconv.caffe_to_keras_kernel(w)  # w.transpose(2, 3, 1, 0), "
                   "not w.reshape(kh, kw, C, O)"),
           p.replace(w=w.reshape(kernel_h, kernel_w, group_ch, out_ch).transpose(3, 2, 0, 1)))
    yield (Mistake("kernel_reshaped_keras_to_caffe",
                   "kernel reshaped instead of transposed (Keras HWIO -> Caffe OIHW)",
                   "w = fastconv.keras_to_caffe_kernel(kernel)  # kernel.transpose(3, 2, 0, 1), "
                   "not kernel.reshape(O, C, kh, kw)"),
           p.replace(w=w.transpose(2, 3, 1, 0).reshape(w.shape)))
    yield (Mistake("kernel_flipped",
                   "kernel spatially flipped (Theano-style true convolution; Caffe and "
                   "TensorFlow cross-correlate)",
                   "kernel = fastconv.flip_kernel(kernel)  # kernel[::-1, ::-1] for HWIO, "
                   "w[:, :, ::-1, ::-1] for OIHW"),
           p.replace(w=w[:, :, ::-1, ::-1]))
    yield (Mistake("kernel_hw_swapped",
                   "kernel's spatial axes swapped (kernel_h <-> kernel_w, e.g. "
                   "w.transpose(3, 2, 1, 0) instead of (2, 3, 1, 0))",
                   "kernel = w.transpose(2, 3, 1, 0) (fastconv.caffe_to_keras_kernel) and "
                   "kernel_size=(kernel_h, kernel_w) in that order"),
           p.replace(w=w.transpose(0, 1, 3, 2)))
    if kernel_h != kernel_w:
        yield (Mistake("kernel_shape_swapped",
                       "kernel built as kernel_w x kernel_h and the weights reshaped into it",
                       "kernel_size=(kernel_h, kernel_w): Caffe's kernel_h is the height"),
               p.replace(w=w.reshape(out_ch, group_ch, kernel_w, kernel_h)))
    x = p.x
    yield (Mistake("input_reshaped_nchw_to_nhwc",
                   "input reshaped instead of transposed (NCHW data fed as NHWC)",
                   "x = fastconv.nchw_to_nhwc(x)  # x.transpose(0, 2, 3, 1), not x.reshape(...)"),
           p.replace(x=x.reshape(batch, height, width, channels).transpose(0, 3, 1, 2)))
    yield (Mistake("input_reshaped_nhwc_to_nchw",
                   "input reshaped instead of transposed (NHWC data fed as NCHW)",
                   "x = fastconv.nhwc_to_nchw(x)  # x.transpose(0, 3, 1, 2), not x.reshape(...)"),
           p.replace(x=x.transpose(0, 2, 3, 1).reshape(x.shape)))
    yield (Mistake("input_hw_swapped", "input's height and width swapped",
                   "NCHW -> NHWC is x.transpose(0, 2, 3, 1), not (0, 3, 2, 1)"),
           p.replace(x=x.transpose(0, 1, 3, 2)))
    yield from _padding_mistakes(p)
    if p.stride[0] != p.stride[1]:
        yield (Mistake("stride_hw_swapped", f"stride_h and stride_w swapped (used {_swap(p.stride)})",
                       f"strides=({p.stride[0]}, {p.stride[1]}): Caffe's stride_h comes first"),
               p.replace(stride=_swap(p.stride)))
    if p.dilation[0] != p.dilation[1]:
        yield (Mistake("dilation_hw_swapped", "dilation h and w swapped",
                       f"dilation_rate=({p.dilation[0]}, {p.dilation[1]})"),
               p.replace(dilation=_swap(p.dilation)))
    if p.dilation != (1, 1):
        yield (Mistake("dilation_dropped", f"dilation {p.dilation} dropped (ran with 1)",
                       f"pass dilation_rate=({p.dilation[0]}, {p.dilation[1]}) (Caffe's dilation)"),
               p.replace(dilation=(1, 1)))
    if p.b is not None and np.any(p.b != 0):
        yield (Mistake("bias_missing", "bias missing (the layer ran without its bias)",
                       "load the bias too: layer.set_weights([kernel, b]) with use_bias=True "
                       "(Caffe's bias_term defaults to true)"),
               p.replace(b=None))
    if p.group > 1:
        block = channels // p.group
        groups_reversed = x.reshape(batch, p.group, block, height, width)[:, ::-1].reshape(x.shape)
        yield (Mistake("groups_swapped", "channel groups swapped (group g read the input "
                       "channels of group G-1-g)",
                       "group g uses input channels [g*C/G, (g+1)*C/G) and filters "
                       "[g*O/G, (g+1)*O/G), in order"),
               p.replace(x=groups_reversed))
        interleaved = x.reshape(batch, block, p.group, height, width).transpose(0, 2, 1, 3, 4)
        yield (Mistake("groups_interleaved", "input channels assigned to groups round-robin "
                       "(channel c in group c % G) instead of in contiguous blocks",
                       "group g uses the contiguous input channels [g*C/G, (g+1)*C/G)"),
               p.replace(x=interleaved.reshape(x.shape)))


def _padding_mistakes(p):
    mode, pad = p.padding.mode, p.padding.pad
    same_fix = ("use keras.layers.ZeroPadding2D((pad_h, pad_w)) then Conv2D(padding='valid') "
                "(fastconv.keras.from_caffe builds it); 'same' pads the odd cell only at the "
                "bottom/right")
    if mode == "caffe":
        yield (Mistake("same_instead_of_caffe_pad",
                       f"Keras padding='same' used for Caffe's symmetric pad={_show(pad)}",
                       same_fix), p.replace(padding=Padding("same")))
        if pad != (0, 0):
            yield (Mistake("pad_dropped", f"Caffe's pad={_show(pad)} dropped (padding='valid')",
                           f"add keras.layers.ZeroPadding2D(({pad[0]}, {pad[1]})) before the "
                           "convolution"), p.replace(padding=Padding("valid")))
        if pad[0] != pad[1]:
            yield (Mistake("pad_hw_swapped", f"pad_h and pad_w swapped (used {_swap(pad)})",
                           f"ZeroPadding2D(({pad[0]}, {pad[1]})): Caffe's pad_h comes first"),
                   p.replace(padding=Padding("caffe", _swap(pad))))
        floored = p.replace(padding=Padding("floor", pad))
        if floored.output_shape() != p.output_shape():
            yield (Mistake("floor_instead_of_truncation",
                           "output size computed with floor division; Caffe's C division "
                           "truncates toward zero and makes 1 output where the kernel's extent "
                           "exceeds the padded input by less than the stride",
                           "pad the bottom/right with extent - (in + 2*pad) extra zeros so "
                           "'valid' makes that output (fastconv.keras.from_caffe with "
                           "input_size does it)"),
                   floored)
        return
    if mode == "same":
        total_h, total_w = _same_totals(p)
        # A symmetric port of an odd total pads half of it rounded down or up on both sides.
        for rounding in sorted({0, total_h % 2, total_w % 2}):
            sym = ((total_h + rounding) // 2, (total_w + rounding) // 2)
            yield (Mistake("caffe_pad_instead_of_same",
                           f"Caffe-style symmetric pad={_show(sym)} used where Keras "
                           "'same' pads the odd extra cell only at the bottom/right",
                           "use padding='same', or ZeroPadding2D(((top, bottom), (left, "
                           "right))) with the extra cell at the bottom/right"),
                   p.replace(padding=Padding("caffe", sym)))
        yield (Mistake("valid_instead_of_same", "padding='valid' used where 'same' was meant",
                       "padding='same'"), p.replace(padding=Padding("valid")))
    else:
        yield (Mistake("same_instead_of_valid", "padding='same' used where 'valid' was meant",
                       "padding='valid'"), p.replace(padding=Padding("same")))


def _same_totals(p):
    totals = []
    for axis in (0, 1):
        size = p.x.shape[2 + axis]
        span = p.dilation[axis] * (p.w.shape[2 + axis] - 1) + 1
        out = -(-size // p.stride[axis])
        totals.append(max((out - 1) * p.stride[axis] + span - size, 0))
    return tuple(totals)


def _show(pair):
    return pair[0] if pair[0] == pair[1] else tuple(pair)


def _output_mistakes(p):
    """(Mistake, transform) for mistakes made on the output: transform(reference) is what the
    mistaken code returns (and transform(scale) its tolerance scale)."""
    if p.channels_last:
        yield (Mistake("output_in_nchw", "output is NCHW where NHWC was expected",
                       "y = fastconv.nchw_to_nhwc(y)"), lambda y: y.transpose(0, 3, 1, 2))
        yield (Mistake("output_reshaped_from_nchw", "NCHW output reshaped (not transposed) to NHWC",
                       "y = fastconv.nchw_to_nhwc(y)  # not y.reshape(...)"),
               lambda y: np.ascontiguousarray(y.transpose(0, 3, 1, 2)).reshape(y.shape))
    else:
        yield (Mistake("output_in_nhwc", "output is NHWC where NCHW was expected",
                       "y = fastconv.nhwc_to_nchw(y)"), lambda y: y.transpose(0, 2, 3, 1))
        yield (Mistake("output_reshaped_from_nhwc", "NHWC output reshaped (not transposed) to NCHW",
                       "y = fastconv.nhwc_to_nchw(y)  # not y.reshape(...)"),
               lambda y: np.ascontiguousarray(y.transpose(0, 2, 3, 1)).reshape(y.shape))
    if p.group > 1:
        groups = p.group
        axis = 3 if p.channels_last else 1

        def interleave(y):
            moved = np.moveaxis(y, axis, -1)
            per_group = moved.shape[-1] // groups
            mixed = moved.reshape(*moved.shape[:-1], groups, per_group).swapaxes(-1, -2)
            return np.moveaxis(mixed.reshape(moved.shape), -1, axis)
        yield (Mistake("output_groups_interleaved", "output channels of the groups interleaved "
                       "(filter j of group g at j*G + g instead of g*O/G + j), e.g. a "
                       "DepthwiseConv2D depth_multiplier order mix-up",
                       "filter j of group g is output channel g*O/G + j (Caffe and Keras "
                       "DepthwiseConv2D order: c*depth_multiplier + m)"), interleave)


def diagnose(actual, problem, reference=None, scale=None):
    """Known mistakes whose re-run reproduces ``actual``, best match first (maybe none)."""
    actual = np.asarray(actual)
    found = []

    def check(mistake, expected, mistake_scale, kernel_dim):
        report = compare(actual, expected, scale=mistake_scale, kernel_dim=kernel_dim,
                         layout="nhwc" if problem.channels_last else "nchw")
        if report.passed:
            found.append(Diagnosis(mistake, report))

    for mistake, alternative in _mistaken_problems(problem):
        if alternative.output_shape() != actual.shape:
            continue
        expected = alternative.run()
        # Cheap rigorous screen before the |x|*|w| convolution: S_i never exceeds
        # max|x| * max_o sum|w_o| + max|b|, so a larger error cannot pass.
        bound = default_rtol(actual.dtype, alternative.kernel_dim) * _magnitude_bound(alternative)
        if expected.size and np.max(np.abs(actual - expected)) > bound:
            continue
        check(mistake, expected, alternative.magnitude(), alternative.kernel_dim)
    if reference is None:
        reference, scale = problem.run(), problem.magnitude()
    for mistake, transform in _output_mistakes(problem):
        expected = transform(reference)
        if expected.shape == actual.shape:
            check(mistake, expected, transform(scale), problem.kernel_dim)
    if actual.shape == reference.shape and not found:
        tf32 = _tf32_diagnosis(actual, problem, reference, scale)
        if tf32 is not None:
            found.append(tf32)
    found.sort(key=lambda d: d.evidence.max_rel_error)
    return found


def _magnitude_bound(problem):
    weight_sums = np.abs(problem.w).reshape(problem.w.shape[0], -1).sum(axis=1)
    bias = 0.0 if problem.b is None else float(np.abs(problem.b).max())
    return float(np.abs(problem.x).max(initial=0.0)) * float(weight_sums.max()) + bias


def _tf32_diagnosis(actual, problem, reference, scale):
    """TF32-sized error: within ``2**-10 * (4*sqrt(sum (x w)^2) + |y|)`` on top of the float32
    tolerance, i.e. what rounding x and w to 10 mantissa bits (nearest or toward zero) and
    accumulating in float32 can do; claimed only for float32-or-wider outputs."""
    if unit_roundoff(actual.dtype) > 2.0 ** -24:
        return None
    allowed_scale = 2 * TF32_ROUNDOFF * (4 * problem.magnitude_rms() + np.abs(reference))
    fp32_rtol = default_rtol(np.float32, problem.kernel_dim)
    report = compare(actual, reference, rtol=1.0, atol=0.0,
                     scale=allowed_scale + fp32_rtol * scale, kernel_dim=problem.kernel_dim,
                     layout="nhwc" if problem.channels_last else "nchw")
    if not report.passed:
        return None
    return Diagnosis(Mistake("tf32", "TF32-sized error (~1e-3 relative): the convolution ran "
                             "with TensorFlow-32 inputs (NVIDIA Ampere or newer GPU default)",
                             TF32_FIX), report)
