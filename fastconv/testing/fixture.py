"""Every oracle as one object: what the pytest fixture ``conv_oracle`` hands out."""
from __future__ import annotations

from .compare import compare
from .deconv import assert_deconv_close, check_deconv, deconv_reference
from .exact import exact_conv_inputs
from .net import assert_net_close, check_net
from .oracle import assert_conv_close, check_conv, reference
from .pool import assert_pool_close, check_pool, pool_reference


class ConvOracle:
    """Every oracle as one object (what the pytest fixture ``conv_oracle`` hands out): the
    convolution's ``reference`` / ``assert_close`` / ``check``, ``deconv_*`` and ``pool_*``
    for Deconvolution and Pooling, ``assert_net_close`` / ``check_net`` for a whole Caffe model,
    ``exact_inputs`` and ``compare``. Each method is the
    fastconv.testing function of that name."""

    reference = staticmethod(reference)
    assert_close = staticmethod(assert_conv_close)
    check = staticmethod(check_conv)
    exact_inputs = staticmethod(exact_conv_inputs)
    compare = staticmethod(compare)
    deconv_reference = staticmethod(deconv_reference)
    assert_deconv_close = staticmethod(assert_deconv_close)
    check_deconv = staticmethod(check_deconv)
    pool_reference = staticmethod(pool_reference)
    assert_pool_close = staticmethod(assert_pool_close)
    check_pool = staticmethod(check_pool)
    assert_net_close = staticmethod(assert_net_close)
    check_net = staticmethod(check_net)
