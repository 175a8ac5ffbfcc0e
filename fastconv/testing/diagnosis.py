"""Naming the porting mistake behind a wrong output: one engine for every oracle.

Over 400 lines on purpose: the search, its verdict and the verdict's wording are one engine,
shared by the convolution, deconvolution and pooling oracles.

Each oracle (convolution, deconvolution, pooling) describes a call as a *problem*: the inputs in
float64, the parameters, and the caller's layout. A problem knows how to compute its own output
(``output()``), the per-element magnitude its tolerance scales with (``magnitude()``), a cheap
upper bound on that magnitude (``magnitude_bound()``), its default ``rtol`` for a dtype, and its
catalogue of porting mistakes (``mistakes()``), each a :class:`Change`: the call as the mistaken
code made it, and/or what that code did to the output.

:func:`search` re-runs the problem under each mistake, then, when none alone reproduces
``actual``, under each pair of mistakes (a flipped kernel and a missing bias, a reshaped kernel
and a dropped pad, ...). A mistake is named only when its re-run brings ``actual`` within the
same tolerance the check itself uses; never on resemblance. When nothing reproduces, the
candidate whose re-run came clearly closest (at most half the error) is offered as a hint, and
the message says it is not a diagnosis. :class:`Verdict` is what ``check_conv``,
``check_deconv`` and ``check_pool`` return; :func:`format_verdict` words it.

``after`` (every ``check_*``): a function the port applied to the layer's output before
handing it over, typically the in-place layers that follow it in Caffe (a Keras
``Conv2D(activation='relu')`` output saved under Caffe's blob name, which Caffe's blob holds
after the in-place ReLU). It is applied to the reference and to every mistaken re-run (after
the re-run's own output changes, and only when the re-run has ``actual``'s shape), so a
mistake made inside the layer is still named. It takes and returns a float64 array in the
caller's layout and must not modify its argument. The tolerance's per-element magnitude S is
carried through it by its secants, ``S' = max(|after(y + S) - after(y)|, |after(y - S) -
after(y)|)`` with y the re-run's output: exactly ``|slope| * S`` for ReLU (leaky too), PReLU,
Scale, Bias and inference BatchNorm, and at least ``|after'(y)| * S`` for a function convex or
concave on each side of y (ELU, sigmoid, TanH).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .compare import Comparison, check_tolerance, compare

# Above this many multiply-adds per re-run (a rough count the problem gives), pairs of mistakes
# are not tried: a few hundred re-runs of a large layer would take minutes.
PAIR_BUDGET = 2e7
CLOSER_FACTOR = 0.5     # a hint must at least halve the error


@dataclass(frozen=True)
class Mistake:
    """One known porting mistake: a short ``name``, what happened, and the one-line fix.

    Mistakes of one ``family`` (say, the padding rules) replace each other, so they are never
    paired with each other.
    """

    name: str
    description: str
    fix: str
    family: str = ""

    @property
    def kind(self):
        return self.family or self.name


@dataclass(frozen=True)
class Change:
    """A mistake as a re-run: ``problem`` is the call the mistaken code made (None: the same
    call), ``output`` what it then did to the output (None: nothing). ``output`` is written for
    the re-run's output as the re-run makes it (the caller's layout, channels on their axis);
    :func:`search` never hands it an array another change has reshaped."""

    mistake: Mistake
    problem: object = None
    output: Optional[Callable] = None


@dataclass(frozen=True)
class Diagnosis:
    """One or two mistakes and the comparison of ``actual`` with their re-run.

    ``reproduces`` is whether that comparison passed: only then is it a diagnosis.
    """

    mistakes: tuple
    evidence: Comparison

    @property
    def reproduces(self):
        return self.evidence.passed

    @property
    def name(self):
        return "+".join(m.name for m in self.mistakes)

    @property
    def mistake(self):
        """The mistakes as one :class:`Mistake` (a pair reads "first; and second")."""
        if len(self.mistakes) == 1:
            return self.mistakes[0]
        return Mistake(self.name, "; and ".join(m.description for m in self.mistakes),
                       "; ".join(m.fix for m in self.mistakes))

    def __str__(self):
        return (f"{self.mistake.description} (re-running the reference with "
                f"{'this mistake' if len(self.mistakes) == 1 else 'both mistakes'} reproduces "
                f"actual within the tolerance: max rel error {self.evidence.max_rel_error:.2g})\n"
                f"  fix: {self.mistake.fix}")


@dataclass(frozen=True)
class Verdict:
    """The outcome of ``check_conv`` / ``check_deconv`` / ``check_pool``.

    ``bool(verdict)`` is whether ``actual`` passed, so ``assert check_conv(...)`` works.
    ``comparison`` is the :class:`~fastconv.testing.compare.Comparison`; ``diagnoses`` the
    mistakes whose re-run reproduces ``actual`` (best first, maybe none); ``closest`` the
    candidate that came clearly closest when none reproduces (a hint, not a diagnosis);
    ``tried`` the names of the single mistakes tried and ``pairs_tried`` how many pairs.
    Unpacking gives ``(comparison, diagnoses)``, as the tuple earlier versions returned:
    ``report, diagnoses = check_conv(...)`` keeps working. ``str(verdict)`` is the full message.
    """

    what: str
    context: str
    comparison: Comparison
    diagnoses: tuple = ()
    closest: Optional[Diagnosis] = None
    tried: tuple = ()
    pairs_tried: int = 0
    pairs_skipped: bool = False
    note: str = ""

    @property
    def passed(self):
        return self.comparison.passed

    def __bool__(self):
        return self.passed

    def __iter__(self):
        yield self.comparison
        yield list(self.diagnoses)

    def __str__(self):
        return format_verdict(self)


def format_verdict(verdict):
    """The assertion message: errors, worst element, and the diagnosis or what was tried."""
    report = verdict.comparison
    head = "PASS" if report.passed else "FAIL"
    if report.passed:
        lines = [f"{head}: {verdict.what} output matches fastconv's reference "
                 f"({verdict.context})", "  " + report.summary().replace("\n", "\n  ")]
    else:
        lines = [f"{verdict.what} output differs from fastconv's reference ({verdict.context})",
                 "  " + report.summary().replace("\n", "\n  ")]
        lines += _diagnosis_lines(verdict)
    if verdict.note:
        lines.append("note: " + verdict.note)
    return "\n".join(lines)


def _diagnosis_lines(verdict):
    if verdict.diagnoses:
        lines = ["diagnosis: " + str(verdict.diagnoses[0])]
        others = [d.mistake.description for d in verdict.diagnoses[1:]]
        if others:
            lines.append("  also reproduced by: " + "; ".join(others))
        return lines
    if not verdict.tried:
        return []
    pairs = (f" and {verdict.pairs_tried} pairs of them" if verdict.pairs_tried else
             " (pairs not tried: the layer is too large for a few hundred re-runs)"
             if verdict.pairs_skipped else "")
    lines = [f"diagnosis: none. No known porting mistake reproduces actual; tried "
             f"{', '.join(verdict.tried)}{pairs}"]
    closest = verdict.closest
    if closest is not None:
        base = verdict.comparison
        before = ("a shape mismatch" if not base.shape_matches
                  else f"max abs error {base.max_abs_error:.3g}")
        lines.append(f"  closest candidate (a hint, not a diagnosis: it does not reproduce "
                     f"actual): {closest.mistake.description}: max abs error "
                     f"{closest.evidence.max_abs_error:.3g} instead of {before}")
    return lines


def _evaluate(actual, problem, outputs, mistakes, rtol, atol, after):
    """The Diagnosis of one re-run, or None when it has no output of ``actual``'s shape."""
    try:
        expected = problem.output()
    except ValueError:     # the mistaken call has no valid geometry: nobody made it
        return None
    if expected is None:
        return None
    expected = _changed(expected, outputs)
    if expected is None or expected.shape != actual.shape:
        return None
    defined = problem.defined()
    defined = None if defined is None else _changed(defined, outputs)
    tolerance = dict(rtol=problem.default_rtol(actual.dtype) if rtol is None else rtol,
                     atol=atol, kernel_dim=problem.kernel_dim, layout=problem.layout,
                     where=defined)
    bound = problem.magnitude_bound()
    if after is None and np.isfinite(bound):
        # Cheap screen: the per-element magnitude never exceeds the bound, so failing with the
        # bound means failing with the magnitude, and its convolution can be skipped. (A
        # bound on S says nothing about S carried through ``after``.)
        screen = compare(actual, expected, scale=bound, **tolerance)
        if not screen.passed:
            return Diagnosis(mistakes, screen)
    expected, scale = _through(after, expected, _changed(problem.magnitude(), outputs))
    return Diagnosis(mistakes, compare(actual, expected, scale=scale, **tolerance))


def _through(after, output, magnitude):
    """``(after(output), S carried through after)`` (see the module docstring); the arguments
    unchanged when ``after`` is None."""
    if after is None:
        return output, magnitude
    applied = np.asarray(after(output), dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        up = np.abs(np.asarray(after(output + magnitude), dtype=np.float64) - applied)
        down = np.abs(np.asarray(after(output - magnitude), dtype=np.float64) - applied)
    return applied, np.fmax(up, down)


def _changed(array, outputs):
    """``array`` (a re-run's output, or its magnitude or mask) after each output change in
    turn; None when a change would be handed an array the one before it reshaped.

    Each output change is written for the re-run's output as the re-run makes it: after a
    transposition to the other layout, a change of the channel axis (the groups' output order)
    would work on height or width, which no port does, or fail to reshape at all. The other
    order of that pair (the channels changed, then the layout) is tried on its own. (A
    transposition that keeps the shape, H == W == C, is let through: that re-run merely
    fails to reproduce.)
    """
    shape = array.shape
    for change in outputs:
        if array.shape != shape:
            return None
        array = change(array)
    return array


def search(actual, problem, report, *, rtol=None, atol=None, pairs=True, after=None):
    """Re-run ``problem`` under its mistakes (each re-run's output put through ``after`` when
    given); return ``(diagnoses, closest, tried, pairs_tried, pairs_skipped)`` for
    :class:`Verdict` (see the module docstring)."""
    actual = np.asarray(actual)
    singles = [change for change in problem.mistakes() if _applies(change, actual)]
    results = []
    for change in singles:
        result = _evaluate(actual, change.problem or problem,
                           [change.output] if change.output else [], (change.mistake,),
                           rtol, atol, after)
        if result is not None:
            results.append(result)
    tried = tuple(dict.fromkeys(change.mistake.name for change in singles))
    pairs_tried, pairs_skipped = 0, False
    if not any(r.reproduces for r in results) and pairs:
        if problem.cost() > PAIR_BUDGET:
            pairs_skipped = True
        else:
            pair_results, pairs_tried = _search_pairs(actual, problem, singles, rtol, atol,
                                                      after)
            results += pair_results
    diagnoses = sorted((r for r in results if r.reproduces),
                       key=lambda r: (len(r.mistakes), r.evidence.max_rel_error))
    closest = None
    if not diagnoses and results:
        best = min(results, key=lambda r: r.evidence.max_abs_error)
        before = report.max_abs_error if report.shape_matches else np.inf
        if best.evidence.max_abs_error < CLOSER_FACTOR * before:
            closest = best
    return tuple(diagnoses), closest, tried, pairs_tried, pairs_skipped


def _search_pairs(actual, problem, singles, rtol, atol, after):
    """Each mistake followed by each other mistake of another family, both orders."""
    found, results, count = set(), [], 0
    for first in singles:
        after_first = first.problem or problem
        for second in after_first.mistakes():
            if second.mistake.kind == first.mistake.kind or not _applies(second, actual):
                continue
            names = frozenset((first.mistake.name, second.mistake.name))
            if names in found:
                continue
            outputs = [c.output for c in (first, second) if c.output]
            mistakes = tuple(sorted((first.mistake, second.mistake),
                                    key=lambda m: _catalogue_order(singles, m)))
            result = _evaluate(actual, second.problem or after_first, outputs, mistakes,
                               rtol, atol, after)
            count += 1
            if result is None:
                continue
            results.append(result)
            if result.reproduces:
                found.add(names)
    return results, count


def _applies(change, actual):
    # TF32 hands back float32: a float16 or float64 output did not come from it.
    return change.mistake.kind != "tf32" or actual.dtype == np.float32


def _catalogue_order(singles, mistake):
    for index, change in enumerate(singles):
        if change.mistake.name == mistake.name:
            return index
    return len(singles)


def check(what, context, actual, problem, *, rtol=None, atol=None, diagnosis=True, note="",
          after=None):
    """Compare ``actual`` with ``problem``'s output (put through ``after`` when given) under its
    tolerance; search the mistakes when that fails (and ``diagnosis`` is true). What every
    ``check_*`` of the oracle does."""
    actual = np.asarray(actual)
    rtol = None if rtol is None else check_tolerance(rtol, "rtol")
    atol = None if atol is None else check_tolerance(atol, "atol")
    if after is not None and not callable(after):
        raise TypeError(f"after={after!r} must be a function of the layer's output (or None)")
    expected, scale = _through(after, problem.output(), problem.magnitude())
    report = compare(actual, expected,
                     rtol=problem.default_rtol(actual.dtype) if rtol is None else rtol,
                     atol=atol, scale=scale, kernel_dim=problem.kernel_dim,
                     layout=problem.layout)
    return verdict(what, context, report, actual, problem, rtol=rtol, atol=atol,
                   diagnosis=diagnosis, note=note, after=after)


def verdict(what, context, report, actual, problem, *, rtol=None, atol=None, diagnosis=True,
            note="", after=None):
    """Run the search when ``report`` failed (and ``diagnosis`` is true); wrap it all up."""
    if report.passed or not diagnosis:
        return Verdict(what, context, report, note=note)
    diagnoses, closest, tried, pairs_tried, pairs_skipped = search(
        actual, problem, report, rtol=rtol, atol=atol, after=after)
    return Verdict(what, context, report, diagnoses, closest, tried, pairs_tried, pairs_skipped,
                   note)


# ---------------------------------------------------------------------------------------------
# Mistakes every oracle shares: the NCHW/NHWC mix-ups (problems hold NCHW x and hand outputs
# back in the caller's layout), TF32, and a missing bias.

TF32_FIX = ("force full float32: tf.config.experimental.enable_tensor_float_32_execution(False) | "
            "torch.backends.cuda.matmul.allow_tf32 = False and torch.backends.cudnn.allow_tf32 = "
            "False | jax.config.update('jax_default_matmul_precision', 'highest')")


def round_to_tf32(a, toward_zero=False):
    """float64 values rounded to TF32's 10 explicit mantissa bits (to nearest, ties away from
    zero, as NVIDIA's cvt.rna; or toward zero, which is what feeding float32 bits to a TF32
    tensor core without conversion does)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    if not toward_zero:
        bits = bits + np.uint32(1 << 12)
    return (bits & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)


def tf32_changes(p):
    """The problem with x and w rounded to TF32 (both roundings); only for float32 ports."""
    for toward_zero, name, how in ((False, "tf32", "rounded to nearest"),
                                   (True, "tf32", "truncated")):
        yield Change(Mistake(
            name, f"TF32 arithmetic: the inputs were {how} to 10 mantissa bits (what NVIDIA "
            "Ampere-or-newer GPUs do by default for float32 convolutions in TensorFlow, and in "
            "PyTorch when allow_tf32 is set)", TF32_FIX, family="tf32"),
            p.replace(x=round_to_tf32(p.x, toward_zero), w=round_to_tf32(p.w, toward_zero)))


def bias_missing_change(p, fix):
    if p.b is not None and np.any(p.b != 0):
        yield Change(Mistake("bias_missing", "bias missing (the layer ran without its bias)", fix),
                     p.replace(b=None))


def layout_changes(p):
    """Input reshaped (not transposed) either way; output left in, or reshaped from, the other
    layout."""
    x = p.x
    batch, channels, height, width = x.shape
    yield Change(Mistake("input_reshaped_nchw_to_nhwc",
                         "input reshaped instead of transposed (NCHW data fed as NHWC)",
                         "x = fastconv.nchw_to_nhwc(x)  # x.transpose(0, 2, 3, 1), not "
                         "x.reshape(...)", family="input_layout"),
                 p.replace(x=x.reshape(batch, height, width, channels).transpose(0, 3, 1, 2)))
    yield Change(Mistake("input_reshaped_nhwc_to_nchw",
                         "input reshaped instead of transposed (NHWC data fed as NCHW)",
                         "x = fastconv.nhwc_to_nchw(x)  # x.transpose(0, 3, 1, 2), not "
                         "x.reshape(...)", family="input_layout"),
                 p.replace(x=x.transpose(0, 2, 3, 1).reshape(x.shape)))
    # What a port that computed in the other layout returns, seen in the caller's layout.
    here, other = ("nhwc", "nchw") if p.channels_last else ("nchw", "nhwc")
    to_other = (0, 3, 1, 2) if p.channels_last else (0, 2, 3, 1)
    convert = f"fastconv.{other}_to_{here}"
    yield Change(Mistake(f"output_in_{other}",
                         f"output is {other.upper()} where {here.upper()} was expected",
                         f"y = {convert}(y)", family="output_layout"),
                 output=lambda y: y.transpose(to_other))
    yield Change(Mistake(f"output_reshaped_from_{other}",
                         f"{other.upper()} output reshaped (not transposed) to {here.upper()}",
                         f"y = {convert}(y)  # not y.reshape(...)", family="output_layout"),
                 output=lambda y: np.ascontiguousarray(y.transpose(to_other)).reshape(y.shape))
