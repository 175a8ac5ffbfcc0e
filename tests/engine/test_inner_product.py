"""Caffe's InnerProduct through the engine's dot products (fastconv.inner_product_caffe).

Every engine: sizes around its vector length (k's tail), its tile of x rows by W rows (edges of
both), against float64 references and an exact integer one; a row's bits alone and in any
batch, with one thread or two, with Caffe's weights or transposed; the non-finite values of an
IEEE sum; the argument errors, which name the Caffe parameter.
"""
import numpy as np
import pytest

import fastconv

from reference.tolerance import gemm_error_bound, max_violation

DTYPES = [np.float32, np.float64]
# (rows of x, outputs, K): K below one vector, with a tail after whole vectors (every engine's
# lanes: 1, 4, 8, 16), a row of x or of W alone, and edges of the 6 x 4 / 3 x 3 / 4 x 4 tiles.
SHAPES = [(1, 1, 1), (1, 5, 7), (2, 3, 16), (7, 9, 17), (6, 4, 33), (13, 11, 100),
          (3, 70, 1000), (8, 13, 2053)]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def reference(x, w, b=None):
    y = x.astype(np.float64) @ w.astype(np.float64).T
    return y if b is None else y + b.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_within_the_rounding_bound(kernel, rng, dtype, m, n, k):
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    y = fastconv.inner_product_caffe(x, w, b)
    assert y.dtype == dtype and y.shape == (m, n)
    bound = gemm_error_bound(x, w.T) + np.finfo(dtype).eps * np.abs(b)
    assert max_violation(y, reference(x, w, b), bound) <= 1


@pytest.mark.parametrize("m, n, k", SHAPES)
def test_small_integers_exactly(kernel, rng, m, n, k):
    """Products and sums of small integers are exact in float32: any misplaced, repeated or
    dropped term shows as an exact mismatch."""
    x = rng.integers(-8, 9, (m, k)).astype(np.float32)
    w = rng.integers(-8, 9, (n, k)).astype(np.float32)
    expected = x.astype(np.int64) @ w.astype(np.int64).T
    np.testing.assert_array_equal(fastconv.inner_product_caffe(x, w), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_row_alone_or_in_any_batch_any_threads(kernel, rng, dtype):
    """Each output is one dot product whose order depends on K and the engine alone."""
    x = rng.standard_normal((15, 301)).astype(dtype)
    w = rng.standard_normal((203, 301)).astype(dtype)
    whole = fastconv.inner_product_caffe(x, w)
    previous = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        one_thread = fastconv.inner_product_caffe(x, w)
    finally:
        fastconv.set_num_threads(previous)
    np.testing.assert_array_equal(one_thread, whole)
    for rows in (slice(0, 1), slice(4, 5), slice(6, 13), slice(14, 15)):
        np.testing.assert_array_equal(fastconv.inner_product_caffe(x[rows], w), whole[rows])
    # W's rows alone: the tiles of W rows cut elsewhere.
    np.testing.assert_array_equal(fastconv.inner_product_caffe(x, w[5:6]), whole[:, 5:6])
    bound = gemm_error_bound(x, w.T)
    assert max_violation(whole, reference(x, w), bound) <= 1


@pytest.mark.parametrize("axis", [1, 2, -1, 0])
def test_axis_transpose_and_layouts(rng, axis):
    """Caffe's axis flattens the trailing axes in C order; transpose=True reads (K, num_output)
    weights with the same bits; strided and Fortran-ordered inputs are read as they are and
    left unchanged."""
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    lead = x.shape[:axis % 4]
    inputs = int(np.prod(x.shape[axis % 4:]))
    w = rng.standard_normal((7, inputs)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    saved = [x.copy(), w.copy(), b.copy()]
    y = fastconv.inner_product_caffe(x, w, b, axis=axis)
    assert y.shape == lead + (7,)
    matrix = x.reshape(int(np.prod(lead)), inputs)
    bound = gemm_error_bound(matrix, w.T) + np.finfo(np.float32).eps * np.abs(b)
    assert max_violation(y.reshape(-1, 7), reference(matrix, w, b), bound) <= 1
    transposed = fastconv.inner_product_caffe(x, np.asfortranarray(w).T, b, axis=axis,
                                              transpose=True)
    np.testing.assert_array_equal(transposed, y)
    strided = fastconv.inner_product_caffe(np.asfortranarray(x), w[::1], b, axis=axis)
    np.testing.assert_array_equal(strided, y)
    for kept, original in zip([x, w, b], saved):
        np.testing.assert_array_equal(kept, original)


def test_dtypes_promote_like_numpy(rng):
    x = rng.standard_normal((2, 9))
    w = rng.standard_normal((3, 9)).astype(np.float32)
    assert fastconv.inner_product_caffe(x, w).dtype == np.float64
    assert fastconv.inner_product_caffe(x.astype(np.float32), w).dtype == np.float32
    assert fastconv.inner_product_caffe(x.astype(np.int8), w).dtype == np.float32


def test_non_finite_values_as_in_ieee_sums(kernel):
    """inf and NaN propagate as in any sum (inf * 0 is NaN), and the zeros that fill a vector's
    last lanes add nothing: no NaN where no term is one."""
    x = np.zeros((2, 19), np.float32)
    w = np.ones((3, 19), np.float32)
    x[0, 18] = np.inf            # in the tail of every vector length
    w[1, 3] = np.inf             # meets x[1, 3] = 0: NaN; meets x[0, 3] = 0 too
    w[2, 5] = -np.inf
    x[1, 5] = 2.0
    expected = np.array([[np.inf, np.nan, np.nan], [2.0, np.nan, -np.inf]], np.float32)
    np.testing.assert_array_equal(fastconv.inner_product_caffe(x, w), expected)


def test_no_inputs_and_no_rows(rng):
    x = np.zeros((3, 0), np.float32)
    np.testing.assert_array_equal(fastconv.inner_product_caffe(x, np.zeros((4, 0), np.float32),
                                                               np.arange(4.0, dtype=np.float32)),
                                  np.tile(np.arange(4.0, dtype=np.float32), (3, 1)))
    assert fastconv.inner_product_caffe(np.zeros((0, 5), np.float32),
                                        np.ones((2, 5), np.float32)).shape == (0, 2)


@pytest.mark.parametrize("call, message", [
    (lambda x, w: fastconv.inner_product_caffe(x, w, axis=4), "inner_product_param.axis"),
    (lambda x, w: fastconv.inner_product_caffe(x, w, axis=2), "inner_product_param.axis"),
    (lambda x, w: fastconv.inner_product_caffe(x, w.reshape(7, 4, 30)), "2-D weight blob"),
    (lambda x, w: fastconv.inner_product_caffe(x, w, transpose=True),
     "(K, num_output)"),
    (lambda x, w: fastconv.inner_product_caffe(x, w, np.zeros(6)), "num_output"),
])
def test_errors_name_the_caffe_parameter(rng, call, message):
    x = rng.standard_normal((3, 4, 5, 6))
    w = rng.standard_normal((7, 120))
    with pytest.raises(ValueError) as error:
        call(x, w)
    assert message in str(error.value)


def test_argument_types(rng):
    x = rng.standard_normal((3, 8))
    w = rng.standard_normal((2, 8))
    with pytest.raises(TypeError, match="inner_product_param.axis"):
        fastconv.inner_product_caffe(x, w, axis=1.0)
    with pytest.raises(TypeError, match="inner_product_param.transpose"):
        fastconv.inner_product_caffe(x, w, transpose=1)
    with pytest.raises(TypeError, match="complex"):
        fastconv.inner_product_caffe(x.astype(complex), w)
    with pytest.raises(ValueError, match="at least one axis"):
        fastconv.inner_product_caffe(np.float32(2.0), w)
