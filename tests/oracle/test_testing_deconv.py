"""fastconv.testing's Deconvolution oracle: each porting mistake is made for real (by Keras's
Conv2DTranspose where Keras is installed, otherwise by fastconv run with the mistaken
parameters) and must be named; correct outputs, in float32 too, must pass."""
import numpy as np
import pytest

import fastconv
from fastconv.testing import assert_deconv_close, check_deconv, deconv_reference


def inputs(c_in=4, outputs=4, kernel=(3, 3), size=(5, 6), group=1, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_in, *size)).astype(dtype)
    w = rng.standard_normal((c_in, outputs // group, *kernel)).astype(dtype)
    b = rng.standard_normal(outputs).astype(dtype)
    return x, w, b


def diagnosis_of(actual, x, w, b, **params):
    report, diagnoses = check_deconv(actual, x, w, b, **params)
    assert not report.passed
    return [d.name for d in diagnoses]


def test_correct_outputs_pass_in_both_dtypes():
    x, w, b = inputs(group=2, outputs=6, c_in=4, kernel=(3, 2))
    params = dict(stride=(2, 3), pad=(1, 0), dilation=(1, 2), group=2)
    assert_deconv_close(deconv_reference(x, w, b, **params), x, w, b, **params)
    x32, w32, b32 = (a.astype(np.float32) for a in (x, w, b))
    assert_deconv_close(fastconv.deconv2d_caffe(x32, w32, b32, **params), x32, w32, b32, **params)
    # ...and a float32 error a few units in the last place is within the tolerance
    y = fastconv.deconv2d_caffe(x32, w32, b32, **params)
    assert_deconv_close(y * np.float32(1 + 4e-7), x32, w32, b32, **params)


def test_uncropped_and_misplaced_crops_are_named():
    x, w, b = inputs()
    params = dict(stride=2, pad=1)
    full = fastconv.deconv2d_caffe(x, w, b, stride=2)
    height, width = full.shape[2] - 2, full.shape[3] - 2
    assert diagnosis_of(full, x, w, b, **params) == ["deconv_pad_not_cropped"]
    assert diagnosis_of(full[:, :, 2:, 2:], x, w, b, **params)[0] == "deconv_crop_at_top_left"
    assert (diagnosis_of(full[:, :, :height, :width], x, w, b, **params)[0]
            == "deconv_crop_at_bottom_right")


def test_keras_conv2d_transpose_same_is_named():
    """kernel 3, stride 2, pad 1 on 5x6: Caffe gives 9x11, Keras 'same' 10x12 (in*stride)."""
    keras = pytest.importorskip("keras")
    x, w, b = inputs()
    layer = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
    layer.build((None, 5, 6, 4))
    layer.set_weights([w.transpose(2, 3, 1, 0), b])
    actual = fastconv.nhwc_to_nchw(keras.ops.convert_to_numpy(layer(fastconv.nchw_to_nhwc(x))))
    assert actual.shape == (2, 4, 10, 12)
    with pytest.raises(AssertionError) as failure:
        assert_deconv_close(actual, x, w, b, stride=2, pad=1)
    message = str(failure.value)
    assert "shape mismatch: actual (2, 4, 10, 12), expected (2, 4, 9, 11)" in message
    assert "Conv2DTranspose(padding='same') used for Caffe's pad=1" in message
    assert "Cropping2D(((pad_h, pad_h), (pad_w, pad_w)))" in message


def test_keras_conv2d_transpose_valid_without_crop_is_named():
    keras = pytest.importorskip("keras")
    x, w, b = inputs(kernel=(4, 4))
    layer = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="valid")
    layer.build((None, 5, 6, 4))
    layer.set_weights([w.transpose(2, 3, 1, 0), b])
    actual = fastconv.nhwc_to_nchw(keras.ops.convert_to_numpy(layer(fastconv.nchw_to_nhwc(x))))
    assert diagnosis_of(actual, x, w, b, stride=2, pad=1) == ["deconv_pad_not_cropped"]
    # The faithful port (the crop on every side) passes, at Keras's float32 precision.
    assert_deconv_close(actual[:, :, 1:-1, 1:-1].astype(np.float32), x, w, b, stride=2, pad=1)


@pytest.mark.parametrize("mistake,make", [
    ("deconv_dilation_dropped",
     lambda x, w, b: fastconv.deconv2d_caffe(x, w, b, stride=2, pad=1, dilation=1)),
    ("deconv_kernel_flipped",
     lambda x, w, b: fastconv.deconv2d_caffe(x, w[:, :, ::-1, ::-1], b, stride=2, pad=1,
                                             dilation=2)),
    ("deconv_blob_axes_swapped",
     lambda x, w, b: fastconv.deconv2d_caffe(x, w.transpose(1, 0, 2, 3), b, stride=2, pad=1,
                                             dilation=2)),
    ("bias_missing",
     lambda x, w, b: fastconv.deconv2d_caffe(x, w, None, stride=2, pad=1, dilation=2)),
])
def test_parameter_and_blob_mistakes_are_named(mistake, make):
    x, w, b = inputs()
    actual = make(x, w, b)
    assert diagnosis_of(actual, x, w, b, stride=2, pad=1, dilation=2)[0] == mistake


def test_swapped_stride_is_named_and_noise_is_not_explained():
    x, w, b = inputs(size=(6, 6))
    swapped = fastconv.deconv2d_caffe(x, w, b, stride=(3, 2), pad=(1, 1))
    assert diagnosis_of(swapped, x, w, b, stride=(2, 3), pad=1) == ["deconv_stride_hw_swapped"]
    right = deconv_reference(x, w, b, stride=2, pad=1)
    noisy = right + np.random.default_rng(1).standard_normal(right.shape)
    with pytest.raises(AssertionError, match="No known porting mistake reproduces actual"):
        assert_deconv_close(noisy, x, w, b, stride=2, pad=1)


def test_the_fixture_object_offers_the_deconv_oracle():
    from fastconv.testing import ConvOracle   # what the conv_oracle fixture hands out

    conv_oracle = ConvOracle()
    x, w, b = inputs()
    y = conv_oracle.deconv_reference(x, w, b, stride=2, pad=1)
    assert conv_oracle.assert_deconv_close(y, x, w, b, stride=2, pad=1).passed
