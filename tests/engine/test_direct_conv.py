"""The direct convolution (conv.template.c: the tiles' A side read straight from a padded copy
of the image, no column matrix) of few-channel layers (one group of at most four channels) and
of wide kernels (5 x 5 taps or more, 400 output pixels or more, any groups and layout).

It must give the GEMM's bits. A grouped convolution of few pixels runs the GEMM, so the
reference for few-channel layers is the same two convolutions stacked as the two groups of one:
each half of its output must equal the direct result bit for bit, NaN from an infinite weight
meeting the padding included. For wide kernels the reference is the same convolution cut to
fewer output pixels (the GEMM), each part of it bit for bit; NCHW, channels last and convnd
agree. The
cases reach both tile shapes (96 and 40 output channels: AVX-512's 8 x 48 tile; 64: its 6 x 64
one), several reduction blocks (4 x 13 x 13 = 676 rows > KC), padded panels, strides,
dilations and padding that differ per axis, 1 to 4 channels; every engine, both dtypes, and
each case against the float64 reference as well.
"""
import numpy as np
import pytest

import fastconv

from reference.conv import caffe_conv
from reference.tolerance import assert_scaled_close

# (batch, channels, height, width), out_channels, (kh, kw), stride, pad, dilation
CASES = [
    ((2, 3, 37, 41), 96, (11, 11), (4, 4), (0, 0), (1, 1)),
    ((1, 3, 30, 28), 64, (7, 7), (2, 2), (3, 3), (1, 1)),
    ((1, 4, 21, 19), 40, (13, 13), (1, 1), (2, 2), (1, 1)),
    ((3, 1, 25, 23), 16, (3, 5), (1, 2), (2, 1), (2, 1)),
    ((1, 2, 9, 200), 48, (3, 3), (1, 1), (1, 1), (1, 1)),
    # No padding: windows read in place (the windows' box smaller than the image); channels-last
    # data, pre-padded for 'valid', is read in place by every case.
    ((2, 2, 40, 45), 32, (3, 3), (2, 1), (0, 0), (2, 3)),
]
IDS = ["x{}o{}k{}s{}p{}d{}".format(*case) for case in CASES]
DTYPES = [np.float32, np.float64]


def bits(array):
    return np.ascontiguousarray(array).view(np.uint8)


def on_one_thread(call, *args, **kwargs):
    previous = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        return call(*args, **kwargs)
    finally:
        fastconv.set_num_threads(previous)


def two_layers(case, dtype, seed):
    """Two independent layers of the case's shape: (x, w, b) each."""
    x_shape, out_channels, kernel = case[:3]
    rng = np.random.default_rng(seed)
    w_shape = (out_channels, x_shape[1]) + kernel
    return [(rng.standard_normal(x_shape).astype(dtype),
             rng.standard_normal(w_shape).astype(dtype),
             rng.standard_normal(out_channels).astype(dtype)) for _ in range(2)]


def caffe_kwargs(case):
    return dict(stride=case[3], pad=case[4], dilation=case[5])


def as_two_groups(layers, **kwargs):
    """Both layers as the two groups of one convolution (the GEMM path), split back."""
    (xa, wa, ba), (xb, wb, bb) = layers
    y = fastconv.conv2d_caffe(np.concatenate([xa, xb], axis=1), np.concatenate([wa, wb]),
                              np.concatenate([ba, bb]), group=2, **kwargs)
    return np.split(y, 2, axis=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_direct_gives_the_gemm_bits(kernel, case, dtype):
    layers = two_layers(case, dtype, seed=3)
    kwargs = caffe_kwargs(case)
    for (x, w, b), grouped in zip(layers, as_two_groups(layers, **kwargs)):
        y = fastconv.conv2d_caffe(x, w, b, **kwargs)
        assert np.array_equal(bits(y), bits(grouped))
        assert_scaled_close(y, caffe_conv(x, w, b, *case[3:], 1), int(np.prod(w.shape[1:])),
                            dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_direct_channels_last_and_threads_same_bits(kernel, case, dtype):
    (x, w, b), _ = two_layers(case, dtype, seed=5)
    kwargs = caffe_kwargs(case)
    y = fastconv.conv2d_caffe(x, w, b, **kwargs)
    (ph, pw) = case[4]
    x_last = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
                                  .transpose(0, 2, 3, 1))
    y_last = fastconv.conv2d_keras(x_last, w.transpose(2, 3, 1, 0), b, strides=case[3],
                                   padding="valid", dilation_rate=case[5])
    assert np.array_equal(bits(y_last.transpose(0, 3, 1, 2)), bits(y))
    assert np.array_equal(bits(on_one_thread(fastconv.conv2d_caffe, x, w, b, **kwargs)), bits(y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_inf_weight_meets_the_padding_as_the_gemm_does(kernel, dtype):
    """0 * inf is NaN: a tap that reads the padding with an infinite weight makes the output
    NaN exactly where the zero-filled column matrix of the GEMM does."""
    case = CASES[1]
    layers = two_layers(case, dtype, seed=9)
    for _, w, _ in layers:
        w[5, 1, 0, 0] = np.inf
    kwargs = caffe_kwargs(case)
    y = fastconv.conv2d_caffe(*layers[0], **kwargs)
    assert np.isnan(y[0, 5, 0, 0]) and np.isinf(y[0, 5, -1, -1])
    assert np.array_equal(bits(y), bits(as_two_groups(layers, **kwargs)[0]))


def test_direct_large_batch_in_chunks_same_bits_as_alone(kernel):
    """Images whose padded copies pass the direct path's bound (32 MiB) are padded and
    convolved in chunks (here one image each): every image must come out as it does alone."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 1100, 1100)).astype(np.float32)
    w = rng.standard_normal((48, 4, 3, 3)).astype(np.float32)   # whole panels on every engine
    b = rng.standard_normal(48).astype(np.float32)
    y = fastconv.conv2d_caffe(x, w, b, stride=5, pad=1)
    for n in range(x.shape[0]):
        alone = fastconv.conv2d_caffe(x[n:n + 1], w, b, stride=5, pad=1)
        assert np.array_equal(bits(y[n:n + 1]), bits(alone))
    corner = caffe_conv(x[2:, :, :12, :12], w, b, (5, 5), (1, 1), (1, 1), 1)
    assert_scaled_close(y[2:, :, :2, :2], corner[:, :, :2, :2], 36, np.float32)


# Direct weight gradients of a batch: (x shape, w shape, stride, pad). A dW^T smaller than L2
# runs one image at a time (the first: 8 KB, large images); a larger one takes the images of a
# chunk together, tile by tile: all four in one chunk (3.3 MB), or, where an image's padded
# copy and dy panels take 12.8 MB of FC_INPUT_COPY_BYTES (32 MiB), chunks of two and one
# (dW^T 2.6 MB). Both large dW^T pass every L2 seen so far (2 MiB at most).
WEIGHT_GRADIENT_BATCHES = [
    ((3, 4, 1100, 1100), (48, 4, 3, 3), 5, 1),
    ((4, 128, 16, 16), (256, 128, 5, 5), 1, 0),
    ((3, 4, 14, 14), (16384, 4, 3, 3), 1, 1),
]


@pytest.mark.parametrize("x_shape,w_shape,stride,pad", WEIGHT_GRADIENT_BATCHES)
def test_direct_weight_gradient_of_a_batch(kernel, restore_threads, x_shape, w_shape, stride,
                                           pad):
    """Every image counts once, whichever way the images are taken, on any thread count."""
    from reference.conv import caffe_conv2d_backward
    rng = np.random.default_rng(12)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    out = [(size + 2 * pad - k) // stride + 1 for size, k in zip(x_shape[2:], w_shape[2:])]
    dy = rng.standard_normal((x_shape[0], w_shape[0], *out)).astype(np.float32)
    found = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        found.append(fastconv.conv2d_caffe_backward(x, w, dy, stride=stride, pad=pad)[1])
    assert np.array_equal(bits(found[0]), bits(found[1]))
    assert np.array_equal(bits(found[0]), bits(found[2]))
    _, expected, _ = caffe_conv2d_backward(x, w, dy, (stride, stride), (pad, pad))
    assert_scaled_close(found[0], expected, x_shape[0] * out[0] * out[1], np.float32)


# Wide kernels: (batch, channels, height, width), out_channels, group, (kh, kw), stride, pad,
# dilation. AlexNet conv2's shape with fewer channels (two groups, 5x5, 27 x 27), a k of
# several reduction blocks (24 channels x 25 taps per group), 40 outputs a group (a padded
# panel), three groups of a 7x7 kernel with strides, a dilated 5x5; 3x3 kernels (float32 with
# at most 128 outputs a group) in two groups, and with k = 630 over two reduction blocks.
WIDE_CASES = [
    ((1, 16, 27, 27), 96, 2, (5, 5), (1, 1), (2, 2), (1, 1)),
    ((2, 48, 22, 21), 128, 2, (5, 5), (1, 1), (2, 2), (1, 1)),
    ((1, 6, 24, 25), 80, 2, (5, 5), (1, 1), (0, 1), (1, 1)),
    ((2, 9, 47, 45), 144, 3, (7, 7), (2, 2), (3, 3), (1, 1)),
    ((1, 4, 30, 30), 64, 1, (5, 5), (1, 1), (4, 4), (2, 2)),
    ((2, 10, 30, 27), 128, 2, (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 70, 29, 29), 48, 1, (3, 3), (1, 1), (1, 1), (1, 1)),
    # k = 10000: each panel's packed weights outgrow a quarter of any L2 seen, so tasks take
    # ranges of panels, the last one padded (112 outputs); and two groups of k = 1600 and 88
    # outputs, whose panels outgrow a quarter of L2 on every engine and L2 seen (AVX2's of
    # 16 columns in ranges of up to five of the six).
    ((1, 400, 20, 20), 112, 1, (5, 5), (1, 1), (2, 2), (1, 1)),
    ((2, 128, 24, 24), 176, 2, (5, 5), (1, 1), (2, 2), (1, 1)),
]
WIDE_IDS = ["x{}o{}g{}k{}s{}p{}d{}".format(*case) for case in WIDE_CASES]


def gemm_by_blocks(x, w, b, kwargs):
    """The convolution as blocks of at most 4 x 7 output pixels (under the 32 pixels from
    which any CPU's direct tile may take a layer, FC_DIRECT_PREFERRED_MIN_PIXELS: the GEMM),
    each block computed without padding from the part of the zero-padded image its windows
    read (a padding tap adds weight * 0 either way)."""
    (sh, sw), (ph, pw), (dh, dw) = kwargs["stride"], kwargs["pad"], kwargs["dilation"]
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    reach_h, reach_w = (w.shape[2] - 1) * dh + 1, (w.shape[3] - 1) * dw + 1
    out_h = (padded.shape[2] - reach_h) // sh + 1
    out_w = (padded.shape[3] - reach_w) // sw + 1
    unpadded = dict(kwargs, pad=(0, 0))
    bands = []
    for row in range(0, out_h, 4):
        rows = min(4, out_h - row)
        blocks = []
        for col in range(0, out_w, 7):
            cols = min(7, out_w - col)
            window = padded[:, :, row * sh:(row + rows - 1) * sh + reach_h,
                            col * sw:(col + cols - 1) * sw + reach_w]
            blocks.append(fastconv.conv2d_caffe(window, w, b, **unpadded))
        bands.append(np.concatenate(blocks, axis=3))
    return np.concatenate(bands, axis=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WIDE_CASES, ids=WIDE_IDS)
def test_wide_kernel_direct_gives_the_gemm_bits(kernel, case, dtype):
    x_shape, out_channels, group, kernel_size, stride, pad, dilation = case
    rng = np.random.default_rng(sum(x_shape))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((out_channels, x_shape[1] // group) + kernel_size).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype)
    w[3, 0, 0, 0] = np.inf   # meets the padding at the first pixel: NaN, as the GEMM's
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    y = fastconv.conv2d_caffe(x, w, b, **kwargs)
    assert np.array_equal(bits(y), bits(gemm_by_blocks(x, w, b, kwargs)))
    x_last = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
                                  .transpose(0, 2, 3, 1))
    y_last = fastconv.conv2d_keras(x_last, w.transpose(2, 3, 1, 0), b, strides=stride,
                                   padding="valid", dilation_rate=dilation, groups=group)
    assert np.array_equal(bits(y_last.transpose(0, 3, 1, 2)), bits(y))
    assert np.array_equal(bits(fastconv.convnd_caffe(x, w, b, **kwargs)), bits(y))
    if pad[0] > 0:
        assert np.isnan(y[0, 3, 0, 0])
    finite = np.isfinite(w).all(axis=(1, 2, 3))
    reference = caffe_conv(x, np.where(np.isfinite(w), w, 0), b, stride, pad, dilation, group)
    assert_scaled_close(y[:, finite], reference[:, finite],
                        int(np.prod(w.shape[1:])), dtype)
    assert np.array_equal(bits(on_one_thread(fastconv.conv2d_caffe, x, w, b, **kwargs)), bits(y))
