"""One convolution, one answer: every API that computes the same convolution gives the same bits.

conv2d_caffe, convnd_caffe and conv2d_keras (NHWC and NCHW) on one convolution; Caffe's identity
"Deconvolution forward with w = Convolution backward-data with w"; the backward pass for every
thread count. Bitwise, not approximately: one engine serves every pass. Each case is also
checked against the float64 reference of tests/reference/conv.py, so identical wrong answers fail.
"""
import numpy as np
import pytest

import fastconv

from reference.conv import caffe_conv, caffe_conv2d_backward
from reference.tolerance import assert_scaled_close

# (x shape, w shape, stride, pad, dilation, group): plain, strided with kh != kw and sh != sw,
# dilated, grouped, depthwise, 1x1, and one large enough to be split over threads.
CASES = [
    ((2, 5, 11, 13), (7, 5, 3, 2), (1, 1), (1, 0), (1, 1), 1),
    ((1, 4, 23, 19), (6, 4, 5, 3), (2, 3), (2, 1), (1, 1), 1),
    ((1, 3, 17, 21), (5, 3, 3, 3), (1, 2), (2, 2), (2, 3), 1),
    ((2, 6, 12, 12), (9, 2, 3, 3), (1, 1), (1, 1), (1, 1), 3),
    ((2, 8, 15, 14), (8, 1, 3, 3), (2, 1), (1, 1), (1, 2), 8),
    ((1, 16, 9, 10), (12, 16, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    # 1x1 whose output channels fill every engine's micro-panels (channels last runs them as
    # the transposed product): k over two reduction blocks, and grouped.
    ((2, 600, 5, 6), (96, 600, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    ((1, 64, 7, 9), (96, 32, 1, 1), (1, 1), (0, 0), (1, 1), 2),
    # 1x1 of 64 output channels (48 + 16 on AVX-512: the last panel's kernel stores into C
    # directly), and of more output channels than pixels (channels last: column blocks of
    # whole vectors between the threads).
    ((1, 128, 16, 18), (64, 128, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    ((1, 128, 8, 9), (272, 128, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    # NCHW 1x1 reads the image in place (B unpacked): three k blocks, edge rows of C, a last
    # panel with part of a vector (packed), and images side by side in groups.
    ((1, 1100, 7, 7), (20, 1100, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    ((3, 48, 9, 11), (36, 24, 1, 1), (1, 1), (0, 0), (1, 1), 2),
    # Many output channels on few pixels: rows split between threads (AlexNet conv3's shape,
    # smaller), from NCHW and from channels-last data; 'valid' rows packed as vector copies.
    ((1, 64, 9, 9), (192, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 40, 7, 8), (224, 40, 3, 3), (1, 1), (0, 0), (1, 1), 1),
    # Several reduction blocks of a channels-last image: copied to NCHW once per task, and (the
    # copy larger than a packed B block) once per k block.
    ((1, 80, 9, 10), (16, 80, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 520, 4, 200), (8, 520, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 32, 40, 37), (48, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    # Backward-data of images side by side in column blocks that cross from one image into
    # the next, scattered from the last block to the first.
    ((3, 16, 23, 29), (24, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 8, 20, 37), (12, 8, 3, 5), (1, 1), (2, 4), (2, 2), 1),
    # Stride 1 with output rows of whole vectors on some engines: B read in place from a
    # padded copy, tiles cut at the rows' ends (32: 32 on AVX-512 float32, 16 + 16 on AVX2;
    # 48; 40 with dilation), grouped and 'valid', two k blocks with edge rows of C.
    ((2, 24, 10, 32), (40, 24, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 20, 9, 52), (16, 10, 3, 5), (1, 1), (0, 0), (1, 1), 2),
    ((1, 16, 12, 40), (24, 16, 3, 3), (1, 1), (2, 2), (2, 2), 1),
    ((1, 64, 6, 32), (20, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    # Rows of 64 (a panel and a vector on AVX-512 float32: tiles of 32 + 32), with the
    # threads' column blocks ending inside rows.
    ((1, 32, 21, 64), (24, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    # 'same' padding packed with per-tap lists of its columns (5 x 5 on rows of 27), and with
    # more padding columns than the lists hold (7 x 7 on 20 x 20: found run by run).
    ((1, 48, 27, 27), (32, 48, 5, 5), (1, 1), (2, 2), (1, 1), 1),
    ((1, 16, 20, 20), (8, 16, 7, 7), (1, 1), (3, 3), (1, 1), 1),
    # Weight gradients through the direct kernel (output channels filling its panels, 512
    # pixels or more): rows of col not a whole number of tiles; strided, dilated and grouped.
    ((2, 15, 17, 19), (48, 15, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 12, 29, 33), (128, 6, 3, 2), (2, 1), (1, 0), (1, 2), 2),
    # 'valid' rows packed from pieces found once per block: strided along the rows, and with
    # more pieces than the list holds (one-pixel rows: found run by run).
    ((1, 24, 21, 40), (16, 24, 3, 3), (2, 1), (0, 0), (1, 1), 1),
    ((1, 24, 400, 3), (8, 24, 3, 3), (1, 1), (0, 0), (1, 1), 1),
    # A first layer (three channels, 64 outputs): the direct convolution, not the GEMM.
    ((1, 3, 29, 27), (64, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1),
    # Depthwise over rows and channels wider than every engine's vectors (NCHW sums along the
    # row, channels last across the channels, each with a partial last vector), and strided
    # along the row.
    ((1, 37, 11, 41), (37, 1, 3, 3), (1, 1), (1, 1), (1, 1), 37),
    ((2, 20, 9, 35), (20, 1, 5, 3), (2, 2), (2, 1), (1, 2), 20),
]
DTYPES = [np.float32, np.float64]
IDS = ["x{}w{}s{}p{}d{}g{}".format(*case) for case in CASES]


def bits(array):
    return np.ascontiguousarray(array).view(np.uint8)


def inputs(case, dtype, seed=7):
    x_shape, w_shape = case[:2]
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype),
            rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype))


def caffe_kwargs(case):
    _, _, stride, pad, dilation, group = case
    return dict(stride=stride, pad=pad, dilation=dilation, group=group)


def keras_padded(x, pad):
    """Keras has no symmetric pad: the NCHW input padded explicitly, for padding='valid'."""
    ph, pw = pad
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def output_gradient(x, w, case, dtype, seed):
    shape = fastconv.conv2d_caffe(x, w, **caffe_kwargs(case)).shape
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_same_bits_through_every_api(case, dtype):
    x, w, b = inputs(case, dtype)
    _, _, stride, pad, dilation, group = case
    kwargs = caffe_kwargs(case)
    y = fastconv.conv2d_caffe(x, w, b, **kwargs)
    assert_scaled_close(y, caffe_conv(x, w, b, stride, pad, dilation, group),
                        int(np.prod(w.shape[1:])), dtype)

    assert np.array_equal(bits(fastconv.convnd_caffe(x, w, b, **kwargs)), bits(y))

    # The same convolution as Keras sees it: zero padding made explicit, HWIO kernel.
    padded = keras_padded(x, pad)
    kernel = w.transpose(2, 3, 1, 0)
    keras_kwargs = dict(strides=stride, padding="valid", dilation_rate=dilation, groups=group)
    y_first = fastconv.conv2d_keras(padded, kernel, b, data_format="channels_first",
                                    **keras_kwargs)
    assert np.array_equal(bits(y_first), bits(y))
    y_last = fastconv.conv2d_keras(np.ascontiguousarray(padded.transpose(0, 2, 3, 1)), kernel, b,
                                   data_format="channels_last", **keras_kwargs)
    assert y_last.flags.c_contiguous
    assert np.array_equal(bits(y_last.transpose(0, 3, 1, 2)), bits(y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_data_is_deconvolution_bitwise(case, dtype):
    x, w, _ = inputs(case, dtype)
    kwargs = caffe_kwargs(case)
    dy = output_gradient(x, w, case, dtype, seed=11)
    dx, _, _ = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs)
    expected_dx, _, _ = caffe_conv2d_backward(x, w, dy, *case[2:])
    group = case[-1]
    assert_scaled_close(dx, expected_dx, w.shape[0] // group * w.shape[2] * w.shape[3], dtype)
    # Deconvolution's blob is (C_in, num_output/group, kh, kw): for the convolution's own w
    # read as a Deconvolution, C_in is the convolution's num_output.
    y = fastconv.deconv2d_caffe(dy, w, **kwargs)
    assert y.shape == x.shape
    assert np.array_equal(bits(y), bits(dx))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_same_bits_for_any_thread_count(restore_threads, case, dtype):
    x, w, _ = inputs(case, dtype)
    kwargs = caffe_kwargs(case)
    dy = output_gradient(x, w, case, dtype, seed=5)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv2d_caffe_backward(x, w, dy, **kwargs))
        results.append(fastconv.convnd_caffe_backward(x, w, dy, **kwargs))
    for other in results[1:]:
        for first, second in zip(results[0], other):
            assert np.array_equal(bits(first), bits(second))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [case for case in CASES if case[0][0] > 1],
                         ids=[i for i, case in zip(IDS, CASES) if case[0][0] > 1])
def test_backward_data_of_a_batch_is_each_image_alone(restore_threads, case, dtype):
    """Backward-data runs the images of a batch through one GEMM: each image's dx must still
    be the bits of that image's own call, for 1 and 2 threads."""
    x, w, _ = inputs(case, dtype)
    kwargs = caffe_kwargs(case)
    dy = output_gradient(x, w, case, dtype, seed=5)
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        dx = fastconv.conv2d_caffe_backward(x, w, dy, **kwargs)[0]
        for i in range(x.shape[0]):
            alone = fastconv.conv2d_caffe_backward(x[i:i + 1], w, dy[i:i + 1], **kwargs)[0]
            assert np.array_equal(bits(dx[i:i + 1]), bits(alone)), (threads, i)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_keras_channels_last_same_bits_for_any_thread_count(restore_threads, case, dtype):
    x, w, b = inputs(case, dtype)
    _, _, stride, pad, dilation, group = case
    x_nhwc = np.ascontiguousarray(keras_padded(x, pad).transpose(0, 2, 3, 1))
    kernel = w.transpose(2, 3, 1, 0)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv2d_keras(x_nhwc, kernel, b, strides=stride,
                                             dilation_rate=dilation, groups=group))
    assert all(np.array_equal(bits(results[0]), bits(y)) for y in results[1:])


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_inf_weight_reads_padding_as_zero_times_inf(dtype):
    """An inf weight times a padding zero is NaN in Caffe's im2col + GEMM: the direct depthwise
    kernel must give NaN exactly there, in both layouts, and inf elsewhere."""
    case = CASES[4]   # depthwise, stride (2, 1), pad 1, dilation (1, 2)
    x, w, b = inputs(case, dtype)
    w[3, 0, 0, 2] = np.inf
    y = fastconv.conv2d_caffe(x, w, b, **caffe_kwargs(case))
    with np.errstate(invalid="ignore"):
        expected = caffe_conv(x, w, b, *case[2:])
    assert np.array_equal(np.isnan(y), np.isnan(expected))
    assert np.array_equal(np.isinf(y), np.isinf(expected))
    assert np.isnan(y).any() and np.isinf(y).any()
    _, _, stride, pad, dilation, group = case
    x_nhwc = np.ascontiguousarray(keras_padded(x, pad).transpose(0, 2, 3, 1))
    y_last = fastconv.conv2d_keras(x_nhwc, w.transpose(2, 3, 1, 0), b, strides=stride,
                                   dilation_rate=dilation, groups=group)
    assert np.array_equal(np.isnan(y_last.transpose(0, 3, 1, 2)), np.isnan(y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels, width", [(6, 9), (37, 40)])
def test_depthwise_inf_weight_on_channels_last_padding(dtype, channels, width):
    """The same on NHWC data padded by the engine (Keras 'same', symmetric here: stride 1, odd
    extents), so that the channels-last kernel's own padding taps are what meet the inf; with
    few channels and short rows, and with both wider than the vectors."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, channels, 7, width)).astype(dtype)
    w = rng.standard_normal((channels, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(channels).astype(dtype)
    w[2, 0, 0, 0] = np.inf
    w[4, 0, 2, 1] = -np.inf
    y = fastconv.conv2d_caffe(x, w, b, pad=(1, 2), dilation=(1, 2), group=channels)
    with np.errstate(invalid="ignore"):
        expected = caffe_conv(x, w, b, (1, 1), (1, 2), (1, 2), channels)
    assert np.array_equal(np.isnan(y), np.isnan(expected))
    assert np.array_equal(np.isinf(y), np.isinf(expected))
    finite = np.isfinite(expected)
    assert_scaled_close(y[finite], expected[finite], 9, dtype)
    y_last = fastconv.conv2d_keras(np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                                   w.transpose(2, 3, 1, 0), b, padding="same",
                                   dilation_rate=(1, 2), groups=channels)
    assert np.isnan(y).any()
    assert np.array_equal(bits(y_last.transpose(0, 3, 1, 2)), bits(y))


# Stride 1 with output rows as long as the input's: the backward pass moves each row of a whole
# image's column matrix as one shifted span of the plane. Padding on one side only, dilation, a
# kernel wider than the image, output taller or shorter than the input, a one-row image.
SHIFTED_PLANE_CASES = [
    ((2, 3, 6, 5), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 2, 7, 9), (3, 2, 3, 3), (1, 1), (2, 2), (2, 2), 1),
    ((2, 2, 4, 3), (3, 2, 1, 7), (1, 1), (0, 3), (1, 1), 1),
    ((1, 3, 5, 6), (2, 3, 3, 1), (1, 1), (3, 0), (1, 1), 1),
    ((1, 2, 8, 5), (4, 2, 5, 3), (1, 1), (0, 1), (1, 1), 1),
    ((2, 4, 1, 7), (6, 2, 1, 5), (1, 1), (0, 2), (1, 1), 2),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SHIFTED_PLANE_CASES,
                         ids=["x{}w{}s{}p{}d{}g{}".format(*case) for case in SHIFTED_PLANE_CASES])
def test_backward_with_rows_as_long_as_the_input(case, dtype):
    x, w, _ = inputs(case, dtype)
    dy = output_gradient(x, w, case, dtype, seed=13)
    assert dy.shape[3] == x.shape[3]
    dx, dw, _ = fastconv.conv2d_caffe_backward(x, w, dy, **caffe_kwargs(case))
    expected_dx, expected_dw, _ = caffe_conv2d_backward(x, w, dy, *case[2:])
    group = case[-1]
    assert_scaled_close(dx, expected_dx, w.shape[0] // group * w.shape[2] * w.shape[3], dtype)
    assert_scaled_close(dw, expected_dw, dy.shape[0] * dy.shape[2] * dy.shape[3], dtype)
