"""The layers that supply, route and reshape blobs without arithmetic of their own (Input, Concat,
Slice, Split, Flatten, Reshape, Crop), plus Eltwise and ArgMax, which combine or search blobs
as a whole."""
from __future__ import annotations

import numpy as np

from ..conv_ops import eltwise_caffe
from .base import Layer, element_count


class InputLayer(Layer):
    type = "Input"
    min_bottoms, max_bottoms = 0, 0
    max_tops = None

    def configure(self):
        shapes = [tuple(int(dim) for dim in shape.dim)
                  for shape in self.layer_param.input_param.shape]
        if len(shapes) not in (0, 1, len(self.tops)):
            self.fail(f"has {len(self.tops)} tops but {len(shapes)} shapes; give one shape "
                      "for all tops or one per top")
        if any(dim < 0 for shape in shapes for dim in shape):
            self.fail(f"input shapes {shapes} have a negative dimension")
        if len(shapes) == 1:
            shapes = shapes * len(self.tops)
        # Without a shape Caffe leaves the blob empty until the user reshapes it.
        self.config["shapes"] = shapes or [(0,)] * len(self.tops)

    def output_shapes(self, bottom_shapes):
        return self.config["shapes"]

    def compute(self, bottoms, params):
        self.fail("has no computation: its tops are the net's inputs, set by the caller")


class ConcatLayer(Layer):
    type = "Concat"
    max_bottoms = None
    in_place_allowed = False
    in_place_caffe = ("Caffe does not check this and overwrites the input it is still "
                      "reading (garbage, or a crash)")

    def configure(self):
        self.config["axis"] = self.axis_or_legacy(self.layer_param.concat_param, "concat_dim")

    def output_shapes(self, bottom_shapes):
        first = bottom_shapes[0]
        axis = self.axis(self.config["axis"], len(first), "concat_param.axis")
        total = 0
        for index, shape in enumerate(bottom_shapes):
            if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != \
                    first[:axis] + first[axis + 1:]:
                self.fail(f"{self.describe(index, shape)} does not fit "
                          f"{self.describe(0, first)}: all axes but {axis} must agree")
            total += shape[axis]
        return [first[:axis] + (total,) + first[axis + 1:]]

    def compute(self, bottoms, params):
        axis = self.axis(self.config["axis"], bottoms[0].ndim, "concat_param.axis")
        return [np.concatenate(bottoms, axis=axis)]


class SliceLayer(Layer):
    type = "Slice"
    max_tops = None
    in_place_allowed = False

    def configure(self):
        param = self.layer_param.slice_param
        self.config.update(axis=self.axis_or_legacy(param, "slice_dim"),
                           slice_point=list(param.slice_point))
        points = self.config["slice_point"]
        if points and len(points) != len(self.tops) - 1:
            self.fail(f"{len(points)} slice_point values for {len(self.tops)} tops (need "
                      f"{len(self.tops) - 1})")
        if any(b <= a for a, b in zip(points, points[1:])):
            self.fail(f"slice_point {points} must increase")

    def _bounds(self, shape):
        axis = self.axis(self.config["axis"], len(shape), "slice_param.axis")
        size = shape[axis]
        points = self.config["slice_point"]
        if points:
            if points[-1] >= size or points[0] == 0:
                self.fail(f"slice_point {points} does not fit axis {axis} of "
                          f"{self.describe(0, shape)}")
            edges = [0] + points + [size]
        else:
            if size % len(self.tops):
                self.fail(f"axis {axis} of {self.describe(0, shape)} does not divide into "
                          f"{len(self.tops)} equal slices")
            step = size // len(self.tops)
            edges = list(range(0, size + 1, step))
        return axis, edges

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        axis, edges = self._bounds(shape)
        return [shape[:axis] + (end - start,) + shape[axis + 1:]
                for start, end in zip(edges, edges[1:])]

    def compute(self, bottoms, params):
        x = bottoms[0]
        axis, edges = self._bounds(x.shape)
        index = [slice(None)] * x.ndim
        tops = []
        for start, end in zip(edges, edges[1:]):
            index[axis] = slice(start, end)
            tops.append(x[tuple(index)].copy())
        return tops


class SplitLayer(Layer):
    """Copies of the bottom; Caffe inserts these where a blob feeds several layers."""

    type = "Split"
    max_tops = None
    in_place_allowed = False
    shares_data = True

    def compute(self, bottoms, params):
        return [bottoms[0]] * len(self.tops)


class EltwiseLayer(Layer):
    type = "Eltwise"
    min_bottoms, max_bottoms = 2, None

    def configure(self):
        param = self.layer_param.eltwise_param
        operation = {0: "PROD", 1: "SUM", 2: "MAX"}[param.operation]
        coeff = list(param.coeff)
        if coeff and operation == "PROD":   # Caffe refuses only this; MAX ignores them
            self.fail("coeff is not allowed with operation PROD (Caffe: coefficients only "
                      "for summation)")
        if coeff and len(coeff) != len(self.bottoms):
            self.fail(f"{len(coeff)} coeff values for {len(self.bottoms)} bottoms (one per "
                      "bottom)")
        self.config.update(operation=operation, coeff=coeff or [1.0] * len(self.bottoms))

    def output_shapes(self, bottom_shapes):
        for index, shape in enumerate(bottom_shapes[1:], 1):
            if shape != bottom_shapes[0]:
                self.fail(f"{self.describe(index, shape)} differs from "
                          f"{self.describe(0, bottom_shapes[0])}; Eltwise needs equal shapes")
        return [bottom_shapes[0]]

    def compute_into(self, bottoms, params, targets):
        operation = self.config["operation"]
        coeff = self.config["coeff"] if operation == "SUM" else None
        top = targets[0]
        aliased = [np.may_share_memory(bottom, top) for bottom in bottoms]
        if any(aliased):
            return [self._in_place(bottoms, aliased, top)]
        return [eltwise_caffe(*bottoms, operation=operation, coeff=coeff, out=top)]

    def _in_place(self, bottoms, aliased, top):
        """Caffe's forward where the top is one of the bottoms: it sets the top (SUM to 0,
        MAX to -FLT_MAX) before it reads the bottoms, so that bottom reads what the top holds
        by then (eltwise_layer.cpp); PROD multiplies the first two into the top first."""
        def read(index):
            return top if aliased[index] else bottoms[index]
        operation = self.config["operation"]
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if operation == "SUM":
                top[...] = 0
                for index, coeff in enumerate(self.config["coeff"]):
                    if coeff != 0:   # the BLAS axpy returns at once for a zero alpha
                        top[...] = top + self.scalar(coeff) * read(index)
            elif operation == "PROD":
                top[...] = bottoms[0] * bottoms[1]   # element by element: read, then written
                for index in range(2, len(bottoms)):
                    top[...] = top * read(index)
            else:
                top[...] = -np.finfo(np.float32).max   # Dtype(-FLT_MAX), also for double
                first, second = read(0), read(1)
                top[...] = np.where(np.greater(first, second), first, second)
                for index in range(2, len(bottoms)):
                    later = read(index)
                    top[...] = np.where(np.greater(later, top), later, top)
        return top


class FlattenLayer(Layer):
    type = "Flatten"
    in_place_allowed = False
    shares_data = True

    def configure(self):
        param = self.layer_param.flatten_param
        self.config.update(axis=param.axis, end_axis=param.end_axis)

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        start = self.axis(self.config["axis"], len(shape), "flatten_param.axis")
        end = self.axis(self.config["end_axis"], len(shape), "flatten_param.end_axis")
        # Caffe counts the axes axis .. end_axis: an empty range (end_axis = axis - 1) is a
        # new axis of size 1; only an end further back is refused.
        if end + 1 < start:
            self.fail(f"end_axis {end} comes before axis {start} - 1 for "
                      f"{self.describe(0, shape)}")
        return [shape[:start] + (element_count(shape, start, end + 1),) + shape[end + 1:]]

    def compute(self, bottoms, params):
        return [bottoms[0].reshape(self.output_shapes([bottoms[0].shape])[0])]


class ReshapeLayer(Layer):
    type = "Reshape"
    in_place_allowed = False
    shares_data = True

    def configure(self):
        param = self.layer_param.reshape_param
        dims = [int(dim) for dim in param.shape.dim]
        if dims.count(-1) > 1:
            self.fail(f"shape {dims} has more than one -1 (at most one dimension is inferred)")
        if any(dim < -1 for dim in dims):
            self.fail(f"shape {dims} has a dimension below -1")
        if param.num_axes < -1:
            self.fail(f"num_axes={param.num_axes} must be >= 0, or -1 for all")
        self.config.update(shape=dims, axis=param.axis, num_axes=param.num_axes)

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        dims, axis, num_axes = (self.config[name] for name in ("shape", "axis", "num_axes"))
        start = axis if axis >= 0 else len(shape) + axis + 1
        if not 0 <= start <= len(shape):
            self.fail(f"axis {axis} is out of range for {self.describe(0, shape)}")
        end = len(shape) if num_axes == -1 else start + num_axes
        if end > len(shape):
            self.fail(f"axis {axis} + num_axes {num_axes} is out of range for "
                      f"{self.describe(0, shape)}")
        top = list(shape[:start]) + list(dims) + list(shape[end:])
        for index, dim in enumerate(dims):
            if dim == 0:
                if start + index >= len(shape):
                    self.fail(f"shape {dims} has a 0 at position {index} but "
                              f"{self.describe(0, shape)} has no axis {start + index} to copy")
                top[start + index] = shape[start + index]
        if -1 in dims:
            known = element_count([dim for dim in top if dim != -1])
            total = element_count(shape)
            if known == 0 or total % known:
                self.fail(f"{self.describe(0, shape)} ({total} values) does not divide by the "
                          f"given dimensions {tuple(top)} (product {known})")
            top[start + dims.index(-1)] = total // known
        if element_count(top) != element_count(shape):
            self.fail(f"the new shape {tuple(top)} holds {element_count(top)} values, "
                      f"{self.describe(0, shape)} holds {element_count(shape)}")
        return [tuple(top)]

    def compute(self, bottoms, params):
        return [bottoms[0].reshape(self.output_shapes([bottoms[0].shape])[0])]


class CropLayer(Layer):
    """The first bottom cropped to the second's size on axes >= ``axis``, at ``offset``."""

    type = "Crop"
    min_bottoms, max_bottoms = 2, 2
    in_place_allowed = False
    in_place_caffe = ("Caffe does not check this and overwrites the input it is still "
                      "reading (garbage, or a crash)")

    def configure(self):
        param = self.layer_param.crop_param
        self.config.update(axis=param.axis, offset=list(param.offset))

    def _offsets(self, shape, reference):
        if len(shape) != len(reference):
            self.fail(f"{self.describe(0, shape)} and {self.describe(1, reference)} must have "
                      "the same number of axes")
        start = self.axis(self.config["axis"], len(shape), "crop_param.axis")
        offsets = self.config["offset"]
        if len(offsets) > 1 and start + len(offsets) != len(shape):
            self.fail(f"{len(offsets)} offset values for the {len(shape) - start} axes from "
                      f"axis {start} on (give one value, or one per cropped axis)")
        result = []
        for index in range(len(shape)):
            if index < start:
                result.append(0)
                continue
            offset = offsets[0] if len(offsets) == 1 else (
                offsets[index - start] if offsets else 0)
            if shape[index] - offset < reference[index]:
                self.fail(f"crop of axis {index} is out of bounds: size {reference[index]} at "
                          f"offset {offset} does not fit {self.describe(0, shape)}")
            result.append(offset)
        return start, result

    def output_shapes(self, bottom_shapes):
        shape, reference = bottom_shapes
        start, _ = self._offsets(shape, reference)
        return [shape[:start] + reference[start:]]

    def compute(self, bottoms, params):
        x, reference = bottoms
        start, offsets = self._offsets(x.shape, reference.shape)
        index = tuple(slice(offset, offset + (reference.shape[axis] if axis >= start
                                              else x.shape[axis]))
                      for axis, offset in enumerate(offsets))
        return [x[index].copy()]


class SilenceLayer(Layer):
    """Consumes its bottoms and produces nothing (a net's unused outputs)."""

    type = "Silence"
    max_bottoms = None
    min_tops = max_tops = 0

    def output_shapes(self, bottom_shapes):
        return []

    def compute(self, bottoms, params):
        return []


class ArgMaxLayer(Layer):
    """Indices (and with ``out_max_val`` values) of the ``top_k`` largest values; ties go to
    the larger index, as Caffe's sort of (value, index) pairs in descending order gives."""

    type = "ArgMax"

    def configure(self):
        param = self.layer_param.argmax_param
        if param.top_k < 1:
            self.fail(f"top_k={param.top_k} must be >= 1")
        self.config.update(out_max_val=param.out_max_val, top_k=param.top_k,
                           axis=param.axis if param.HasField("axis") else None)

    def _layout(self, shape):
        """(axis or None, size of the searched dimension)."""
        axis = self.config["axis"]
        if axis is None:
            return None, element_count(shape, 1)
        axis = self.axis(axis, len(shape), "argmax_param.axis")
        return axis, shape[axis]

    def output_shapes(self, bottom_shapes):
        shape = bottom_shapes[0]
        axis, size = self._layout(shape)
        top_k = self.config["top_k"]
        if top_k > size:
            self.fail(f"top_k={top_k} exceeds the {size} values searched in "
                      f"{self.describe(0, shape)}")
        if axis is not None:
            return [shape[:axis] + (top_k,) + shape[axis + 1:]]
        top = [1] * max(3, len(shape))
        top[0], top[2] = shape[0], top_k
        if self.config["out_max_val"]:
            top[1] = 2
        return [tuple(top)]

    def compute(self, bottoms, params):
        x = bottoms[0]
        axis, size = self._layout(x.shape)
        top_k = self.config["top_k"]
        rows = (x.reshape(x.shape[0], size) if axis is None
                else np.moveaxis(x, axis, -1).reshape(-1, size))
        positions = np.broadcast_to(np.arange(size), rows.shape)
        # lexsort's last key is the primary one: value descending, then index descending.
        order = np.lexsort((-positions, -rows), axis=-1)[:, :top_k]
        values = np.take_along_axis(rows, order, axis=-1)
        top_shape = self.output_shapes([x.shape])[0]
        if axis is None:
            parts = [order.astype(self.dtype)[:, None, :]]
            if self.config["out_max_val"]:
                parts.append(values[:, None, :])
            return [np.concatenate(parts, axis=1).reshape(top_shape)]
        result = values if self.config["out_max_val"] else order.astype(self.dtype)
        moved = x.shape[:axis] + x.shape[axis + 1:] + (top_k,)
        return [np.moveaxis(result.reshape(moved), -1, axis).copy()]
