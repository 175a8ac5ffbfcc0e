"""Deprecated: the Keras-against-fastconv table moved to ``fastconv.cli.validation`` (it is the
``fastconv check`` command's code, not part of the oracle)."""
import importlib
import warnings


def __getattr__(name):
    # fastconv.cli sits above fastconv.testing (its table uses the oracle): a static import here
    # would point upwards, so the old names are resolved on first use, each warned about once.
    value = getattr(importlib.import_module("fastconv.cli.validation"), name)
    warnings.warn(f"fastconv.testing.validation.{name} is deprecated: use "
                  f"fastconv.cli.validation.{name}", DeprecationWarning, stacklevel=2)
    globals()[name] = value
    return value
