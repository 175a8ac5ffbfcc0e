"""Shared test configuration.

tests/ is on sys.path (pytest's rootdir-relative import), so test modules import the
independent references from tests/reference.py.
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
