"""``Net``: a whole Caffe model (deploy prototxt + .caffemodel) with pycaffe's deploy API.

Building a net follows Caffe's Net::Init: read and upgrade the prototxt, keep the layers whose
include/exclude rules the TEST state meets (FilterNet), insert the Split layers Caffe inserts
where a blob feeds several layers (InsertSplits), connect bottoms and tops (an in-place layer
reuses its bottom's blob), set every layer up for its bottoms' shapes, then copy the trained
weights by layer name (CopyTrainedLayersFrom).
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from .blob import Blob
from .files import StoredBlob, read_caffemodel, read_prototxt, write_caffemodel
from .layers import InputLayer, fill, filler_problem, make_layer
from .schema import INSTALL_HINT, TEST, TRAIN, messages


class Net:
    """A Caffe net for inference, with pycaffe's interface.

    ``Net(prototxt, weights=None, phase=TEST, *, dtype=np.float32, level=0, stages=())``; the
    pycaffe forms ``Net(prototxt, weights, TEST)`` and ``Net(prototxt, TEST, weights=...)``
    work too. Only the TEST phase is run (deploy nets). ``dtype=np.float64`` runs every layer in
    double (Caffe's ``Net<double>``); weights stored as float are widened.

    Attributes as in pycaffe: ``blobs`` (OrderedDict blob name -> Blob), ``params``
    (OrderedDict layer name -> list of Blob, for layers with parameters), ``layers``,
    ``layer_dict``, ``_layer_names``, ``inputs``, ``outputs`` (the blobs no layer consumes, in
    Caffe's sorted order), ``top_names`` and ``bottom_names`` (layer name -> blob names).
    """

    def __init__(self, network_file, *args, weights=None, phase=None, level=0, stages=(),
                 dtype=np.float32):
        weights, phase = _pycaffe_arguments(args, weights, phase)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype={dtype!r}: a Net computes in float32 or float64")
        try:
            messages()
        except ImportError as error:
            raise ImportError(f"fastconv.caffe.Net: {INSTALL_HINT}") from error.__cause__
        net_param = read_prototxt(os.fspath(network_file))
        self.name = net_param.name
        state = (phase, int(level), set(net_param.state.stage) | set(stages))
        kept = [layer for layer in net_param.layer if _included(layer, state)]
        self.layers = [make_layer(layer, self.dtype) for layer in insert_splits(kept)]
        self.layer_dict = OrderedDict((layer.name, layer) for layer in self.layers)
        self.blobs = OrderedDict()
        self.inputs = []
        self._connect()
        stored = _stored_weights(os.fspath(weights)) if weights is not None else {}
        self._setup(stored)

    # -- pycaffe's attributes ------------------------------------------------------------------

    @property
    def _layer_names(self):
        return [layer.name for layer in self.layers]

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def params(self):
        return OrderedDict((layer.name, layer.blobs) for layer in self.layers if layer.blobs)

    @property
    def top_names(self):
        return OrderedDict((layer.name, list(layer.tops)) for layer in self.layers)

    @property
    def bottom_names(self):
        return OrderedDict((layer.name, list(layer.bottoms)) for layer in self.layers)

    # -- building ------------------------------------------------------------------------------

    def _connect(self):
        """Caffe's AppendBottom/AppendTop: blobs in creation order, in-place tops reuse their
        bottom's blob, and the outputs are the blobs left unconsumed."""
        available = set()
        for layer in self.layers:
            # (insert_splits has already refused bottoms that no earlier layer produces)
            available.difference_update(layer.bottoms)
            for index, name in enumerate(layer.tops):
                in_place = index < len(layer.bottoms) and layer.bottoms[index] == name
                if name in self.blobs and not in_place:
                    raise ValueError(f"top blob '{name}' is produced by several layers (again "
                                     f"by '{layer.name}'); Caffe refuses this net too. An "
                                     "in-place layer must list the blob as its bottom and top "
                                     "at the same position, and be its only consumer")
                if name not in self.blobs:
                    self.blobs[name] = Blob((0,), self.dtype)
                if isinstance(layer, InputLayer):
                    self.inputs.append(name)
                available.add(name)
        # std::set<string> in Caffe: byte order of the names.
        self.outputs = sorted(available, key=lambda name: name.encode("utf-8"))

    def _setup(self, stored):
        """Shapes through the net, then each layer's parameters: the stored weights where the
        .caffemodel has the layer, Caffe's fillers otherwise."""
        rng = np.random.default_rng(0)
        for layer in self.layers:
            bottom_shapes = [self.blobs[name].shape for name in layer.bottoms]
            param_shapes = [tuple(shape) for shape in layer.setup(bottom_shapes)]
            for index, shape in enumerate(param_shapes):
                layer.check_blob_shape(shape, f"parameter blob {index}")
            for index, ((filler, _), shape) in enumerate(zip(layer.param_fillers(),
                                                             param_shapes)):
                problem = filler_problem(filler, shape)
                if problem:
                    raise ValueError(f"layer '{layer.name}' ({layer.type}), parameter blob "
                                     f"{index}: {problem}; Caffe fills every parameter when it "
                                     "builds the net, weights file or not, and aborts here")
            if layer.name in stored:
                layer.blobs = [Blob(data=data) for data in
                               _checked_weights(layer, param_shapes, stored[layer.name],
                                                self.dtype)]
            else:
                fillers = layer.param_fillers()
                layer.blobs = [Blob(data=fill(*fillers[index], shape, self.dtype, rng))
                               for index, shape in enumerate(param_shapes)]
            for name, shape in zip(layer.tops, layer.top_shapes(bottom_shapes)):
                self.blobs[name].reshape(*shape)
        self._share_named_params(stored)

    def _share_named_params(self, stored):
        """Caffe's named parameters (``param { name: "w" }``): every layer that names one holds
        the same blob as the first layer that did, whose shape it must have (Caffe's default
        share_mode STRICT). Caffe copies the .caffemodel's layers into that one blob in the
        file's order, so the last of the sharing layers the file holds gives its value; with
        none of them in the file, the first layer's filler does."""
        holders = {}   # param name -> [(layer, blob index)], in net order
        for layer in self.layers:
            for index, spec in enumerate(layer.layer_param.param[:len(layer.blobs)]):
                if spec.name:
                    holders.setdefault(spec.name, []).append((layer, index))
        file_order = {name: position for position, name in enumerate(stored)}
        for name, sharing in holders.items():
            owner, owner_index = sharing[0]
            shape = owner.blobs[owner_index].shape
            for layer, index in sharing[1:]:
                if layer.blobs[index].shape != shape:
                    raise ValueError(
                        f"layer '{layer.name}' shares parameter '{name}' (its blob {index}) "
                        f"with layer '{owner.name}', but its shape {layer.blobs[index].shape} "
                        f"differs from {shape}; Caffe refuses this too (share_mode STRICT)")
            in_file = [holder for holder in sharing if holder[0].name in file_order]
            layer, index = (max(in_file, key=lambda holder: file_order[holder[0].name])
                            if in_file else sharing[0])
            shared = layer.blobs[index]
            for layer, index in sharing:
                layer.blobs[index] = shared

    # -- running -------------------------------------------------------------------------------

    def reshape(self):
        """Propagate the input blobs' shapes through the net (Caffe's Net::Reshape)."""
        for layer in self.layers:
            if isinstance(layer, InputLayer):
                continue
            shapes = layer.top_shapes([self.blobs[name].shape for name in layer.bottoms])
            for name, shape in zip(layer.tops, shapes):
                self.blobs[name].reshape(*shape)

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """Run layers ``start``..``end`` (names; default all) and return a dict of the output
        blobs' arrays (the net's outputs, or ``end``'s tops) plus the blobs named in ``blobs``.

        ``inputs`` (name=array for every input blob) are copied into the input blobs first,
        never modified; as in pycaffe, the returned arrays are the blobs' own data.
        """
        if inputs:
            self._set_inputs(inputs)
        names = self._layer_names
        first = self._layer_index(start, "start") if start is not None else 0
        last = self._layer_index(end, "end") if end is not None else len(names) - 1
        for layer in self.layers[first:last + 1]:
            self._forward_layer(layer)
        if end is not None:
            wanted = [end] if end in self.blobs else list(self.layers[last].tops)
        else:
            wanted = list(self.outputs)
        for name in blobs or []:
            if name not in self.blobs:
                raise KeyError(f"blobs: the net has no blob '{name}'")
            wanted.append(name)
        return {name: self.blobs[name].data for name in wanted}

    def _layer_index(self, name, argument):
        names = self._layer_names
        if name not in names:
            raise ValueError(f"{argument}={name!r} is not a layer of the net; layers: {names}")
        return names.index(name)

    def _set_inputs(self, inputs):
        if set(inputs) != set(self.inputs):
            raise ValueError(f"forward() got inputs {sorted(inputs)}; the net's inputs are "
                             f"{self.inputs} (give all of them, or set blobs[...].data and "
                             "call forward() without arguments)")
        for name, value in inputs.items():
            array = np.asarray(value)
            blob = self.blobs[name]
            if array.ndim == 0 or not blob.shape or array.shape[0] != blob.shape[0]:
                raise ValueError(f"input '{name}' of shape {array.shape} does not match the "
                                 f"blob's batch size: blob shape {blob.shape}; call "
                                 f"net.blobs['{name}'].reshape(*shape) and net.reshape() first")
            try:
                np.copyto(blob.data, array, casting="unsafe")
            except ValueError:
                raise ValueError(f"input '{name}' of shape {array.shape} does not fit the blob "
                                 f"of shape {blob.shape}") from None

    def _forward_layer(self, layer):
        if isinstance(layer, InputLayer):
            return
        bottoms = [self.blobs[name].data for name in layer.bottoms]
        shapes = layer.top_shapes([bottom.shape for bottom in bottoms])
        targets = [None if layer.shares_data else
                   _writable_target(self.blobs[name].data, shape, layer.dtype, bottoms)
                   for name, shape in zip(layer.tops, shapes)]
        tops = layer.compute_into(bottoms, [blob.data for blob in layer.blobs], targets)
        for name, top in zip(layer.tops, tops):
            self.blobs[name].store(top, share=layer.shares_data)

    # -- saving --------------------------------------------------------------------------------

    def save(self, path):
        """Write the weights as a binary .caffemodel (what Caffe's Net::ToProto writes: every
        layer with its parameters, float32 nets as ``data``, float64 as ``double_data``)."""
        write_caffemodel(os.fspath(path), self.name,
                         [(_without_blobs(layer.layer_param),
                           [blob.data for blob in layer.blobs]) for layer in self.layers])

    def __repr__(self):
        return (f"<fastconv Net '{self.name}': {len(self.layers)} layers, inputs {self.inputs}, "
                f"outputs {self.outputs}, {self.dtype.name}>")


def _pycaffe_arguments(args, weights, phase):
    """(weights, phase) from pycaffe's positional forms: a path is the weights file, an int is
    the phase."""
    if len(args) > 2:
        raise TypeError(f"Net() takes the prototxt and at most two more positional arguments "
                        f"(weights, phase), got {len(args) + 1}")
    for position, value in enumerate(args):
        if value is None and position == 0:
            continue  # Net(prototxt, None, TEST): no weights
        if isinstance(value, (str, bytes, os.PathLike)) and weights is None:
            weights = value
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
                and phase is None:
            phase = int(value)
        else:
            raise TypeError(f"Net(): positional argument {value!r} is neither a weights path "
                            "nor a phase (TEST)")
    phase = TEST if phase is None else phase
    if phase == TRAIN:
        raise ValueError("phase=TRAIN: fastconv's Net runs deploy nets in the TEST phase only "
                         "(no training, no data or loss layers)")
    if phase != TEST:
        raise ValueError(f"phase={phase!r}: use fastconv.caffe.TEST")
    return weights, phase


def _included(layer, state):
    """Caffe's FilterNet rule: kept unless an exclude rule is met; with include rules, kept
    only if one is met."""
    if layer.include and layer.exclude:
        raise ValueError(f"layer '{layer.name}' has both include and exclude rules; Caffe "
                         "allows one kind only")
    if layer.include:
        return any(_meets(rule, state) for rule in layer.include)
    return not any(_meets(rule, state) for rule in layer.exclude)


def _meets(rule, state):
    phase, level, stages = state
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    return all(stage in stages for stage in rule.stage) and not any(
        stage in stages for stage in rule.not_stage)


def insert_splits(layers):
    """Caffe's InsertSplits: after a top that feeds more than one bottom (or a bottom and a
    loss), a Split layer ``<blob>_<layer>_<top index>_split`` whose tops
    ``<blob>_<layer>_<top index>_split_<j>`` replace the blob in its consumers, in order.

    A bottom refers to the most recent top of that name, so a blob rewritten by an in-place
    layer is split after that layer. Returns new LayerParameters; ``layers`` is not modified.
    """
    last_top = {}
    source_of = {}
    consumers = {}
    loss_weight = {}
    for layer_index, layer in enumerate(layers):
        for bottom_index, name in enumerate(layer.bottom):
            if name not in last_top:
                raise ValueError(f"layer '{layer.name}' ({layer.type}) takes bottom '{name}' "
                                 f"(bottom {bottom_index}), which no earlier layer produces")
            source = last_top[name]
            source_of[layer_index, bottom_index] = source
            consumers[source] = consumers.get(source, 0) + 1
        for top_index, name in enumerate(layer.top):
            last_top[name] = (layer_index, top_index)
        for top_index, weight in enumerate(layer.loss_weight[:len(layer.top)]):
            source = last_top[layer.top[top_index]]
            loss_weight[source] = weight
            if weight:
                consumers[source] = consumers.get(source, 0) + 1
    result = []
    next_split = {}
    layer_param = messages()["LayerParameter"]
    for layer_index, layer in enumerate(layers):
        copy = layer_param()
        copy.CopyFrom(layer)
        result.append(copy)
        for bottom_index, name in enumerate(copy.bottom):
            source = source_of[layer_index, bottom_index]
            if consumers[source] > 1:
                split_index = next_split.get(source, 0)
                next_split[source] = split_index + 1
                copy.bottom[bottom_index] = _split_blob_name(
                    name, layers[source[0]].name, source[1], split_index)
        for top_index, name in enumerate(copy.top):
            source = (layer_index, top_index)
            count = consumers.get(source, 0)
            if count > 1:
                split = layer_param(name=f"{name}_{layer.name}_{top_index}_split", type="Split")
                split.bottom.append(name)
                split.top.extend(_split_blob_name(name, layer.name, top_index, j)
                                 for j in range(count))
                if loss_weight.get(source):
                    split.loss_weight.append(loss_weight[source])
                    del copy.loss_weight[:]
                    next_split[source] = next_split.get(source, 0) + 1
                result.append(split)
    return result


def _split_blob_name(blob, layer, top_index, split_index):
    return f"{blob}_{layer}_{top_index}_split_{split_index}"


def _stored_weights(path):
    """Layer name -> [StoredBlob] of a .caffemodel (the last layer of a name wins, as Caffe's
    copies in file order do)."""
    return {layer.name: blobs for layer, blobs in read_caffemodel(path)}


def _checked_weights(layer, param_shapes, stored, dtype):
    """The stored blobs as arrays of the layer's parameter shapes, checked as Caffe's
    CopyTrainedLayersFrom checks them."""
    if len(stored) != len(param_shapes):
        raise ValueError(f"layer '{layer.name}' ({layer.type}): the weights file has "
                         f"{len(stored)} blobs for it, the prototxt makes {len(param_shapes)} "
                         f"(shapes {param_shapes}); Caffe refuses this too")
    arrays = []
    for index, (blob, shape) in enumerate(zip(stored, param_shapes)):
        if not _shape_equals(blob, shape):
            raise ValueError(
                f"layer '{layer.name}' ({layer.type}): weights blob {index} has shape "
                f"{blob.shape}{' (legacy num/channels/height/width)' if blob.legacy else ''} "
                f"in the weights file but {shape} in the prototxt")
        count = int(np.prod(shape, dtype=np.int64))
        if blob.data.size != count:
            raise ValueError(f"layer '{layer.name}' ({layer.type}): weights blob {index} of "
                             f"shape {shape} holds {blob.data.size} values instead of {count}")
        arrays.append(blob.data.astype(dtype, copy=False).reshape(shape))
    return arrays


def _shape_equals(blob: StoredBlob, shape):
    """Caffe's Blob::ShapeEquals: legacy 4-D sizes index from the end of the shape."""
    if blob.legacy:
        return len(shape) <= 4 and (1,) * (4 - len(shape)) + tuple(shape) == blob.shape
    return tuple(shape) == blob.shape


def _without_blobs(layer_param):
    copy = type(layer_param)()
    copy.CopyFrom(layer_param)
    del copy.blobs[:]
    return copy


def _writable_target(array, shape, dtype, bottoms):
    """The top blob's ``array`` when a layer may write its top straight into it (Blob.store
    would copy into it anyway): same shape and dtype, and no overlap with a bottom other than
    bottom 0 itself (a layer run in place); else None."""
    if array.shape != tuple(shape) or array.dtype != dtype or not array.flags.writeable:
        return None
    if any(np.may_share_memory(array, bottom) for bottom in bottoms[1:]):
        return None
    if bottoms and bottoms[0] is not array and np.may_share_memory(array, bottoms[0]):
        return None
    return array
