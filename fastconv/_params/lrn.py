"""Caffe's LRN: its parameters (lrn_param) and the shape it works on."""
from __future__ import annotations

from .common import as_int, as_real

NORM_REGIONS = ("ACROSS_CHANNELS", "WITHIN_CHANNEL")


def caffe_lrn_params(x_shape, local_size, alpha, beta, k, norm_region):
    """Checked (local_size, alpha, beta, k, norm_region); every message names lrn_param's
    field."""
    if len(x_shape) != 4:
        raise ValueError(f"x must have 4 axes (num, channels, height, width), as Caffe's LRN "
                         f"requires; got shape {tuple(x_shape)}")
    local_size = as_int(local_size, "local_size", "lrn_param.local_size")
    if local_size < 1 or local_size % 2 == 0:
        raise ValueError(f"local_size={local_size} must be odd and >= 1 (Caffe "
                         "lrn_param.local_size: \"LRN only supports odd values for local_size\")")
    if norm_region not in NORM_REGIONS:
        raise ValueError(f"norm_region={norm_region!r} must be one of {NORM_REGIONS} (Caffe "
                         "lrn_param.norm_region)")
    return (local_size, as_real(alpha, "alpha", "lrn_param.alpha"),
            as_real(beta, "beta", "lrn_param.beta"), as_real(k, "k", "lrn_param.k"), norm_region)
