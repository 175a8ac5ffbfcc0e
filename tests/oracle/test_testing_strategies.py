"""fastconv.testing.strategies: every draw is a valid call, and the results match independent
float64 references written in tests/ (not fastconv's own reference)."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")   # at the top: a missing hypothesis skips it all
from hypothesis import find, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastconv  # noqa: E402
from fastconv.testing import assert_conv_close, strategies  # noqa: E402
from reference.pool import caffe_pool2d  # noqa: E402
from reference.conv import caffe_conv  # noqa: E402
from reference.deconv import caffe_deconv2d  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(strategies.caffe_conv_cases())
def test_caffe_conv_draws_are_valid_and_exact(case):
    x, w, b, params = case
    y = fastconv.conv2d_caffe(x, w, b, **params)          # never raises: every draw is valid
    np.testing.assert_array_equal(y, caffe_conv(x, w, b, **params))
    assert_conv_close(y, x, w, b, exact=True, **params)


@settings(max_examples=40, deadline=None)
@given(strategies.keras_conv_cases(exact=False))
def test_keras_conv_draws_are_valid(case):
    x, kernel, bias, params = case
    assert max(params["strides"]) == 1 or max(params["dilation_rate"]) == 1
    assert_conv_close(fastconv.conv2d_keras(x, kernel, bias, **params), x, kernel, bias,
                      layout="keras", **params)


def truncates(spec):
    for axis in (0, 1):
        span = spec["dilation"][axis] * (spec["w_shape"][2 + axis] - 1) + 1
        if spec["x_shape"][2 + axis] + 2 * spec["pad"][axis] - span < 0:
            return True
    return False


def test_caffe_conv_reaches_the_truncation_case():
    find(strategies.caffe_conv_params(), truncates, settings=settings(database=None))


@settings(max_examples=60, deadline=None)
@given(strategies.caffe_conv_params(caffe_only_geometries=False))
def test_portable_conv_geometries_leave_out_the_truncation_case(spec):
    assert not truncates(spec)


@settings(max_examples=40, deadline=None)
@given(strategies.caffe_deconv_cases())
def test_caffe_deconv_draws_are_valid_and_exact(case):
    x, w, b, params = case
    y = fastconv.deconv2d_caffe(x, w, b, **params)
    np.testing.assert_array_equal(y, caffe_deconv2d(x, w, b, **params))


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def pytorch_deconv(torch, x, w, b, params):
    """Caffe's Deconvolution as PyTorch's conv_transpose2d (same blob layout, pad = padding)."""
    as_tensor = torch.from_numpy
    return torch.nn.functional.conv_transpose2d(
        as_tensor(x), as_tensor(w), None if b is None else as_tensor(b), stride=params["stride"],
        padding=params["pad"], dilation=params["dilation"], groups=params["group"]).numpy()


@pytest.mark.parametrize("caffe_only_geometries", [False, True])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_deconv_draws_run_in_pytorch_as_in_caffe(torch, caffe_only_geometries, data):
    """Both settings draw only geometries PyTorch runs, with Caffe's result: integer data
    within the exactness bound, so any difference at all is a disagreement."""
    x, w, b, params = data.draw(strategies.caffe_deconv_cases(
        caffe_only_geometries=caffe_only_geometries))
    np.testing.assert_array_equal(pytorch_deconv(torch, x, w, b, params),
                                  fastconv.deconv2d_caffe(x, w, b, **params))


def test_portable_deconv_draws_reach_pads_beyond_the_kernels_extent():
    """The geometries a guess would have left out are drawn (and run in PyTorch above)."""
    def pad_beyond_extent(spec):
        return any(spec["pad"][axis] > spec["dilation"][axis] * (spec["w_shape"][2 + axis] - 1)
                   for axis in (0, 1))
    find(strategies.caffe_deconv_params(caffe_only_geometries=False), pad_beyond_extent,
         settings=settings(database=None))


# Geometries a guess would expect PyTorch to refuse: pads beyond the kernel's extent, a stride
# above the kernel, a 1-cell output, with dilation and groups. (x_shape, w_shape, params)
DECONV_EDGES = [
    ((1, 2, 4, 5), (2, 3, 1, 1), dict(stride=3, pad=2, dilation=1, group=1)),
    ((2, 4, 3, 4), (4, 1, 2, 3), dict(stride=(1, 2), pad=(2, 3), dilation=(2, 1), group=2)),
    ((1, 3, 3, 3), (3, 2, 2, 2), dict(stride=4, pad=0, dilation=1, group=1)),
    ((1, 6, 3, 2), (6, 2, 3, 2), dict(stride=(3, 1), pad=(3, 1), dilation=(1, 2), group=3)),
]


@pytest.mark.parametrize("x_shape, w_shape, params", DECONV_EDGES)
def test_pytorch_accepts_caffes_edge_deconvolutions(torch, x_shape, w_shape, params):
    rng = np.random.default_rng(5)
    x = rng.integers(-8, 8, x_shape).astype(np.float32)
    w = rng.integers(-8, 8, w_shape).astype(np.float32)
    b = rng.integers(-8, 8, w_shape[1] * params["group"]).astype(np.float32)
    expected = caffe_deconv2d(x, w, b, **{key: np.broadcast_to(value, 2).tolist()
                                          if key != "group" else value
                                          for key, value in params.items()})
    np.testing.assert_array_equal(pytorch_deconv(torch, x, w, b, params), expected)
    np.testing.assert_array_equal(fastconv.deconv2d_caffe(x, w, b, **params), expected)


@settings(max_examples=60, deadline=None)
@given(strategies.caffe_pool_cases())
def test_caffe_pool_draws_are_valid(case):
    x, kernel_size, params = case
    y = fastconv.pool2d_caffe(x, kernel_size, **params)
    kernel = (1, 1) if kernel_size is None else kernel_size
    expected = caffe_pool2d(x, kernel, params["stride"] if params["stride"] != 1 else (1, 1),
                            params["pad"] if params["pad"] != 0 else (0, 0), params["method"],
                            params["global_pooling"])
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)


@settings(max_examples=60, deadline=None)
@given(strategies.caffe_pool_params(caffe_only_geometries=False))
def test_portable_pool_geometries_stay_within_pytorchs_limits(spec):
    if spec["global_pooling"]:
        return
    for axis in (0, 1):
        kernel, pad = spec["kernel_size"][axis], spec["pad"][axis]
        assert pad <= kernel // 2
        assert spec["x_shape"][2 + axis] + 2 * pad >= kernel
