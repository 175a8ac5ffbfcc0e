"""The engine tests' shared fixtures: each test taking ``kernel`` runs once per compute engine;
``restore_threads`` gives back the thread count a test changes."""
import pytest

import fastconv
from fastconv import _core

ALL_KERNELS = ["generic", "avx2", "avx512"]


@pytest.fixture(params=ALL_KERNELS)
def kernel(request):
    """Make one engine active for the test (skipped where this CPU cannot run it)."""
    name = request.param
    if name not in _core.available_kernels():
        pytest.skip(f"{name} kernel not supported by this CPU")
    previous = _core.active_kernel()
    _core.set_kernel(name)
    yield name
    _core.set_kernel(previous)


@pytest.fixture
def restore_threads():
    previous = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(previous)
