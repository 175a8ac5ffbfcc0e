"""Shared test configuration.

tests/ is on sys.path (pytest's rootdir-relative import), so test modules import the
independent references from tests/reference.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# TensorFlow's start-up chatter hides test output; oneDNN stays on (it is what users run).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
