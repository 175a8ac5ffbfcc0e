"""InnerProduct (Caffe's fully connected layer): fastconv against PyTorch and numpy, same run.

Run: ``PYTHONPATH=. pytest benches/test_bench_inner_product.py --benchmark-json=ip.json``, then
``python benches/report.py ip.json`` (or one JSON of the whole ``benches/`` run).
AlexNet's three InnerProducts (fc6 9216 -> 4096, fc7 4096 -> 4096, fc8 4096 -> 1000) at batch 1
and 8, float32, bias included: fastconv's ``inner_product_caffe``; PyTorch's ``F.linear``; numpy's
``x @ W.T + b`` on the one BLAS thread the suite gives numpy (what fastconv's Net used before it
ran InnerProduct on the engine). At batch 1 the product reads the 16-151 MB of weights once:
the table shows the rate at which each library streams them. Every result is checked against
fastconv's before anything is timed.
"""
import functools
import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastconv

# numpy's BLAS on one thread, as in the other benchmark files (they set it at import too).
_BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")

SHAPES = {"fc6": (9216, 4096), "fc7": (4096, 4096), "fc8": (4096, 1000)}
BATCHES = (1, 8)
LIBRARIES = ("fastconv", "torch", "numpy")


@functools.lru_cache(maxsize=None)
def arrays(name, batch):
    inputs, outputs = SHAPES[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, inputs), dtype=np.float32)
    w = (rng.standard_normal((outputs, inputs), dtype=np.float32) / math.sqrt(inputs))
    b = rng.standard_normal(outputs, dtype=np.float32)
    return x, w, b


def call(library, x, w, b):
    if library == "fastconv":
        return lambda: fastconv.inner_product_caffe(x, w, b)
    if library == "numpy":
        return lambda: x @ w.T + b
    torch = pytest.importorskip("torch")
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

    def run():
        with torch.no_grad():
            return torch.nn.functional.linear(xt, wt, bt).numpy()
    return run


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", list(SHAPES))
def test_inner_product(benchmark, name, batch, library):
    x, w, b = arrays(name, batch)
    run = call(library, x, w, b)
    if library != "fastconv":
        ours, theirs = fastconv.inner_product_caffe(x, w, b), run()
        error = np.max(np.abs(ours - theirs)) / np.max(np.abs(ours))
        assert error < 8 * math.sqrt(x.shape[1]) * 2.0 ** -24, (name, library, error)
    benchmark.group = f"{name} batch {batch} inner product"
    benchmark.extra_info.update(inner_product=name, batch=batch, library=library,
                                gflop=2 * x.shape[0] * w.size / 1e9, weight_bytes=w.nbytes)
    benchmark.pedantic(run, rounds=20, warmup_rounds=2)
