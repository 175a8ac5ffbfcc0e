"""Caffe's fillers: a parameter blob's initial values for a net loaded without weights."""
from __future__ import annotations

import math

import numpy as np

from .base import element_count


def fill(filler, default_value, shape, dtype, rng):
    """A parameter blob's initial values for a net without weights, from its FillerParameter
    (Caffe's fillers; the random ones draw from numpy, not Caffe's random stream). The filler
    has passed filler_problem."""
    shape = tuple(shape)
    if filler is None or filler.type == "constant":
        value = default_value if filler is None else filler.value
        return np.full(shape, value, dtype)
    # Caffe's fan_in = count / num and fan_out = count / channels, on the legacy 4-D view.
    count = element_count(shape)
    fan_in = count // max(shape[0] if shape else 1, 1)
    fan_out = count // max(shape[1] if len(shape) > 1 else 1, 1)
    norm = {0: fan_in, 1: fan_out, 2: (fan_in + fan_out) / 2}[filler.variance_norm]
    if filler.type == "gaussian":
        values = rng.normal(filler.mean, filler.std, shape)
    elif filler.type == "uniform":
        values = rng.uniform(filler.min, filler.max, shape)
    elif filler.type == "xavier":
        limit = math.sqrt(3.0 / norm)
        values = rng.uniform(-limit, limit, shape)
    elif filler.type == "msra":
        values = rng.normal(0.0, math.sqrt(2.0 / norm), shape)
    elif filler.type == "bilinear":
        values = _bilinear(shape)
    else:
        raise ValueError(f"filler type '{filler.type}' is not supported (constant, gaussian, "
                         "uniform, xavier, msra, bilinear); give the weights file")
    return values.astype(dtype)


CAFFE_FILLERS = ("constant", "gaussian", "positive_unitball", "uniform", "xavier", "msra",
                 "bilinear")


def filler_problem(filler, shape):
    """Why Caffe would abort filling a blob of ``shape`` with ``filler``, or None. Caffe runs
    every filler when it builds the net, weights file or not, so these nets never load there."""
    if filler is None:
        return None
    if filler.type not in CAFFE_FILLERS:
        return f"filler type '{filler.type}' is not one of Caffe's ({', '.join(CAFFE_FILLERS)})"
    if filler.type == "gaussian" and not filler.std > 0:
        return f"gaussian filler with std {filler.std} (Caffe requires std > 0)"
    if filler.type == "uniform" and not filler.min <= filler.max:
        return f"uniform filler with min {filler.min} > max {filler.max}"
    if filler.type == "bilinear" and (len(shape) != 4 or shape[2] != shape[3]):
        return f"bilinear filler on a blob of shape {tuple(shape)} (Caffe: 4-D and square)"
    return None


def _bilinear(shape):
    """Caffe's BilinearFiller: the upsampling kernel for Deconvolution, same for every
    channel pair (a 4-D blob with square kernels: filler_problem has checked it)."""
    size = shape[3]
    factor = math.ceil(size / 2.0)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    taps = 1 - np.abs(np.arange(size) / factor - centre)
    return np.broadcast_to(np.outer(taps, taps), shape).copy()
