"""Float64 numpy references for the speed tests, independent of fastconv's engine.

(tests/reference.py on the main branch has the fuller Caffe reference; this one is all the
GEMM and thread tests need.)
"""
import numpy as np


def gemm(a, b):
    return np.asarray(a, np.float64) @ np.asarray(b, np.float64)


def gemm_error_bound(a, b):
    """Per-element bound on the rounding error of any order of summation, in the dtype of a."""
    k = a.shape[1]
    eps = np.finfo(a.dtype).eps
    return (k + 2) * eps * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))) + 1e-300


def conv2d(x, w, b, stride, pad, dilation, group):
    """Caffe's forward convolution in float64: symmetric zero padding, truncating output size."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    oh = int((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1
    ow = int((wd + 2 * pw - dw * (kw - 1) - 1) / sw) + 1
    padded = np.zeros((n, c, ph + max(h + ph, (oh - 1) * sh + dh * (kh - 1) + 1),
                       pw + max(wd + pw, (ow - 1) * sw + dw * (kw - 1) + 1)))
    padded[:, :, ph:ph + h, pw:pw + wd] = x
    y = np.zeros((n, o, oh, ow))
    og = o // group
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                window = padded[:, g * cg:(g + 1) * cg,
                                i * dh:i * dh + (oh - 1) * sh + 1:sh,
                                j * dw:j * dw + (ow - 1) * sw + 1:sw]
                y[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", window,
                                                       w[g * og:(g + 1) * og, :, i, j])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def assert_conv_close(y, reference, dtype):
    """Relative to the output's scale, as Caffe's own float32 agreement is stated."""
    scale = max(np.abs(reference).max(), 1e-30)
    tolerance = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    error = np.abs(np.asarray(y, np.float64) - reference).max() / scale
    assert error < tolerance, f"relative error {error:.3g} >= {tolerance}"
