"""ReLU, BatchNorm, Scale, Bias and Eltwise bit for bit against Caffe's per-element steps,
written here as scalar code in the dtype, on the values where shortcuts go wrong: signed zeros,
NaN, infinities, denormals. Each net runs twice (the second forward writes into the blobs'
existing arrays) and in place where Caffe allows it."""
import numpy as np
import pytest

pytest.importorskip("google.protobuf")

from net_files import one_layer_net  # noqa: E402

# NaN and infinities make numpy warn, in the layers as in the references.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = [np.float32, np.float64]
BITS = {np.float32: np.uint32, np.float64: np.uint64}


def special_values(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    return np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, tiny, -tiny, 1.5, -2.5,
                     np.finfo(dtype).max, -np.finfo(dtype).max], dtype)


def as_input(values, copies=5):
    """``values`` tiled into an (N, C, H, W) array long enough for numpy's vector loops."""
    return np.tile(values, copies * 4).reshape(2, 2, -1, len(values))


def assert_same_bits(actual, expected):
    """Equal bits, signs of zeros included; any NaN matches any NaN (which operand's payload
    an operation passes on is the compiler's and the vector unit's choice, in Caffe too)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    bits = BITS[expected.dtype.type]
    differ = ((actual.view(bits) != expected.view(bits))
              & ~(np.isnan(actual) & np.isnan(expected)))
    assert not differ.any(), (actual[differ][:5], expected[differ][:5])


def elementwise(function, dtype, *arrays):
    """``function`` on the dtype's scalars, element by element."""
    with np.errstate(all="ignore"):
        flat = [np.asarray(array, dtype).ravel() for array in arrays]
        return np.array([function(*values) for values in zip(*flat)],
                        dtype).reshape(np.shape(arrays[0]))


def run_twice(tmp_path, text, inputs, weights, dtype):
    net, first = one_layer_net(tmp_path, text, inputs, weights, dtype)
    second = net.forward(**inputs)
    return [{name: array.copy() for name, array in first.items()}, second]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [0.0, 0.125])
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("left_out", [(), (-np.inf,), (-np.inf, np.nan)])
def test_relu_bits(tmp_path, dtype, slope, in_place, left_out):
    # -inf and NaN decide between ReLU's paths.
    values = special_values(dtype)
    for value in left_out:
        values = values[~np.isnan(values)] if np.isnan(value) else values[values != value]
    x = as_input(values)
    top = "x" if in_place else "y"
    text = (f'layer {{ name: "r" type: "ReLU" bottom: "x" top: "{top}" '
            f'relu_param {{ negative_slope: {slope} }} }}')
    # Caffe's formula, whatever the slope (0 * -inf is NaN), with its std::max(x, 0) =
    # (x < 0 ? 0 : x) and std::min(x, 0) = (0 < x ? 0 : x), which keep -0.0 (numpy's maximum
    # and minimum would not).
    zero = dtype(0)
    with np.errstate(invalid="ignore"):
        expected = np.where(x < 0, zero, x) + dtype(slope) * np.where(x > 0, zero, x)
    for outputs in run_twice(tmp_path, text, {"x": x}, None, dtype):
        assert_same_bits(outputs[top], expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("operation, coeff", [("SUM", ""), ("SUM", "coeff: 1 coeff: -1 coeff: 1"),
                                              ("SUM", "coeff: 0.5 coeff: -2 coeff: 3"),
                                              ("PROD", ""), ("MAX", "")])
@pytest.mark.parametrize("top", ["y", "a"])
def test_eltwise_bits(tmp_path, dtype, operation, coeff, top):
    values = special_values(dtype)
    # Every pair and triple of special values meets somewhere.
    a, b, c = (as_input(np.array(triple, dtype), 1) for triple in zip(
        *[(p, q, r) for p in values for q in values for r in values[::3]]))
    coeffs = [dtype(v) for v in coeff.split()[1::2]] or [dtype(1)] * 3
    # In place (top "a"), Caffe sets the top before it reads the bottoms: bottom 0 reads what
    # the top holds by then (checked against real Caffe 1.0: tests/data/caffe_nets/in_place).
    in_place = top == "a"
    if operation == "SUM":  # top = 0; top += coeff_i * bottom_i
        def step(p, q, r):
            total = dtype(0)
            for index, (weight, value) in enumerate(zip(coeffs, (p, q, r))):
                total = total + weight * (total if in_place and index == 0 else value)
            return total
    elif operation == "PROD":
        def step(p, q, r):
            return p * q * r
    else:  # bottom 0 where strictly greater than bottom 1; later ones where strictly greater
        def step(p, q, r):
            p = dtype(-np.finfo(np.float32).max) if in_place else p   # top = -FLT_MAX first
            best = p if p > q else q
            return r if r > best else best
    expected = elementwise(step, dtype, a, b, c)
    text = (f'layer {{ name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" '
            f'top: "{top}" eltwise_param {{ operation: {operation} {coeff} }} }}')
    for outputs in run_twice(tmp_path, text, {"a": a, "b": b, "c": c}, None, dtype):
        assert_same_bits(outputs[top], expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_place", [False, True])
def test_batch_norm_scale_bias_bits(tmp_path, dtype, in_place):
    # Channel c of the input holds the special values; the statistics and factors are ordinary
    # per-channel numbers, so every special value meets every channel's arithmetic.
    values = special_values(dtype)
    x = np.tile(values, (2, 3, 4, 1))
    # The .caffemodel holds float32 values, as the prototxt's eps is a float.
    mean, variance = np.float32([0.5, -1.25, 0.0]), np.float32([2.0, 0.75, 1e-3])
    scale, bias, factor = np.float32([1.5, -0.0, 3.0]), np.float32([-0.0, 0.25, -7.5]), 4.0
    eps = np.float32(1e-5)
    names = ["x", "x", "x"] if in_place else ["n", "s", "b"]
    text = (f'layer {{ name: "n" type: "BatchNorm" bottom: "x" top: "{names[0]}" '
            f'batch_norm_param {{ eps: 1e-5 }} }} '
            f'layer {{ name: "s" type: "Scale" bottom: "{names[0]}" top: "{names[1]}" '
            f'scale_param {{ bias_term: true }} }} '
            f'layer {{ name: "b" type: "Bias" bottom: "{names[1]}" top: "{names[2]}" }}')
    weights = {"n": [mean, variance, [factor]], "s": [scale, bias], "b": [bias[::-1]]}
    one = dtype(1)
    for outputs in run_twice(tmp_path, text, {"x": x}, weights, dtype):
        channel = np.broadcast_to(np.arange(3).reshape(1, 3, 1, 1), x.shape)

        def caffe_steps(v, c):
            c = int(c)
            inverse = one / dtype(factor)
            normalised = ((v - dtype(mean[c]) * inverse)
                          / np.sqrt(dtype(variance[c]) * inverse + dtype(eps)))
            scaled = normalised * dtype(scale[c]) + dtype(bias[c])
            return scaled + dtype(bias[::-1][c])
        assert_same_bits(outputs[names[2]], elementwise(caffe_steps, dtype, x, channel))
