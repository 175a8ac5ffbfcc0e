"""fastconv as a test oracle for other projects' convolutions, deconvolutions and poolings.

``assert_conv_close`` compares an output with fastconv's reference and, when they differ,
names the porting mistake (or pair of mistakes) whose re-run reproduces it; ``check_conv``
returns the :class:`Verdict` instead of raising (true when it passes); ``compare`` is the
report on its own; ``exact_conv_inputs`` makes integer inputs for which any difference is a
bug. Hypothesis strategies live in ``fastconv.testing.strategies`` (the only module that
imports hypothesis); the pytest fixture ``conv_oracle`` in ``fastconv.pytest_plugin``. Example::

    from fastconv.testing import assert_conv_close, exact_conv_inputs

    x, w, b = exact_conv_inputs((1, 3, 224, 224), (64, 3, 7, 7), seed=0)   # NCHW, OIHW
    y = my_port(x, w, b)                                   # e.g. Keras, back in NCHW
    assert_conv_close(y, x, w, b, stride=2, pad=3, exact=True)
    # AssertionError: ... diagnosis: Keras padding='same' used for Caffe's symmetric pad=3
    #   fix: use keras.layers.ZeroPadding2D((pad_h, pad_w)) then Conv2D(padding='valid') ...

Caffe's Deconvolution has its own oracle (``assert_deconv_close`` / ``check_deconv`` /
``deconv_reference``, fastconv.testing.deconv), and so has Pooling (``assert_pool_close`` /
``check_pool`` / ``pool_reference``, fastconv.testing.pool: floor vs ceil, the last-window
clip, MAX over zero padding, the AVE divisor, Keras 'same', NCHW/NHWC). A live Keras layer is
checked against the Caffe layer it ports by ``check_keras_layer`` (fastconv.testing.keras_layer),
and a whole ported Caffe model blob by blob against ``fastconv.caffe.Net`` by
``assert_net_close`` / ``check_net`` (fastconv.testing.net).

Tolerances: see fastconv.testing.compare (``atol + rtol * S``, ``rtol = (3*sqrt(K) + 2) * u``,
``S = sum|x*w| + |b|`` per output; NaN matches NaN and Inf the same Inf, element by element);
exactness bound: see fastconv.testing.exact (``(K + 1) * a**2 <= 2**24``). A mistake is named
only when re-running the reference with it reproduces the output within the tolerance
(fastconv.testing.diagnosis).
"""
from .compare import Comparison, compare, default_rtol, unit_roundoff
from .deconv import assert_deconv_close, check_deconv, deconv_reference
from .diagnosis import Diagnosis, Mistake, Verdict
from .exact import EXACT_LIMIT, check_exact_inputs, exact_conv_inputs
from .keras_layer import check_keras_layer
from .fixture import ConvOracle
from .net import NetCheck, assert_net_close, check_net
from .oracle import assert_conv_close, check_conv, diagnose, reference
from .pool import assert_pool_close, check_pool, pool_reference

__all__ = [
    "assert_conv_close", "check_conv", "reference", "compare", "Comparison", "default_rtol",
    "unit_roundoff", "diagnose", "Diagnosis", "Mistake", "Verdict", "exact_conv_inputs",
    "check_exact_inputs", "EXACT_LIMIT", "ConvOracle", "assert_deconv_close", "check_deconv",
    "deconv_reference", "assert_pool_close", "check_pool", "pool_reference",
    "check_keras_layer", "assert_net_close", "check_net", "NetCheck",
]
