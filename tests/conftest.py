"""Shared test configuration.

Tests are grouped by what they compare against:
  semantics/  fastconv's results against Caffe's definitions (numpy references, real Caffe's
              recorded results) and its argument checking
  peers/      fastconv against Keras/TensorFlow running the same layers
  engine/     the C engine's parts (GEMM kernels, threads) and the package's import layers
  oracle/     fastconv.testing, the oracle other projects use
  frontends/  the Keras-layer bridge, the command line, the benchmark report
tests/ is put on sys.path here, so every test imports the independent references as the
``reference`` package (tests/reference/, which never imports fastconv).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# TensorFlow's start-up chatter hides test output; oneDNN stays on (it is what users run).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_sessionstart(session):
    """FASTCONV_REQUIRE=tensorflow,keras (set by CI) turns a missing peer into an error instead
    of a quiet skip of every test that compares against it."""
    import importlib.util

    required = [name for name in os.environ.get("FASTCONV_REQUIRE", "").split(",") if name]
    missing = [name for name in required if importlib.util.find_spec(name) is None]
    if missing:
        import pytest

        pytest.exit(f"FASTCONV_REQUIRE lists {missing}, which are not installed", returncode=3)
