"""Forward convolutions strided along the last axis: the NCHW pass packs from a copy of x stored
by phase of the stride, padding included (csrc/conv.h, columns_by_phase). Checked against the
float64 reference and, bit for bit, against the channels-last pass, which packs from x itself.
The cases reach every edge of that copy: padding wider than a stride, a padding column read
past the input's end, dilation, widths that are not a multiple of the stride, rows longer than
a micro-panel, groups, a batch, and a 3-D convolution."""
import numpy as np
import pytest

import fastconv

from reference.conv import caffe_conv
from reference.tolerance import assert_scaled_close

# (x shape, w shape, stride, pad, dilation, group)
CASES = [
    ((1, 3, 30, 61), (8, 3, 7, 7), (2, 2), (3, 3), (1, 1), 1),      # ResNet stem, small
    ((2, 3, 35, 107), (9, 3, 11, 11), (4, 4), (0, 0), (1, 1), 1),   # AlexNet conv1, batch 2
    ((1, 2, 9, 23), (5, 2, 3, 3), (1, 3), (2, 5), (1, 1), 1),       # pad > stride, reads past
    ((1, 4, 12, 50), (6, 2, 3, 4), (2, 5), (1, 3), (2, 3), 2),      # dilated, grouped
    ((1, 1, 5, 4), (3, 1, 2, 2), (1, 4), (0, 1), (1, 1), 1),        # width < stride * 2
    ((1, 3, 8, 130), (4, 3, 1, 3), (1, 2), (0, 0), (1, 1), 1),      # 1 x 3, long rows
]
IDS = ["x{}w{}s{}p{}d{}g{}".format(*case) for case in CASES]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_strided_forward_matches_reference_and_channels_last(case, dtype):
    x_shape, w_shape, stride, pad, dilation, group = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    y = fastconv.conv2d_caffe(x, w, b, stride=stride, pad=pad, dilation=dilation, group=group)
    assert_scaled_close(y, caffe_conv(x, w, b, stride, pad, dilation, group),
                        w_shape[1] * w_shape[2] * w_shape[3], dtype)
    (ph, pw) = pad
    x_nhwc = np.ascontiguousarray(
        np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))).transpose(0, 2, 3, 1))
    y_last = fastconv.conv2d_keras(x_nhwc, w.transpose(2, 3, 1, 0), b, strides=stride,
                                   dilation_rate=dilation, groups=group)
    assert np.array_equal(np.ascontiguousarray(y_last.transpose(0, 3, 1, 2)).view(np.uint8),
                          y.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_3d_forward_matches_reference(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 7, 29)).astype(dtype)
    w = rng.standard_normal((4, 2, 2, 3, 5)).astype(dtype)
    stride, pad, dilation = (2, 1, 3), (1, 1, 2), (1, 2, 1)
    y = fastconv.convnd_caffe(x, w, stride=stride, pad=pad, dilation=dilation)
    assert_scaled_close(y, caffe_conv(x, w, None, stride, pad, dilation), 2 * 2 * 3 * 5, dtype)



def test_strided_large_batch_in_chunks_same_bits_as_alone():
    """A batch whose copy by phase passes the bound (32 MiB) is copied and multiplied in
    chunks of images (here two, then one): every image must come out as it does alone."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 8, 700, 700)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    y = fastconv.conv2d_caffe(x, w, b, stride=2, pad=1)
    for n in range(x.shape[0]):
        alone = fastconv.conv2d_caffe(x[n:n + 1], w, b, stride=2, pad=1)
        assert np.array_equal(y[n:n + 1].view(np.uint8), alone.view(np.uint8))
    corner = caffe_conv(x[2:, :, :9, :9], w, b, (2, 2), (1, 1), (1, 1), 1)
    assert_scaled_close(y[2:, :, :4, :4], corner[:, :, :4, :4], 72, np.float32)
