"""Caffe 1.0's layers at deploy time (TEST phase), each as Caffe computes it.

A layer is built from its LayerParameter, set up once for its bottoms' shapes (Caffe's
LayerSetUp: parameter shapes), then run any number of times: :meth:`Layer.top_shapes` is Caffe's
Reshape (every shape check, errors naming the layer and the shapes) and :meth:`Layer.forward`
computes the tops from bottom arrays in the net's dtype. Where float32 rounding depends on the
order of operations (LRN, Softmax, BatchNorm, Scale, Eltwise, the math layers) the numpy code
follows the order of Caffe's CPU code, step by step, each step rounded to the dtype; the
comments give Caffe's formula. The convolution family runs on fastconv's engine.

The layer types live in one module per family (see each module); this module registers them
(:data:`LAYER_TYPES`) and builds a layer from its LayerParameter (:func:`make_layer`). The
family modules import :mod:`.base` and never this module.
"""
from __future__ import annotations

from ..schema import TEST
from .base import Layer
from .convolution import ConvolutionLayer, DeconvolutionLayer, InnerProductLayer, PoolingLayer
from .fillers import fill, filler_problem
from .neuron import (AbsValLayer, BNLLLayer, DropoutLayer, ELULayer, ExpLayer, LogLayer,
                     NeuronLayer, PowerLayer, PReLULayer, ReLULayer, SigmoidLayer, TanHLayer,
                     ThresholdLayer)
from .normalization import BatchNormLayer, BiasLayer, LRNLayer, ScaleLayer, SoftmaxLayer
from .structure import (ArgMaxLayer, ConcatLayer, CropLayer, EltwiseLayer, FlattenLayer,
                        InputLayer, ReshapeLayer, SilenceLayer, SliceLayer, SplitLayer)

__all__ = [
    "LAYER_TYPES", "make_layer", "fill", "filler_problem", "Layer", "NeuronLayer", "InputLayer",
    "ConvolutionLayer", "DeconvolutionLayer", "PoolingLayer", "InnerProductLayer", "ReLULayer",
    "PReLULayer",
    "ELULayer", "SigmoidLayer", "TanHLayer", "AbsValLayer", "BNLLLayer", "PowerLayer", "ExpLayer",
    "LogLayer", "ThresholdLayer", "DropoutLayer", "LRNLayer", "SoftmaxLayer", "BatchNormLayer",
    "ScaleLayer", "BiasLayer", "ConcatLayer", "SliceLayer", "SplitLayer", "EltwiseLayer",
    "FlattenLayer", "ReshapeLayer", "CropLayer", "ArgMaxLayer", "SilenceLayer",
]

LAYER_TYPES = {cls.type: cls for cls in (
    InputLayer, ConvolutionLayer, DeconvolutionLayer, PoolingLayer, InnerProductLayer,
    ReLULayer, PReLULayer, ELULayer, SigmoidLayer, TanHLayer, AbsValLayer, BNLLLayer,
    PowerLayer, ExpLayer, LogLayer, ThresholdLayer, DropoutLayer, LRNLayer, SoftmaxLayer,
    BatchNormLayer, ScaleLayer, BiasLayer, ConcatLayer, SliceLayer, SplitLayer, EltwiseLayer,
    FlattenLayer, ReshapeLayer, CropLayer, ArgMaxLayer, SilenceLayer)}


def make_layer(layer_param, dtype, phase=TEST):
    """The Layer for a LayerParameter; ValueError naming the layer for an unsupported type."""
    layer_class = LAYER_TYPES.get(layer_param.type)
    if layer_class is None:
        raise ValueError(f"layer '{layer_param.name}' has type '{layer_param.type}', which "
                         f"fastconv does not run; supported types: "
                         f"{', '.join(sorted(LAYER_TYPES))}")
    return layer_class(layer_param, dtype, phase)
