"""pytest plugin (entry point ``pytest11``): the ``conv_oracle`` fixture.

Any test can ask for ``conv_oracle`` without importing fastconv::

    def test_my_port(conv_oracle):
        x, w, b = conv_oracle.exact_inputs((1, 3, 32, 32), (8, 3, 3, 3), seed=0)
        conv_oracle.assert_close(my_conv(x, w, b), x, w, b, pad=1, exact=True)

    def test_my_pooling(conv_oracle):
        conv_oracle.assert_pool_close(my_pool(x), x, 3, stride=2, method="max")

``conv_oracle.reference``, ``.assert_close``, ``.check``, ``.compare`` and ``.exact_inputs``
are fastconv.testing's convolution functions; ``.deconv_reference``, ``.assert_deconv_close``,
``.check_deconv`` its Deconvolution oracle and ``.pool_reference``, ``.assert_pool_close``,
``.check_pool`` its Pooling oracle. fastconv is imported only when a test uses the fixture, so
the plugin costs nothing to projects that never do.
"""
import pytest


@pytest.fixture(scope="session")
def conv_oracle():
    """fastconv's oracles for convolution, deconvolution and pooling (a
    ``fastconv.testing.ConvOracle``)."""
    from fastconv.testing import ConvOracle

    return ConvOracle()
