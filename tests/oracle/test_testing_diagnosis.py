"""The diagnosis names a mistake only when re-running the reference with it reproduces actual.

Each mistake (and each common pair) is made for real by code written here and must be named;
near-misses that no known mistake explains (one tap off by 0.1%, float16-rounded weights)
must get no diagnosis and no TF32/GPU advice. check_* results are true exactly when the
output passed, and still unpack to ``(comparison, diagnoses)``.
"""
import numpy as np
import pytest

import fastconv
from fastconv.testing import Verdict, check_conv, check_deconv
from reference.conv import caffe_conv

RNG = np.random.default_rng(20261202)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


X, W, B = normal(2, 4, 11, 10), normal(6, 4, 3, 3), normal(6)


def names(result):
    assert not result, "the mistaken output unexpectedly passed"
    return [d.name for d in result.diagnoses]


# --- no false diagnosis --------------------------------------------------------------------------

def test_one_tap_scaled_by_1_001_gets_no_diagnosis():
    w = W.copy()
    w[2, 1, 1, 1] *= np.float32(1.001)
    actual = fastconv.conv2d_caffe(X, w, B, pad=1)
    result = check_conv(actual, X, W, B, pad=1)
    assert names(result) == []
    message = str(result)
    assert "diagnosis: none" in message
    assert "TF32" not in message and "allow_tf32" not in message
    assert "kernel_flipped" in message and "pairs of them" in message   # what was tried


def test_float16_rounded_weights_get_no_diagnosis():
    x, w, b = normal(1, 3, 40, 40), normal(16, 3, 11, 11), normal(16)
    actual = fastconv.conv2d_caffe(x, w.astype(np.float16).astype(np.float32), b, stride=4)
    result = check_conv(actual, x, w, b, stride=4)
    assert names(result) == []
    assert "TF32" not in str(result)


def round_to_tf32(a, toward_zero=False):
    """TF32's 10 explicit mantissa bits (nearest with ties away, or toward zero), in float32."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    if not toward_zero:
        bits = bits + np.uint32(1 << 12)
    return (bits & np.uint32(0xFFFFE000)).view(np.float32)


@pytest.mark.parametrize("toward_zero", [False, True])
def test_tf32_named_only_when_a_tf32_rerun_reproduces_it(toward_zero):
    x, w, b = normal(1, 3, 40, 40), normal(16, 3, 11, 11), normal(16)
    tf32 = fastconv.conv2d_caffe(round_to_tf32(x, toward_zero), round_to_tf32(w, toward_zero),
                                 b, stride=4)
    result = check_conv(tf32, x, w, b, stride=4)
    assert names(result) == ["tf32"]
    assert "allow_tf32" in str(result)
    # The same size of error with random signs is not TF32's and gets no TF32 advice.
    right = fastconv.conv2d_caffe(x, w, b, stride=4)
    noise = np.abs(tf32 - right).max() * RNG.choice([-1.0, 1.0], right.shape)
    assert names(check_conv(right + noise.astype(np.float32), x, w, b, stride=4)) == []


def test_hint_is_offered_as_a_hint_not_a_diagnosis():
    """Flipped kernel plus a little noise: nothing reproduces it, the flip comes closest."""
    actual = fastconv.conv2d_caffe(X, np.ascontiguousarray(W[:, :, ::-1, ::-1]), B)
    actual = actual + 1e-3 * normal(*actual.shape)
    result = check_conv(actual, X, W, B)
    assert names(result) == []
    assert result.closest is not None and result.closest.name == "kernel_flipped"
    assert "closest candidate (a hint, not a diagnosis" in str(result)


# --- each single and paired mistake is named ----------------------------------------------------

def flip(w):
    return np.ascontiguousarray(w[:, :, ::-1, ::-1])


def reshaped_to_keras(w):
    """The naive port: Caffe's OIHW blob reshaped (not transposed) to HWIO, back in OIHW."""
    o, c, kh, kw = w.shape
    return np.ascontiguousarray(w.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))


def same_padding_conv(x, w, b, stride):
    """Keras 'same' written by hand: ceil(in/stride) outputs, odd padding at the bottom/right."""
    pads = []
    for size, kernel, s in zip(x.shape[2:], w.shape[2:], stride):
        out = -(-size // s)
        total = max((out - 1) * s + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    padded = np.pad(x, ((0, 0), (0, 0), *pads))
    return caffe_conv(padded, w, b, stride=stride)


@pytest.mark.parametrize("expected, make, params", [
    (["kernel_flipped"], lambda: caffe_conv(X, flip(W), B, pad=(1, 1)), dict(pad=1)),
    (["bias_missing"], lambda: caffe_conv(X, W, None, pad=(1, 1)), dict(pad=1)),
    (["pad_dropped"], lambda: caffe_conv(X, W, B), dict(pad=1)),
    (["kernel_reshaped_caffe_to_keras"], lambda: caffe_conv(X, reshaped_to_keras(W), B),
     dict()),
    (["same_instead_of_caffe_pad"], lambda: same_padding_conv(X, W, B, (2, 2)),
     dict(stride=2, pad=1)),
    (["output_in_nhwc"], lambda: caffe_conv(X, W, B).transpose(0, 2, 3, 1), dict()),
    # pairs
    (["kernel_flipped+bias_missing"], lambda: caffe_conv(X, flip(W), None, pad=(1, 1)),
     dict(pad=1)),
    (["kernel_reshaped_caffe_to_keras+pad_dropped"],
     lambda: caffe_conv(X, reshaped_to_keras(W), B), dict(pad=1)),
    (["kernel_flipped+same_instead_of_caffe_pad"],
     lambda: same_padding_conv(X, flip(W), B, (2, 2)), dict(stride=2, pad=1)),
    (["bias_missing+output_in_nhwc"],
     lambda: caffe_conv(X, W, None, pad=(1, 1)).transpose(0, 2, 3, 1), dict(pad=1)),
])
def test_single_and_paired_mistakes_are_named(expected, make, params):
    actual = make().astype(np.float32)
    result = check_conv(actual, X, W, B, **params)
    found = names(result)
    assert found and set(found[0].split("+")) == set(expected[0].split("+")), found
    if "+" in expected[0]:
        assert "re-running the reference with both mistakes reproduces actual" in str(result)


def test_deconv_pair_is_named():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((1, 3, 5, 6)), rng.standard_normal((3, 4, 3, 3)), rng.standard_normal(4)
    uncropped_no_bias = fastconv.deconv2d_caffe(x, w, None, stride=2)
    assert names(check_deconv(uncropped_no_bias, x, w, b, stride=2, pad=1)) == [
        "deconv_pad_not_cropped+bias_missing"]


# --- the result object ----------------------------------------------------------------------

def test_check_conv_result_is_the_verdict_and_still_unpacks():
    right = fastconv.conv2d_caffe(X, W, B)
    wrong = fastconv.conv2d_caffe(X, flip(W), B)
    assert check_conv(right, X, W, B)
    assert not check_conv(wrong, X, W, B)
    with pytest.raises(AssertionError):
        assert check_conv(wrong, X, W, B)
    result = check_conv(wrong, X, W, B)
    assert isinstance(result, Verdict) and not result.passed
    report, diagnoses = result                 # the earlier tuple API
    assert report is result.comparison and not report.passed
    assert [d.name for d in diagnoses] == ["kernel_flipped"]
    assert str(result).startswith("convolution output differs")
    assert str(check_conv(right, X, W, B)).startswith("PASS")
