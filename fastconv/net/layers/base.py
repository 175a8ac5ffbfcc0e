"""The Layer base class every Caffe layer type builds on, and the helpers several layer families
share."""
from __future__ import annotations

import numpy as np

from ..conv_ops import math_caffe

INT_MAX = 2**31 - 1   # Caffe's blobs count their elements in an int
from ..schema import TEST


class Layer:
    """One layer of a Net.

    Attributes: ``name``, ``type`` (Caffe's type string), ``bottoms`` and ``tops`` (blob names),
    ``blobs`` (the parameter Blobs, as pycaffe's ``layer.blobs``), ``config`` (the parameters
    resolved as Caffe resolves them, e.g. ``{"kernel": (3, 3), "stride": (1, 1), ...}``) and
    ``layer_param`` (the protobuf LayerParameter, without weights).
    """

    type = None
    min_bottoms, max_bottoms = 1, 1
    min_tops, max_tops = 1, 1
    in_place_allowed = True
    # Where in place is not allowed: what Caffe does with it (it refuses Split, Flatten,
    # Reshape and AbsVal in place, and Slice fails its size check; Concat and Crop it runs,
    # writing the output over the input it is still reading).
    in_place_caffe = "Caffe refuses this too"
    # Split, Flatten and Reshape tops share the bottom's memory in Caffe (ShareData).
    shares_data = False

    def __init__(self, layer_param, dtype, phase=TEST):
        self.layer_param = layer_param
        self.name = layer_param.name
        self.bottoms = list(layer_param.bottom)
        self.tops = list(layer_param.top)
        self.dtype = np.dtype(dtype)
        self.phase = layer_param.phase if layer_param.HasField("phase") else phase
        self.blobs = []
        self.config = {}
        self.check_counts()
        self.configure()

    def __repr__(self):
        return f"<{self.type} layer '{self.name}': {self.bottoms} -> {self.tops}>"

    # -- what subclasses provide ----------------------------------------------------------------

    def configure(self):
        """Read the layer's own parameters into ``config`` (no shapes known yet)."""

    def setup(self, bottom_shapes):
        """Caffe's LayerSetUp: resolve shape-dependent parameters; returns the parameter
        blobs' shapes."""
        return []

    def param_fillers(self):
        """(FillerParameter or None, default constant) per parameter blob, for a net without
        weights."""
        return []

    def output_shapes(self, bottom_shapes):
        """Caffe's Reshape: the tops' shapes; ValueError when the bottoms do not fit."""
        return [bottom_shapes[0]] * len(self.tops)

    def compute(self, bottoms, params):
        """The top arrays for ``bottoms`` (arrays of the net's dtype) and the parameter arrays.
        A subclass overrides this or ``compute_into``."""
        return self.compute_into(bottoms, params, [None] * len(self.tops))

    def compute_into(self, bottoms, params, targets):
        """``compute``, writing each top into its entry of ``targets`` where the layer can: an
        array of the top's shape and dtype that overlaps no bottom except by being bottom 0
        itself (in place), or None for a fresh array. Returns the top arrays. Writing into the
        top blob's own array spares the fresh pages of a new one."""
        return self.compute(bottoms, params)

    # -- the public interface -------------------------------------------------------------------

    def fail(self, message):
        raise ValueError(f"layer '{self.name}' ({self.type}): {message}")

    def top_shapes(self, bottom_shapes):
        """The tops' shapes for bottoms of ``bottom_shapes``, checked as Caffe's Reshape does."""
        shapes = [tuple(int(dim) for dim in shape) for shape in bottom_shapes]
        if len(shapes) != len(self.bottoms):
            self.fail(f"takes {len(self.bottoms)} bottoms ({self.bottoms}), got {len(shapes)}")
        tops = [tuple(shape) for shape in self.output_shapes(shapes)]
        for name, shape in zip(self.tops, tops):
            self.check_blob_shape(shape, f"top '{name}'")
        return tops

    def check_blob_shape(self, shape, what):
        """Caffe's Blob::Reshape check: a blob of more than INT_MAX elements aborts Caffe
        ("blob size exceeds INT_MAX"); refused here, naming the layer and the blob."""
        count = 1
        for dim in shape:
            if count != 0 and dim > INT_MAX // count:
                self.fail(f"{what} of shape {tuple(shape)} has more than INT_MAX (2^31 - 1) "
                          "elements; Caffe aborts there ('blob size exceeds INT_MAX')")
            count *= dim

    def forward(self, *bottoms):
        """Run the layer on ``bottoms`` (arrays, converted to the net's dtype, never modified)
        with its current parameter blobs; returns the list of top arrays."""
        arrays = [np.asarray(bottom, dtype=self.dtype) for bottom in bottoms]
        self.top_shapes([array.shape for array in arrays])
        return self.compute(arrays, [blob.data for blob in self.blobs])

    # -- helpers ---------------------------------------------------------------------------------

    def check_counts(self):
        """The numbers of bottoms and tops (and in-place use) Caffe allows for this type;
        subclasses with further rules extend it."""
        for what, names, low, high in (("bottom", self.bottoms, self.min_bottoms,
                                        self.max_bottoms),
                                       ("top", self.tops, self.min_tops, self.max_tops)):
            if not low <= len(names) <= (high if high is not None else len(names)):
                wanted = (f"{low}" if low == high else
                          f"at least {low}" if high is None else f"{low} to {high}")
                self.fail(f"takes {wanted} {what} blob(s), got {len(names)} ({names})")
        if not self.in_place_allowed:
            shared = set(self.bottoms) & set(self.tops)
            if shared:
                self.fail(f"cannot run in place (blob {sorted(shared)[0]!r} is both a bottom "
                          f"and a top); {self.in_place_caffe}")

    def axis(self, axis, ndim, param):
        """Caffe's CanonicalAxisIndex: -ndim <= axis < ndim, negative from the end."""
        if not -ndim <= axis < ndim:
            self.fail(f"{param}={axis} is out of range for a bottom with {ndim} axes")
        return axis % ndim

    def axis_or_legacy(self, param, legacy):
        """``axis``, or the deprecated ``legacy`` field (concat_dim, slice_dim) when given."""
        if param.HasField("axis") and param.HasField(legacy):
            self.fail(f"give either axis or {legacy}, not both")
        return getattr(param, legacy) if param.HasField(legacy) else param.axis

    def scalar(self, value):
        """A parameter as the dtype's scalar (Caffe holds float parameters as Dtype)."""
        return self.dtype.type(value)

    def math(self, function, x, exponent=None):
        """Caffe's element math on x in the layer's dtype (math_caffe: "exp", "log", "tanh",
        "pow" to ``exponent``, by the C library's expf, logf, tanhf, powf for float32, as
        Caffe's Dtype code calls them); a scalar for a scalar. inf and NaN are results here,
        as in Caffe (0 to a negative power, log of 0), without warnings."""
        result = math_caffe(np.asarray(x, self.dtype), function, exponent=exponent)
        return result if result.ndim else self.dtype.type(result)

    def describe(self, index, shape):
        return f"bottom '{self.bottoms[index]}' of shape {tuple(shape)}"



def element_count(shape, start=0, end=None):
    """Caffe's Blob::count: the number of elements on the axes ``start`` .. ``end`` of
    ``shape``."""
    return int(np.prod(shape[start:end], dtype=np.int64))
