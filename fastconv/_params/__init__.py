"""Argument checking and shape inference, one module per family, below the public modules and
above the engine (fastconv._engine):

- ``common``: integer parameters and pairs, arrays and dtypes, the geometry dataclasses;
- ``caffe_conv``: Caffe's Convolution/Deconvolution; ``caffe_message``: Caffe's parameter
  messages (prototxt-style dicts) turned into keyword arguments for ``caffe_conv``/``pooling``;
- ``keras_conv``: Keras's Conv2D/Conv2DTranspose and TensorFlow's padding rule;
- ``pooling``: Caffe's and Keras's pooling.
"""
