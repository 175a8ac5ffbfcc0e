"""Plain-numpy float64 references for the tests, written from Caffe's and TensorFlow's
definitions, independently of fastconv.

Nothing here imports fastconv: these are the yardsticks fastconv is measured against. They
favour obviousness over speed: explicit zero padding, one slice per kernel tap, explicit loops
for pooling windows.

- ``sizes``: output sizes (Caffe's truncating convolution, ceil-and-clip pooling, TensorFlow's
  'same'/'valid');
- ``conv``: N-D cross-correlation and Caffe's Convolution forward and backward, GEMM;
- ``deconv``: Caffe's Deconvolution forward, as a scatter;
- ``pool``: Caffe's Pooling forward and backward, by windows;
- ``tolerance``: how far two results may differ, and how far they do.
"""
