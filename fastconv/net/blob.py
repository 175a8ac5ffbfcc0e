"""pycaffe's Blob: a named n-d array of a Net (a layer's output or parameter)."""
from __future__ import annotations

import numpy as np


class Blob:
    """An array with pycaffe's Blob interface.

    ``data`` is the array itself: write into it (``blob.data[...] = x``) to set an input or a
    weight. A forward writes each layer's output into its top blob's existing array when the
    shape is unchanged, so an array taken from ``data`` before a forward sees the new values,
    as in pycaffe.
    """

    def __init__(self, shape=(), dtype=np.float32, data=None):
        self._data = np.zeros(tuple(shape), dtype) if data is None else data

    @property
    def data(self):
        return self._data

    @property
    def shape(self):
        return self._data.shape

    @property
    def count(self):
        return int(self._data.size)

    def _legacy_dim(self, index):
        # Caffe's LegacyShape: axes past the blob's own read as 1.
        return self._data.shape[index] if index < self._data.ndim else 1

    @property
    def num(self):
        return self._legacy_dim(0)

    @property
    def channels(self):
        return self._legacy_dim(1)

    @property
    def height(self):
        return self._legacy_dim(2)

    @property
    def width(self):
        return self._legacy_dim(3)

    def reshape(self, *shape):
        """Change the shape (pycaffe's ``blob.reshape(n, c, h, w)``); the values are reset to
        zero when it changes. Call ``net.reshape()`` to propagate an input's new shape."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        dims = tuple(int(dim) for dim in shape)
        if any(dim < 0 for dim in dims):
            raise ValueError(f"reshape{dims}: blob dimensions must be >= 0")
        if dims != self._data.shape:
            self._data = np.zeros(dims, self._data.dtype)

    def store(self, values, *, share=False):
        """Make ``values`` the blob's contents: shared (Caffe's ShareData, as Split, Flatten and
        Reshape do) or copied into the existing array when the shape allows."""
        if values is self._data:
            return
        if share or values.shape != self._data.shape or values.dtype != self._data.dtype:
            self._data = values
        else:
            np.copyto(self._data, values)

    def __repr__(self):
        return f"Blob(shape={self.shape}, dtype={self._data.dtype})"
