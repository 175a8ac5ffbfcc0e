"""Whole Caffe models without Caffe: read a deploy prototxt and a .caffemodel and run them with
pycaffe's deploy API, every layer exact to Caffe 1.0 (see ``Net``).

Needs the optional protobuf dependency (``pip install fastconv[caffe]``), imported only when a
Net is built; importing this package does not need it.
"""
from .blob import Blob
from .layers import LAYER_TYPES, Layer
from .net import Net
from .schema import TEST, TRAIN

__all__ = ["Net", "TEST", "TRAIN", "Blob", "Layer", "LAYER_TYPES"]
