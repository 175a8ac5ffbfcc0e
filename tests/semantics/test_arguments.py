"""Bad input gets a clear exception naming the argument and the Caffe/Keras parameter; odd but
valid inputs (dtypes, memory layouts, read-only, big-endian) work and are never modified."""
import re
import numpy as np
import pytest

import fastconv
from reference.conv import caffe_conv


def arrays(n=1, c=4, h=9, w=9, o=6, cg=4, kh=3, kw=3, dtype=np.float32):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, c, h, w)).astype(dtype),
            rng.standard_normal((o, cg, kh, kw)).astype(dtype),
            rng.standard_normal(o).astype(dtype))


@pytest.mark.parametrize("kwargs, x_shape, w_shape, exc, words", [
    ({}, (4, 9, 9), (6, 4, 3, 3), ValueError, ["x must be 4-D", "(N, C, H, W)"]),
    ({}, (1, 4, 9, 9), (6, 4, 3), ValueError, ["w must be 4-D", "num_output"]),
    ({}, (1, 5, 9, 9), (6, 4, 3, 3), ValueError, ["w.shape[1]=4", "C=5"]),
    ({"group": 3}, (1, 4, 9, 9), (6, 1, 3, 3), ValueError, ["group=3", "channels % group"]),
    ({"group": 4}, (1, 4, 9, 9), (6, 1, 3, 3), ValueError, ["group=4", "num_output=6"]),
    ({"group": 0}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["group=0", "Caffe group"]),
    ({"stride": 0}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["stride=0", "Caffe stride"]),
    ({"stride": (1, 0)}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["stride=(1, 0)"]),
    ({"stride": (2, 2, 2)}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["stride", "(h, w) pair"]),
    ({"stride": 1.5}, (1, 4, 9, 9), (6, 4, 3, 3), TypeError, ["stride=1.5", "integer"]),
    ({"stride": True}, (1, 4, 9, 9), (6, 4, 3, 3), TypeError, ["stride=True"]),
    ({"pad": -1}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["pad=-1", "Caffe pad"]),
    ({"pad": (0, -2)}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["pad=(0, -2)"]),
    ({"dilation": 0}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["dilation=0", "Caffe dilation"]),
    ({}, (1, 4, 2, 9), (6, 4, 3, 3), ValueError, ["no output", "2x9", "extent 3x3"]),
    ({"dilation": 5}, (1, 4, 9, 9), (6, 4, 3, 3), ValueError, ["no output", "dilation 5"]),
    ({}, (1, 4, 9, 9), (6, 4, 0, 3), ValueError, ["kernel_h", ">= 1"]),
])
def test_bad_conv2d_caffe_arguments(kwargs, x_shape, w_shape, exc, words):
    x = np.zeros(x_shape, np.float32)
    w = np.zeros(w_shape, np.float32)
    with pytest.raises(exc) as info:
        fastconv.conv2d_caffe(x, w, **kwargs)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_bias_of_wrong_length():
    x, w, b = arrays()
    with pytest.raises(ValueError, match=r"b must have shape \(num_output,\) = \(6,\); got \(5,\)"):
        fastconv.conv2d_caffe(x, w, b[:5])


def test_keras_kernel_passed_as_caffe_gets_a_layout_hint():
    x, w, _ = arrays(c=3, cg=3, o=8, kh=5, kw=5)
    with pytest.raises(ValueError, match="looks like a Keras HWIO kernel"):
        fastconv.conv2d_caffe(x, fastconv.caffe_to_keras_kernel(w))


def test_nhwc_data_passed_as_caffe_gets_a_layout_hint():
    x, w, _ = arrays(c=3, cg=3, h=10, w=12)
    with pytest.raises(ValueError, match="looks like NHWC"):
        fastconv.conv2d_caffe(fastconv.nchw_to_nhwc(x), w)


def test_caffe_kernel_passed_as_keras_gets_a_layout_hint():
    x, w, _ = arrays(c=3, cg=3, o=8, kh=5, kw=5)
    with pytest.raises(ValueError, match="looks like a Caffe OIHW blob"):
        fastconv.conv2d_keras(fastconv.nchw_to_nhwc(x), w)


@pytest.mark.parametrize("kwargs, words", [
    ({"padding": "full"}, ["padding='full'", "'valid' or 'same'"]),
    ({"padding": 1}, ["padding=1"]),
    ({"data_format": "NCHW"}, ["data_format='NCHW'"]),
    ({"strides": 0}, ["strides=0"]),
    ({"dilation_rate": (1, 0)}, ["dilation_rate=(1, 0)"]),
    ({"groups": 3}, ["groups=3", "channels"]),
])
def test_bad_conv2d_keras_arguments(kwargs, words):
    x = np.zeros((1, 9, 9, 4), np.float32)
    kernel = np.zeros((3, 3, 4, 6), np.float32)
    with pytest.raises((ValueError, TypeError)) as info:
        fastconv.conv2d_keras(x, kernel, **kwargs)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_keras_valid_with_input_smaller_than_kernel():
    with pytest.raises(ValueError, match="no output"):
        fastconv.conv2d_keras(np.zeros((1, 2, 9, 1)), np.zeros((3, 3, 1, 1)))


@pytest.mark.parametrize("dtype", [np.complex64, object, "U3"])
def test_unsupported_dtypes_raise_type_error(dtype):
    x = np.zeros((1, 1, 3, 3), dtype=dtype)
    with pytest.raises(TypeError, match="x has dtype"):
        fastconv.conv2d_caffe(x, np.zeros((1, 1, 1, 1), np.float32))


def test_extended_precision_raises_type_error():
    x = np.zeros((1, 1, 3, 3), dtype=np.longdouble)
    if np.dtype(np.longdouble) == np.dtype(np.float64):
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match="float32 or float64"):
        fastconv.conv2d_caffe(x, np.zeros((1, 1, 1, 1), np.float32))


@pytest.mark.parametrize("x_dtype, w_dtype, b_dtype, result", [
    (np.float32, np.float32, np.float32, np.float32),
    (np.float64, np.float64, None, np.float64),
    (np.float32, np.float64, None, np.float64),      # any float64 -> float64
    (np.float32, np.float32, np.float64, np.float64),
    (np.float16, np.float16, None, np.float32),      # half computes in float32
    (np.float16, np.float32, None, np.float32),
    (np.uint8, np.float32, None, np.float32),        # image bytes with float weights
    (np.int64, np.float32, None, np.float64),        # numpy's promotion rule
    (np.int32, np.int32, None, np.float64),
    (np.bool_, np.float32, None, np.float32),
])
def test_result_dtype_follows_numpy_promotion(x_dtype, w_dtype, b_dtype, result):
    rng = np.random.default_rng(1)
    x = (rng.random((2, 3, 6, 7)) * 4).astype(x_dtype)
    w = (rng.random((4, 3, 3, 2)) * 4 - 2).astype(w_dtype)
    b = None if b_dtype is None else rng.random(4).astype(b_dtype)
    y = fastconv.conv2d_caffe(x, w, b, pad=1)
    assert y.dtype == result
    expected = caffe_conv(x.astype(np.float64), w.astype(np.float64),
                            None if b is None else b.astype(np.float64), (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_odd_memory_layouts_and_inputs_untouched():
    rng = np.random.default_rng(2)
    base_x = rng.standard_normal((2, 6, 15, 14))
    base_w = rng.standard_normal((8, 3, 3, 4))
    b = rng.standard_normal(8)
    expected = caffe_conv(base_x, base_w, b, (2, 1), (1, 2), (1, 1), 2)
    variants = {
        "fortran": (np.asfortranarray(base_x), np.asfortranarray(base_w)),
        "strided": (np.repeat(base_x, 2, axis=3)[:, :, :, ::2], base_w[:, :, :, ::-1][:, :, :, ::-1]),
        "big-endian": (base_x.astype(">f8"), base_w.astype(">f8")),
        "read-only": (base_x.copy(), base_w.copy()),
    }
    for name, (x, w) in variants.items():
        if name == "read-only":
            x.setflags(write=False)
            w.setflags(write=False)
        before = (x.copy(), w.copy(), b.copy())
        y = fastconv.conv2d_caffe(x, w, b, stride=(2, 1), pad=(1, 2), group=2)
        assert y.dtype == np.float64 and y.flags.c_contiguous, name
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12, err_msg=name)
        for original, after in zip(before, (x, w, b)):
            assert np.array_equal(original, after), f"{name}: input modified"


def test_lists_are_accepted_as_arrays():
    y = fastconv.conv2d_caffe([[[[1.0, 2.0], [3.0, 4.0]]]], [[[[1.0]]]], [0.5])
    np.testing.assert_array_equal(y, [[[[1.5, 2.5], [3.5, 4.5]]]])


def test_empty_batch():
    y = fastconv.conv2d_caffe(np.zeros((0, 3, 8, 8), np.float32), np.zeros((5, 3, 3, 3), np.float32))
    assert y.shape == (0, 5, 6, 6)


def test_numpy_integer_parameters_and_pairs():
    x, w, b = arrays()
    y1 = fastconv.conv2d_caffe(x, w, b, stride=np.int64(2), pad=[np.int32(1), 1])
    y2 = fastconv.conv2d_caffe(x, w, b, stride=(2, 2), pad=1)
    y3 = fastconv.conv2d_caffe(x, w, b, stride=np.array([2, 2]), pad=np.array([1, 1]))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(y3, y2)
    # A 2-D array is not a pair, however many values it holds.
    with pytest.raises(ValueError, match=r"stride=array\(\[\[2, 1\]\]\) must be an int or a 1-D"):
        fastconv.conv2d_caffe(x, w, b, stride=np.array([[2, 1]]))
    with pytest.raises(ValueError, match="got a 2-D array"):
        fastconv.convnd_caffe(x[:, :, None], w[:, :, None], pad=np.zeros((3, 1), int))


@pytest.mark.parametrize("kwargs,words", [
    (dict(pad=2**40), "pad=1099511627776 is out of range: Caffe/Keras parameter pad is a 32-bit"),
    (dict(stride=(1, 2**31)), "parameter stride_w is a 32-bit"),
    (dict(dilation=-2**33), "parameter dilation is a 32-bit"),
    (dict(group=2**31), "parameter group is a 32-bit"),
])
def test_parameters_beyond_caffes_int32_raise(kwargs, words):
    """Caffe stores these as 32-bit integers; larger ones are a mistake, and must not reach the
    C core's index arithmetic or numpy's allocator with a message that names neither."""
    x, w, b = arrays()
    with pytest.raises(ValueError, match=re.escape(words)):
        fastconv.conv2d_caffe(x, w, b, **kwargs)
    with pytest.raises(ValueError, match="32-bit"):
        fastconv.conv2d_keras(np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 2, 2)), strides=2**40)


def test_missing_array_is_named():
    x, w, _ = arrays()
    with pytest.raises(TypeError, match="w is None"):
        fastconv.conv2d_caffe(x, None)


@pytest.mark.parametrize("call, words", [
    (lambda: fastconv.conv2d_caffe(np.zeros((1, 4, 9, 9)), np.zeros((6, 4, 3, 3)), pad=2**31 - 1),
     ["pad=2147483647", "more than this machine can address"]),
    (lambda: fastconv.deconv2d_caffe(np.zeros((1, 4, 9, 9)), np.zeros((4, 2, 3, 3)),
                                     stride=2**31 - 1), ["stride=2147483647", "address"]),
    (lambda: fastconv.pool2d_caffe(np.zeros((1, 1, 1, 1)), 2**31 - 1, pad=2**31 - 2),
     ["kernel_size=2147483647", "pad=2147483646", "address"]),
    (lambda: fastconv.conv2d_transpose_keras(np.zeros((1, 9, 9, 2)), np.zeros((3, 3, 2, 2)),
                                             strides=2**31 - 1), ["strides=2147483647", "address"]),
], ids=["conv2d", "deconv2d", "pool2d", "transpose_keras"])
def test_outputs_too_large_to_address_name_the_parameter(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), str(info.value)


def test_outputs_beyond_this_machines_memory_name_the_parameter():
    """Addressable, but more than the machine's memory even in float32: refused before the
    allocator (whose MemoryError names no parameter) or minutes of swapping."""
    with pytest.raises(ValueError, match=r"stride=1048576 .* GiB even in float32, more than "
                                         r"this machine's .* GiB of memory"):
        fastconv.deconv2d_caffe(np.zeros((1, 1, 1000, 1000)), np.zeros((1, 1, 1, 1)),
                                stride=2**20)


def test_keras_empty_spatial_axis_is_named_as_such():
    kernel = np.zeros((3, 3, 3, 2), np.float32)
    for padding in ("valid", "same"):
        with pytest.raises(ValueError, match="empty spatial axis"):
            fastconv.conv2d_keras(np.zeros((1, 0, 5, 3), np.float32), kernel, padding=padding)


@pytest.mark.parametrize("round_mode", [True, False, "ROUND", 2])
def test_pooling_round_mode_must_be_caffes_enum(round_mode):
    # The parser behind fastconv.keras.pooling_from_caffe (which needs Keras to be called).
    from fastconv._params.caffe_message import pooling_param_kwargs

    # True == 1 is FLOOR's number: a bool must not slip through as the enum.
    with pytest.raises(ValueError, match="round_mode"):
        pooling_param_kwargs({"pool": "MAX", "kernel_size": 2, "stride": 2,
                              "round_mode": round_mode})
