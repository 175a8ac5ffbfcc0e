"""Keras against fastconv on this machine: the table behind ``python -m fastconv check`` and
``tools/validate_gpu.py``.

Each configuration is a Caffe layer ported with :func:`fastconv.keras.from_caffe`, run by
whatever Keras backend is installed (TensorFlow, JAX or PyTorch) on the chosen device, first at
the framework's default precision (TF32 on Ampere and newer GPUs) and then with full float32
forced, and compared with fastconv's float64 reference. Keras and the backend are imported
inside the functions.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .._params.caffe_message import conv_param_kwargs
from ..keras import from_caffe
from ..layout import nchw_to_nhwc, nhwc_to_nchw
from ..testing import check_conv

# (name, convolution_param, NCHW input shape); real layers, non-square and grouped ones included.
CONFIGS = [
    ("alexnet conv1 11x11/4", {"num_output": 96, "kernel_size": 11, "stride": 4}, (1, 3, 227, 227)),
    ("resnet stem 7x7/2 pad 3", {"num_output": 64, "kernel_size": 7, "stride": 2, "pad": 3},
     (1, 3, 112, 112)),
    ("alexnet conv2 5x5 pad 2 group 2",
     {"num_output": 128, "kernel_size": 5, "pad": 2, "group": 2}, (1, 48, 27, 27)),
    ("vgg 3x3 pad 1", {"num_output": 128, "kernel_size": 3, "pad": 1}, (1, 128, 28, 28)),
    ("dilated 3x3 d2 pad 2", {"num_output": 64, "kernel_size": 3, "pad": 2, "dilation": 2},
     (1, 64, 24, 24)),
    ("3x5 stride (2,1) pad (1,2)", {"num_output": 32, "kernel_h": 3, "kernel_w": 5, "stride_h": 2,
                                    "stride_w": 1, "pad_h": 1, "pad_w": 2}, (1, 16, 21, 19)),
]


def quick_configs():
    """The same layers, shrunk (channels and sizes) so the whole table takes about a second."""
    small = []
    for name, params, (n, c, h, w) in CONFIGS:
        params = dict(params, num_output=max(params["num_output"] // 8, params.get("group", 1)))
        channels = max(c // 8, params.get("group", 1)) if c > 3 else c
        small.append((name, params, (n, channels, min(h, 40), min(w, 40))))
    return small


@dataclass
class Row:
    layer: str
    backend: str
    device: str
    default_rel_error: float
    forced_rel_error: float
    verdict: str


def keras_backend():
    import keras

    return keras.backend.backend()


def gpu_available(backend=None):
    """Whether the Keras backend sees a GPU."""
    backend = backend or keras_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    return False


def set_full_float32(backend, forced):
    """Force (or give back to the framework's default) full float32 convolutions."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(not forced)
    elif backend == "torch":
        import torch

        torch.backends.cudnn.allow_tf32 = not forced
        torch.backends.cuda.matmul.allow_tf32 = not forced
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest" if forced else None)


def _caffe_layer_args(params):
    """(kernel (h, w), conv2d_caffe keywords) of a convolution_param dict."""
    spec = conv_param_kwargs(params, "Convolution")
    return spec["kernel"], {name: spec[name] for name in ("stride", "pad", "dilation", "group")}


def _run_once(params, x, w, b, device):
    import keras

    with keras.device(device):
        y = nchw_to_nhwc(x)
        for layer in from_caffe(params, w, b, input_size=x.shape[2:]):
            y = layer(y)
        return nhwc_to_nchw(keras.ops.convert_to_numpy(y))


def validate(devices=("cpu",), configs=None, seed=0, progress=None):
    """Rows of the table, one per (configuration, device)."""
    backend = keras_backend()
    rng = np.random.default_rng(seed)
    rows = []
    for device in devices:
        cases = []
        for name, params, x_shape in configs or CONFIGS:
            kernel, kwargs = _caffe_layer_args(params)
            x = rng.standard_normal(x_shape).astype(np.float32)
            w = rng.standard_normal((params["num_output"], x_shape[1] // kwargs["group"], *kernel)).astype(np.float32)
            b = rng.standard_normal(params["num_output"]).astype(np.float32)
            cases.append((name, params, kwargs, x, w, b))
        results = {}
        for forced in (False, True):     # the framework's default first, then full float32
            set_full_float32(backend, forced)
            for name, params, kwargs, x, w, b in cases:
                if progress:
                    progress(f"{backend} {device} {'float32 forced' if forced else 'default'}: {name}")
                actual = _run_once(params, x, w, b, device)
                report, diagnoses = check_conv(actual, x, w, b, **kwargs)
                results[name, forced] = (report, diagnoses)
        set_full_float32(backend, False)
        for name, *_ in cases:
            (default, default_diag), (forced, forced_diag) = results[name, False], results[name, True]
            rows.append(Row(name, backend, device, default.max_rel_error, forced.max_rel_error,
                            _verdict(default, default_diag, forced, forced_diag)))
    return rows


def _verdict(default, default_diag, forced, forced_diag):
    if not forced.passed:
        return "FAIL (float32): " + (forced_diag[0].mistake.description if forced_diag else "unexplained")
    if default.passed:
        return "ok"
    if default_diag and default_diag[0].name == "tf32":
        return "ok with float32 forced; default runs TF32"
    return "FAIL (default): " + (default_diag[0].mistake.description if default_diag else "unexplained")


def format_table(rows):
    header = ("layer", "backend", "device", "max rel err default", "max rel err fp32 forced", "verdict")
    lines = [[r.layer, r.backend, r.device, f"{r.default_rel_error:.2e}", f"{r.forced_rel_error:.2e}",
              r.verdict] for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    fmt = "| " + " | ".join(f"{{:{w}}}" for w in widths) + " |"
    out = [fmt.format(*header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def stderr_progress(message):
    print(f"[fastconv] {message}", file=sys.stderr, flush=True)
