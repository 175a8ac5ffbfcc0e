"""fastconv as a test oracle for other projects' convolutions.

``assert_conv_close`` compares an output with fastconv's reference and, when they differ,
names the porting mistake that reproduces it; ``compare`` is the report on its own;
``exact_conv_inputs`` makes integer inputs for which any difference is a bug. Hypothesis
strategies live in ``fastconv.testing.strategies`` (the only module that imports hypothesis).
"""
from .compare import Comparison, compare, default_rtol, unit_roundoff
from .diagnosis import Diagnosis, Mistake, diagnose
from .exact import EXACT_LIMIT, check_exact_inputs, exact_conv_inputs
from .oracle import ConvOracle, assert_conv_close, check_conv, reference

__all__ = [
    "assert_conv_close", "check_conv", "reference", "compare", "Comparison", "default_rtol",
    "unit_roundoff", "diagnose", "Diagnosis", "Mistake", "exact_conv_inputs",
    "check_exact_inputs", "EXACT_LIMIT", "ConvOracle",
]
