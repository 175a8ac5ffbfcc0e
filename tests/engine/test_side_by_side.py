"""A batch of small NCHW images runs as one product per group with the images side by side
(conv.template.c, forward_side_by_side): columns = images x pixels, so that a 7 x 7 output's 49
pixels do not leave a nearly empty last micro-panel per image.

Each image must come out with the bits of its own call and of the channels-last pass (which
runs image by image), and close to the float64 reference. The cases fold on every engine (3 x 3
outputs: 9 pixels pad to 48, 16 and 8-column panels by more than a quarter): 3x3 with padding,
a stride and a dilation along the first axis, groups, a 1x1 layer, and a batch past the copies'
bound in chunks.
"""
import numpy as np
import pytest

import fastconv

from reference.conv import caffe_conv
from reference.tolerance import assert_scaled_close

# (x shape, w shape, stride, pad, dilation, group); every output is 3 x 3
CASES = [
    ((3, 24, 3, 3), (20, 24, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 8, 5, 3), (8, 8, 3, 3), (2, 1), (1, 1), (1, 1), 1),
    ((2, 6, 7, 5), (10, 3, 3, 3), (1, 1), (0, 0), (2, 1), 2),
    ((3, 40, 3, 3), (24, 40, 1, 1), (1, 1), (0, 0), (1, 1), 1),
]
IDS = ["x{}w{}s{}p{}d{}g{}".format(*case) for case in CASES]


def bits(array):
    return np.ascontiguousarray(array).view(np.uint8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_batch_side_by_side_same_bits_as_each_image_and_channels_last(kernel, case, dtype):
    x_shape, w_shape, stride, pad, dilation, group = case
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(shape).astype(dtype)
               for shape in (x_shape, w_shape, w_shape[:1]))
    kwargs = dict(stride=stride, pad=pad, dilation=dilation, group=group)
    y = fastconv.conv2d_caffe(x, w, b, **kwargs)
    assert y.shape[2:] == (3, 3)
    assert_scaled_close(y, caffe_conv(x, w, b, stride, pad, dilation, group),
                        int(np.prod(w_shape[1:])), dtype)
    for n in range(x.shape[0]):
        alone = fastconv.conv2d_caffe(x[n:n + 1], w, b, **kwargs)
        assert np.array_equal(bits(y[n:n + 1]), bits(alone)), n
    (ph, pw) = pad
    x_last = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
                                  .transpose(0, 2, 3, 1))
    y_last = fastconv.conv2d_keras(x_last, w.transpose(2, 3, 1, 0), b, strides=stride,
                                   padding="valid", dilation_rate=dilation, groups=group)
    assert np.array_equal(bits(y_last.transpose(0, 3, 1, 2)), bits(y))


def test_batch_side_by_side_in_chunks(kernel):
    """57 images of 1.2 MB of copies each (float64) pass the 32 MiB bound: chunks of 28, 28, 1."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((57, 16384, 3, 3))
    w = rng.standard_normal((16, 16384, 1, 1))
    b = rng.standard_normal(16)
    y = fastconv.conv2d_caffe(x, w, b)
    for n in (0, 27, 28, 55, 56):
        alone = fastconv.conv2d_caffe(x[n:n + 1], w, b)
        assert np.array_equal(bits(y[n:n + 1]), bits(alone)), n
    assert_scaled_close(y[54:], caffe_conv(x[54:], w, b), 16384, np.float64)
