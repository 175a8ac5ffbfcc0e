"""Caffe's Deconvolution forward as a scatter, float64."""
import numpy as np

from .sizes import caffe_deconv_out_size


def caffe_deconv2d(x, w, b=None, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Every input pixel adds its weighted kernel into the output at i*s - p + k*d; then ``pad``
    is cropped from each side. Output size s*(in-1) + d*(k-1) + 1 - 2p. Weights are
    (C_in, num_output/group, kh, kw)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    full_h = caffe_deconv_out_size(h, kh, sh, 0, dh)
    full_w = caffe_deconv_out_size(wd, kw, sw, 0, dw)
    full = np.zeros((n, og * group, full_h, full_w))
    cg = c // group
    for g in range(group):
        chans, outs = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        for i in range(kh):
            for j in range(kw):
                full[:, outs, i * dh:i * dh + (h - 1) * sh + 1:sh,
                     j * dw:j * dw + (wd - 1) * sw + 1:sw] += np.einsum(
                    "nchw,co->nohw", x[:, chans], w[chans, :, i, j])
    y = full[:, :, ph:full_h - ph, pw:full_w - pw]
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    return y
