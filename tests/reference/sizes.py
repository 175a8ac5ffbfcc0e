"""Output sizes, one formula per rule."""
import math


def extent(kernel, dilation):
    return dilation * (kernel - 1) + 1


def caffe_conv_out_size(size, kernel, stride, pad, dilation=1):
    """Caffe computes (in + 2*pad - extent) / stride + 1 in C integers; int() of the float
    quotient truncates toward zero the same way (not floor: -1/4 gives 0, one output)."""
    return int((size + 2 * pad - extent(kernel, dilation)) / stride) + 1


def caffe_deconv_out_size(size, kernel, stride, pad, dilation=1):
    return stride * (size - 1) + extent(kernel, dilation) - 2 * pad


def caffe_pool_out_size(size, kernel, stride, pad, layer_padded):
    """pooling_layer.cpp: ceil((in + 2*pad - kernel) / stride) + 1, then, if the layer has any
    padding (``if (pad_h_ || pad_w_)``, once for both axes), one less when the last window would
    start at or past in + pad."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if layer_padded and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def keras_out_size_and_pad_before(size, kernel, stride, dilation, padding):
    """TensorFlow's output size and padding before the input: 'valid' floors; 'same' gives
    ceil(in / stride) outputs and puts the odd padding cell after the input."""
    span = extent(kernel, dilation)
    if padding == "valid":
        return (size - span) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2
