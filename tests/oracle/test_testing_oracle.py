"""fastconv.testing: tolerances, the report, exact mode and the diagnosis.

Every mistake is made for real (a reshaped kernel, a per-group loop with the groups swapped,
an output left in the other layout, ...) by code written here, and the diagnosis must name it;
correct outputs must pass with no diagnosis. No Keras here: see test_keras_bridge.py.
"""
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv.testing import (
    EXACT_LIMIT,
    assert_conv_close,
    check_conv,
    compare,
    default_rtol,
    exact_conv_inputs,
    reference,
)

RNG = np.random.default_rng(20261128)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def plain_conv_nchw(x, w, b, stride, pad, dilation=(1, 1)):
    """Float64 cross-correlation with symmetric zero pad and floor sizing, written plainly."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out_c, _, kh, kw = w.shape
    oh = (x.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((x.shape[0], out_c, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dilation[0]: i * dilation[0] + stride[0] * (oh - 1) + 1: stride[0],
                      j * dilation[1]: j * dilation[1] + stride[1] * (ow - 1) + 1: stride[1]]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y if b is None else y + np.asarray(b, np.float64)[None, :, None, None]


def diagnosis_names(actual, x, w, b=None, **kwargs):
    report, diagnoses = check_conv(actual, x, w, b, **kwargs)
    assert not report.passed, "the mistaken output unexpectedly passed"
    return [d.name for d in diagnoses]


# --- the reference and the tolerance ------------------------------------------------------------

def test_reference_matches_plain_float64_conv():
    x, w, b = normal(2, 3, 9, 8), normal(4, 3, 3, 2), normal(4)
    y = reference(x, w, b, stride=(2, 1), pad=(1, 0))
    np.testing.assert_allclose(y, plain_conv_nchw(x, w, b, (2, 1), (1, 0)), rtol=1e-12, atol=1e-12)
    assert y.dtype == np.float64


def test_default_rtol_formula():
    assert default_rtol(np.float32, 100) == pytest.approx(32 * 2.0 ** -24)
    assert default_rtol(np.float64, 1) == pytest.approx(5 * 2.0 ** -53)
    assert default_rtol(np.float16, 4) == pytest.approx(8 * 2.0 ** -11)


@pytest.mark.parametrize("params", [
    dict(stride=4),                                   # the seed's layer, K = 363
    dict(stride=(2, 1), pad=(1, 2), dilation=(1, 2)),
    dict(pad=1, group=3),
])
def test_correct_float32_outputs_pass(params):
    group = params.get("group", 1)
    x, w, b = normal(2, 3, 40, 37), normal(6, 3 // group, 11, 11), normal(6)
    for scale in (1.0, 1e-3, 1e4):        # the verdict must not depend on the data's scale
        actual = fastconv.conv2d_caffe(x * scale, w, b * scale, **params)
        report = assert_conv_close(actual, x * scale, w, b * scale, **params)
        assert report.passed and report.mismatches == 0


def test_correct_keras_layout_and_float16_pass():
    x, k, b = normal(1, 12, 10, 4), normal(3, 3, 4, 5), normal(5)
    actual = fastconv.conv2d_keras(x, k, b, strides=2, padding="same")
    assert_conv_close(actual, x, k, b, layout="keras", strides=2, padding="same")
    assert_conv_close(actual.astype(np.float16), x, k, b, layout="keras", strides=2, padding="same")
    with pytest.raises(AssertionError):   # float16 rounding is far outside float32's tolerance
        assert_conv_close(actual.astype(np.float16).astype(np.float32), x, k, b, layout="keras",
                          strides=2, padding="same")


def test_failure_message_has_errors_indices_and_count():
    x, w, b = normal(1, 3, 8, 8), normal(4, 3, 3, 3), normal(4)
    actual = fastconv.conv2d_caffe(x, w, b, pad=1).copy()
    actual[0, 2, 5, 6] += 0.5
    actual[0, 1, 0, 0] += 0.01
    with pytest.raises(AssertionError) as info:
        assert_conv_close(actual, x, w, b, pad=1)
    message = str(info.value)
    assert "NCHW [0, 2, 5, 6] = NHWC [0, 5, 6, 2]" in message
    assert "mismatches: 2 of 256" in message
    assert "max abs error 0.5" in message
    assert "diagnosis: none. No known porting mistake reproduces actual" in message
    assert "pairs of them" in message and "TF32" not in message


def test_compare_on_its_own():
    expected = np.arange(24.0).reshape(1, 2, 3, 4)
    report = compare(expected + 1e-9, expected, rtol=1e-6, layout="nchw")
    assert report and report.mismatches == 0
    bad = expected.copy()
    bad[0, 1, 2, 3] = np.nan
    report = compare(bad, expected, rtol=1e-6, layout="nchw")
    assert not report and report.mismatches == 1 and report.worst_index_nhwc == (0, 2, 3, 1)
    assert not compare(expected[..., :3], expected).shape_matches
    with pytest.raises(ValueError, match="layout"):
        compare(expected, expected, layout="hwcn")


@pytest.mark.parametrize("shape, layout", [((5,), "nchw"), ((2, 3, 4), "nhwc"),
                                           ((1, 2, 3, 2, 2), "nchw")])
def test_summary_of_an_array_that_is_not_4d_gives_its_own_index(shape, layout):
    expected = np.arange(float(np.prod(shape))).reshape(shape)
    actual = expected.copy()
    worst = tuple(size - 1 for size in shape)
    actual[worst] += 1.0
    report = compare(actual, expected, rtol=1e-6, layout=layout)
    assert not report and report.worst_index == worst
    assert report.worst_index_nchw is None and report.worst_index_nhwc is None
    summary = report.summary()
    assert f"worst element: index {list(worst)}: actual" in summary
    assert "NCHW" not in summary and "NHWC" not in summary


def test_bad_calls_are_refused_clearly():
    x, w = normal(1, 3, 8, 8), normal(4, 3, 3, 3)
    with pytest.raises(TypeError, match="strides belong to layout='keras'"):
        reference(x, w, strides=2)
    with pytest.raises(ValueError, match="keras_to_caffe_kernel"):
        reference(x, fastconv.caffe_to_keras_kernel(normal(4, 3, 3, 2)))


# --- exact mode ---------------------------------------------------------------------------------

def test_exact_inputs_are_exact_in_float32():
    x, w, b = exact_conv_inputs((2, 16, 12, 12), (8, 16, 5, 5), seed=1)
    assert x.dtype == np.float32 and np.all(x == np.round(x)) and b.shape == (8,)
    kernel_dim = 16 * 25
    assert kernel_dim * np.abs(x).max() * np.abs(w).max() + np.abs(b).max() <= EXACT_LIMIT
    y32 = fastconv.conv2d_caffe(x, w, b, pad=2)
    assert np.array_equal(y32, reference(x, w, b, pad=2))   # bit-exact, not merely close
    assert_conv_close(y32, x, w, b, exact=True, pad=2)


def test_exact_mode_catches_a_single_ulp():
    x, k, b = exact_conv_inputs((1, 9, 9, 4), (3, 3, 4, 6), layout="keras", seed=2)
    actual = fastconv.conv2d_keras(x, k, b)
    actual[0, 3, 3, 5] = np.nextafter(actual[0, 3, 3, 5], np.float32(np.inf))
    assert_conv_close(actual, x, k, b, layout="keras")              # within float tolerance
    with pytest.raises(AssertionError, match="mismatches: 1 of") as info:
        assert_conv_close(actual, x, k, b, layout="keras", exact=True)
    assert "NHWC [0, 3, 3, 5]" in str(info.value)
    actual[0, 1, 1, 1] += 1
    with pytest.raises(AssertionError, match="mismatches: 2 of") as info:
        assert_conv_close(actual, x, k, b, layout="keras", exact=True)
    assert "NHWC [0, 1, 1, 1]" in str(info.value)          # the largest of the errors


def test_exact_mode_rejects_inputs_outside_the_bound():
    x, w = normal(1, 2, 5, 5), normal(2, 2, 3, 3)
    with pytest.raises(ValueError, match="integer-valued"):
        assert_conv_close(fastconv.conv2d_caffe(x, w), x, w, exact=True)
    big = np.full((1, 2, 5, 5), 4096.0, np.float32)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        assert_conv_close(fastconv.conv2d_caffe(big, big[:, :, :3, :3]), big, big[:, :, :3, :3], exact=True)
    with pytest.raises(ValueError, match="bound"):
        exact_conv_inputs((1, 64, 9, 9), (4, 64, 3, 3), max_abs=1000)


# --- each porting mistake, made for real ------------------------------------------------------

X = normal(2, 4, 11, 10)
W = normal(6, 4, 3, 3)
B = normal(6)


def test_kernel_reshaped_caffe_to_keras():
    bad_kernel = W.reshape(3, 3, 4, 6)                      # the naive port
    actual = fastconv.conv2d_keras(fastconv.nchw_to_nhwc(X), bad_kernel, B)
    names = diagnosis_names(actual, fastconv.nchw_to_nhwc(X), fastconv.caffe_to_keras_kernel(W),
                            B, layout="keras")
    assert names[0] == "kernel_reshaped_caffe_to_keras"


def test_kernel_reshaped_keras_to_caffe():
    kernel = fastconv.caffe_to_keras_kernel(W)
    actual = fastconv.conv2d_caffe(X, kernel.reshape(6, 4, 3, 3), B)
    assert diagnosis_names(actual, X, W, B)[0] == "kernel_reshaped_keras_to_caffe"


def test_kernel_flipped_theano():
    theano_kernel = fastconv.caffe_to_keras_kernel(W)
    actual = fastconv.conv2d_keras(fastconv.nchw_to_nhwc(X), theano_kernel[::-1, ::-1], B, padding="same")
    names = diagnosis_names(actual, fastconv.nchw_to_nhwc(X), theano_kernel, B, layout="keras",
                            padding="same")
    assert names == ["kernel_flipped"]


def test_kernel_hw_swapped():
    actual = fastconv.conv2d_keras(fastconv.nchw_to_nhwc(X), W.transpose(3, 2, 1, 0), B)
    names = diagnosis_names(fastconv.nhwc_to_nchw(actual), X, W, B)
    assert names == ["kernel_hw_swapped"]


def test_input_reshaped_both_directions():
    x_nhwc_bad = X.reshape(2, 11, 10, 4)
    actual = fastconv.nhwc_to_nchw(fastconv.conv2d_keras(x_nhwc_bad, fastconv.caffe_to_keras_kernel(W), B))
    assert diagnosis_names(actual, X, W, B)[0] == "input_reshaped_nchw_to_nhwc"
    x_nhwc = fastconv.nchw_to_nhwc(X)
    actual = fastconv.conv2d_caffe(x_nhwc.reshape(X.shape), W, B)
    assert diagnosis_names(actual, X, W, B)[0] == "input_reshaped_nhwc_to_nchw"


def test_output_in_other_layout_and_reshaped():
    y_nchw = fastconv.conv2d_caffe(X, W, B)
    x_nhwc, kernel = fastconv.nchw_to_nhwc(X), fastconv.caffe_to_keras_kernel(W)
    assert diagnosis_names(y_nchw, x_nhwc, kernel, B, layout="keras") == ["output_in_nchw"]
    assert diagnosis_names(y_nchw.reshape(2, 9, 8, 6), x_nhwc, kernel, B,
                           layout="keras") == ["output_reshaped_from_nchw"]
    assert diagnosis_names(y_nchw.transpose(0, 2, 3, 1), X, W, B) == ["output_in_nhwc"]


def test_same_instead_of_caffe_pad_resnet_stem():
    """caffe-tensorflow's mistake: 7x7/2 pad 3 ported as 'same' (same shape, wrong values)."""
    x, w, b = normal(1, 3, 32, 32), normal(8, 3, 7, 7), normal(8)
    actual = fastconv.conv2d_keras(fastconv.nchw_to_nhwc(x), fastconv.caffe_to_keras_kernel(w), b,
                                   strides=2, padding="same")
    actual = fastconv.nhwc_to_nchw(actual)
    assert actual.shape == fastconv.conv2d_caffe(x, w, b, stride=2, pad=3).shape
    assert diagnosis_names(actual, x, w, b, stride=2, pad=3) == ["same_instead_of_caffe_pad"]


def test_caffe_pad_instead_of_same():
    x, w, b = normal(1, 3, 16, 16), normal(4, 3, 3, 3), normal(4)
    actual = fastconv.nchw_to_nhwc(fastconv.conv2d_caffe(x, w, b, stride=2, pad=1))
    names = diagnosis_names(actual, fastconv.nchw_to_nhwc(x), fastconv.caffe_to_keras_kernel(w), b,
                            layout="keras", strides=2, padding="same")
    assert names == ["caffe_pad_instead_of_same"]


def test_floor_instead_of_truncation():
    x, w, b = normal(1, 2, 5, 5), normal(3, 2, 6, 6), normal(3)
    assert fastconv.conv2d_caffe(x, w, b, stride=4).shape == (1, 3, 1, 1)
    floor_size = (5 - 6) // 4 + 1                         # a port that floors makes no output
    actual = np.zeros((1, 3, floor_size, floor_size), np.float32)
    assert diagnosis_names(actual, x, w, b, stride=4) == ["floor_instead_of_truncation"]


def test_bias_missing():
    actual = fastconv.conv2d_caffe(X, W, None, stride=2)
    assert diagnosis_names(actual, X, W, B, stride=2) == ["bias_missing"]


def grouped_loop(x, w, b, group, input_block, output_order=None):
    """A hand-written grouped convolution; `input_block(g)` picks group g's input channels."""
    out_per_group = w.shape[0] // group
    outputs = [fastconv.conv2d_caffe(np.ascontiguousarray(x[:, input_block(g)]),
                                     w[g * out_per_group:(g + 1) * out_per_group],
                                     b[g * out_per_group:(g + 1) * out_per_group])
               for g in range(group)]
    y = np.concatenate(outputs, axis=1)
    return y if output_order is None else y[:, output_order]


def test_groups_swapped_and_interleaved():
    x, w, b = normal(1, 6, 7, 7), normal(4, 3, 3, 3), normal(4)
    right = grouped_loop(x, w, b, 2, lambda g: slice(3 * g, 3 * g + 3))
    assert_conv_close(right, x, w, b, group=2)
    swapped = grouped_loop(x, w, b, 2, lambda g: slice(3 * (1 - g), 3 * (1 - g) + 3))
    assert diagnosis_names(swapped, x, w, b, group=2) == ["groups_swapped"]
    interleaved = grouped_loop(x, w, b, 2, lambda g: slice(g, None, 2))
    assert diagnosis_names(interleaved, x, w, b, group=2) == ["groups_interleaved"]
    mixed_outputs = right[:, [0, 2, 1, 3]]                   # filter j of group g at j*G + g
    assert diagnosis_names(mixed_outputs, x, w, b, group=2) == ["output_groups_interleaved"]


def test_dilation_dropped_and_stride_pad_swapped():
    x_nhwc, kernel, b = normal(1, 12, 12, 3), normal(3, 3, 3, 4), normal(4)
    actual = fastconv.conv2d_keras(x_nhwc, kernel, b, padding="same")     # dilation forgotten
    assert diagnosis_names(actual, x_nhwc, kernel, b, layout="keras", padding="same",
                           dilation_rate=2) == ["dilation_dropped"]
    x, w = normal(1, 3, 12, 16), normal(4, 3, 3, 3)
    actual = fastconv.conv2d_caffe(x, w, b, stride=(1, 2))
    assert "stride_hw_swapped" in diagnosis_names(actual, x, w, b, stride=(2, 1))
    actual = fastconv.conv2d_caffe(x, w, b, pad=(0, 1))
    assert diagnosis_names(actual, x, w, b, pad=(1, 0)) == ["pad_hw_swapped"]


def round_to_tf32(a):
    """Round float32 values to TF32's 10 explicit mantissa bits (nearest, ties away)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((bits + np.uint32(1 << 12)) & np.uint32(0xFFFFE000)).view(np.float32)


def test_tf32_sized_error_named_only_when_it_fits():
    x, w, b = normal(1, 3, 60, 60), normal(16, 3, 11, 11), normal(16)
    tf32 = fastconv.conv2d_caffe(round_to_tf32(x), round_to_tf32(w), b, stride=4)
    assert diagnosis_names(tf32, x, w, b, stride=4) == ["tf32"]
    right = fastconv.conv2d_caffe(x, w, b, stride=4)
    noisy = right + 1e-2 * np.abs(right).max() * normal(*right.shape)
    assert diagnosis_names(noisy, x, w, b, stride=4) == []


def test_no_diagnosis_claimed_for_unrelated_garbage():
    actual = normal(2, 6, 9, 8)
    assert diagnosis_names(actual, X, W, B) == []


def test_importing_fastconv_testing_imports_no_framework():
    code = ("import sys, fastconv, fastconv.testing, fastconv.keras, fastconv.pytest_plugin, fastconv.cli; "
            "bad = [m for m in ('tensorflow', 'keras', 'torch', 'jax', 'hypothesis') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the pytest plugin ---------------------------------------------------------------------

PLUGIN_TEST = '''
import numpy as np

def test_port(conv_oracle):
    x, w, b = conv_oracle.exact_inputs((1, 3, 9, 9), (4, 3, 3, 3), seed=0)
    ref = conv_oracle.reference(x, w, b, pad=1)
    conv_oracle.assert_close(ref.astype(np.float32), x, w, b, pad=1, exact=True)

def test_broken_port(conv_oracle):
    x, w, b = conv_oracle.exact_inputs((1, 3, 9, 9), (4, 3, 3, 3), seed=0)
    conv_oracle.assert_close(conv_oracle.reference(x, w[:, :, ::-1, ::-1], b, pad=1), x, w, b, pad=1)

def test_pooling_port(conv_oracle):
    x = np.arange(64.0).reshape(1, 1, 8, 8)
    conv_oracle.assert_pool_close(x[:, :, 1::2, 1::2], x, 2, stride=2)   # MAX 2x2/2, by hand
    assert not conv_oracle.check_pool(x[:, :, 1:7:2, 1:7:2], x, 3, stride=2)
'''


def test_pytest_plugin_fixture(tmp_path):
    """A user's test asks for ``conv_oracle``. Installed, fastconv's pytest11 entry point loads
    the plugin by itself (naming it again with -p would register it twice); run from a source
    tree without installing, it has to be named."""
    import importlib.metadata
    import os

    (tmp_path / "test_user.py").write_text(PLUGIN_TEST)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    installed = any(entry.value == "fastconv.pytest_plugin"
                    for entry in importlib.metadata.entry_points(group="pytest11"))
    load_plugin = [] if installed else ["-p", "fastconv.pytest_plugin"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *load_plugin, "-q", "-p", "no:cacheprovider",
         str(tmp_path / "test_user.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    assert "diagnosis: kernel spatially flipped" in result.stdout


def test_pyproject_declares_plugin_and_script():
    import pathlib
    try:
        import tomllib                                  # Python >= 3.11
    except ModuleNotFoundError:
        tomllib = pytest.importorskip("tomli")          # its backport, for 3.9 and 3.10
    root = pathlib.Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"]["fastconv"] == "fastconv.pytest_plugin"
    assert project["scripts"]["fastconv"] == "fastconv.cli:main"
