"""Caffe's parameter messages (``convolution_param``, ``pooling_param`` as prototxt-style dicts)
turned into the keyword arguments of fastconv's Caffe functions.

Only the message's own structure is checked here (unknown fields, a field given both ways, a
lone ``stride_h``); the values are checked by the same geometry functions that check a call to
``conv2d_caffe`` or ``pool2d_caffe``, so a mistake gets the same exception and words either way.
"""
from __future__ import annotations

from .common import as_pair, check_positive

_PAIR_FIELDS = {  # Caffe's field name -> (name of the single field, _h field, _w field)
    "kernel": ("kernel_size", "kernel_h", "kernel_w"),
    "stride": ("stride", "stride_h", "stride_w"),
    "pad": ("pad", "pad_h", "pad_w"),
}
CONV_FIELDS = frozenset({
    "num_output", "kernel_size", "kernel_h", "kernel_w", "stride", "stride_h", "stride_w", "pad",
    "pad_h", "pad_w", "dilation", "group", "bias_term", "axis", "weight_filler", "bias_filler",
    "engine", "force_nd_im2col"})
POOL_FIELDS = frozenset({
    "pool", "kernel_size", "kernel_h", "kernel_w", "stride", "stride_h", "stride_w", "pad",
    "pad_h", "pad_w", "global_pooling", "round_mode", "engine"})
# Caffe's PoolingParameter.PoolMethod and RoundMode enums, by name or number.
_POOL_METHODS = {"MAX": "MAX", 0: "MAX", "AVE": "AVE", 1: "AVE", "STOCHASTIC": "STOCHASTIC",
                 2: "STOCHASTIC"}
_ROUND_MODES = {"CEIL": True, 0: True, "FLOOR": False, 1: False}


def check_fields(params, allowed, layer_type):
    """``params`` must be a dict whose keys are fields of the layer's parameter message."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict shaped like Caffe's {layer_type.lower()}_param; "
                        f"got {type(params).__name__}")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown {layer_type} parameter(s) {', '.join(map(repr, unknown))}; "
                         f"Caffe's {layer_type.lower()}_param has {', '.join(sorted(allowed))}")


def _repeated(value):
    """A repeated field (kernel_size, stride, pad, dilation): one value stands for both axes."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def caffe_pair(params, what, default):
    """One of Caffe's kernel/stride/pad specs (the single field or the _h/_w pair), unchecked:
    an int or an (h, w) pair for :func:`fastconv._params.common.as_pair`."""
    single, field_h, field_w = _PAIR_FIELDS[what]
    has_h, has_w = field_h in params, field_w in params
    if single in params and (has_h or has_w):
        raise ValueError(f"give either {single} or {field_h}/{field_w}, not both "
                         "(Caffe refuses the mix)")
    if has_h != has_w:
        given, missing = (field_h, field_w) if has_h else (field_w, field_h)
        crash = (" — real Caffe leaves it 0 and dies with SIGFPE (division by zero)"
                 if what == "stride" else "")
        raise ValueError(f"{given} was given without {missing}; Caffe needs both{crash}")
    if has_h:
        return (params[field_h], params[field_w])
    if single not in params:
        if default is None:
            raise ValueError(f"{single} (or {field_h} and {field_w}) is required")
        return default
    return _repeated(params[single])


def conv_param_kwargs(params, layer_type):
    """A ``convolution_param`` dict -> ``num_output``, ``kernel`` (h, w), ``bias_term`` and the
    ``stride``/``pad``/``dilation``/``group`` keywords of ``conv2d_caffe``/``deconv2d_caffe``."""
    check_fields(params, CONV_FIELDS, layer_type)
    if "num_output" not in params:
        raise ValueError(f"num_output is required ({layer_type})")
    if params.get("axis", 1) != 1:
        raise NotImplementedError(f"axis={params['axis']!r} in {layer_type.lower()}_param: only "
                                  "Caffe's default axis: 1 (NCHW channels) is supported")
    kernel = as_pair(caffe_pair(params, "kernel", None), "kernel_size", "kernel_size")
    check_positive(kernel, "kernel_size", "kernel_size")
    return dict(
        num_output=params["num_output"], kernel=kernel,
        bias_term=bool(params.get("bias_term", True)),
        stride=caffe_pair(params, "stride", 1), pad=caffe_pair(params, "pad", 0),
        dilation=_repeated(params.get("dilation", 1)), group=params.get("group", 1),
    )


def pooling_param_kwargs(params):
    """A ``pooling_param`` dict -> ``method`` ('MAX', 'AVE' or 'STOCHASTIC'),
    ``global_pooling``, ``ceil_mode`` and, unless global, ``kernel_size``/``stride``/``pad``."""
    check_fields(params, POOL_FIELDS, "Pooling")
    pool = params.get("pool", "MAX")
    method = None if isinstance(pool, bool) else _POOL_METHODS.get(
        pool.upper() if isinstance(pool, str) else pool)
    if method is None:
        raise ValueError(f"pool={pool!r} must be MAX, AVE or STOCHASTIC")
    round_mode = params.get("round_mode", "CEIL")
    # True == 1 would find FLOOR's number: a bool is no enum value.
    key = round_mode.upper() if isinstance(round_mode, str) else round_mode
    if isinstance(round_mode, bool) or key not in _ROUND_MODES:
        raise ValueError(f"round_mode={round_mode!r} must be CEIL or FLOOR (or 0 or 1)")
    kwargs = dict(method=method, ceil_mode=_ROUND_MODES[key],
                  global_pooling=params.get("global_pooling", False))
    if kwargs["global_pooling"]:
        given = sorted(set(params) & {"kernel_size", "kernel_h", "kernel_w", "stride",
                                      "stride_h", "stride_w", "pad", "pad_h", "pad_w"})
        if given:
            raise ValueError(f"global_pooling: true takes no {', '.join(given)} (Caffe refuses them)")
        return kwargs
    kernel_fields = {"kernel_h", "kernel_w"} & set(params)
    if "kernel_size" in params and len(kernel_fields) == 1:
        # Pooling's checks (unlike Convolution's) let kernel_size stand next to one of
        # kernel_h/kernel_w, and kernel_size wins.
        params = {key: value for key, value in params.items() if key not in kernel_fields}
    return dict(kwargs, kernel_size=caffe_pair(params, "kernel", None),
                stride=caffe_pair(params, "stride", 1), pad=caffe_pair(params, "pad", 0))
