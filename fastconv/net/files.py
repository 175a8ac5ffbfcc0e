# Over 400 lines on purpose: one file format, read and written; its wire helpers belong together.
"""Caffe's two files: the text prototxt and the binary .caffemodel (both ``NetParameter``).

The prototxt is parsed by protobuf's text format against :mod:`fastconv.net.schema`. The
.caffemodel is read as a stream: the wire format is walked here, and each weight blob's packed
``data`` field is read straight into a freshly allocated numpy array with ``readinto``, so
loading costs one copy of the weights in memory and no per-number Python work (protobuf's
repeated-float containers would need a Python float per number). The remaining small parts of
each layer (name, type, parameters, unknown training fields) go through protobuf as usual.

Both readers upgrade what Caffe upgrades at load: V1 ``layers {}`` to ``layer {}`` and the old
``input:`` fields to an Input layer named "input" placed first.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .schema import V1_TYPE_NAMES, messages

# Field numbers of the .caffemodel's wire format (caffe.proto).
_NET_LAYER, _NET_V1_LAYERS = 100, 2
_LAYER_BLOBS, _V1_LAYER_BLOBS = 7, 6
_BLOB_NUM, _BLOB_CHANNELS, _BLOB_HEIGHT, _BLOB_WIDTH = 1, 2, 3, 4
_BLOB_DATA, _BLOB_DOUBLE_DATA, _BLOB_SHAPE = 5, 8, 7
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


@dataclass
class StoredBlob:
    """One parameter blob as a .caffemodel stores it.

    ``shape`` is the blob's shape; ``legacy`` is True when the file gave the deprecated 4-D
    num/channels/height/width instead of ``shape`` (Caffe then compares it against the target
    shape padded to 4 axes with leading 1s). ``data`` is flat, float32 or float64 as stored.
    """

    shape: tuple
    legacy: bool
    data: np.ndarray


# ---------------------------------------------------------------------------------------------
# Text prototxt


def read_prototxt(path):
    """The upgraded NetParameter of a text prototxt; ValueError naming the line on bad syntax."""
    from google.protobuf import text_format

    with open(path, "rb") as file:
        raw = file.read()
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark some editors write is not syntax
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text prototxt (it holds binary data; was the "
                         ".caffemodel given as the prototxt?)") from None
    net = messages()["NetParameter"]()
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as error:
        raise ValueError(f"{path}: line {error.GetLine()}, column {error.GetColumn()}: "
                         f"{_parse_message(error)}") from None
    return upgrade_net(net, path)


def _parse_message(error):
    # ParseError's text starts with "line:column : "; the caller states the position itself.
    text = str(error)
    return text.split(" : ", 1)[1] if " : " in text else text


# ---------------------------------------------------------------------------------------------
# Upgrades Caffe applies at load (upgrade_proto.cpp)


def upgrade_net(net, source):
    """``net`` with V1 layers and old-style inputs turned into today's ``layer`` list."""
    if net.layers and net.layer:
        raise ValueError(f"{source} uses both 'layer' and the old 'layers' fields; Caffe refuses "
                         "to upgrade such a net")
    if net.layers:
        for v1_layer in net.layers:
            net.layer.add().CopyFrom(upgrade_v1_layer(v1_layer, source))
        del net.layers[:]
    if net.input:
        _upgrade_inputs(net, source)
    return net


def upgrade_v1_layer(v1_layer, source):
    """The LayerParameter Caffe's UpgradeV1LayerParameter makes of a V1 layer (no blobs)."""
    if v1_layer.HasField("layer"):
        raise ValueError(f"{source}: layer '{v1_layer.name or v1_layer.layer.name}' is in the "
                         "V0 format (before 2014), which fastconv does not read; upgrade it with "
                         "Caffe's upgrade_net_proto_text tool")
    layer = messages()["LayerParameter"]()
    layer.name = v1_layer.name
    layer.bottom.extend(v1_layer.bottom)
    layer.top.extend(v1_layer.top)
    layer.include.extend(v1_layer.include)
    layer.exclude.extend(v1_layer.exclude)
    layer.loss_weight.extend(v1_layer.loss_weight)
    if v1_layer.HasField("type"):
        enum_name = v1_layer.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number[
            v1_layer.type].name
        layer.type = V1_TYPE_NAMES.get(enum_name, enum_name)
    for field, value in v1_layer.ListFields():
        if field.name.endswith("_param"):
            getattr(layer, field.name).CopyFrom(value)
    return layer


def _upgrade_inputs(net, source):
    """Caffe's UpgradeNetInput: ``input:`` + ``input_dim``/``input_shape`` -> Input layer."""
    if not (net.input_shape or net.input_dim):
        # A legacy caffemodel's inputs carry no shape: Caffe drops them.
        del net.input[:]
        return
    if net.input_shape and len(net.input_shape) != len(net.input):
        raise ValueError(f"{source}: {len(net.input)} 'input' fields but "
                         f"{len(net.input_shape)} 'input_shape' fields (one per input)")
    if not net.input_shape and len(net.input_dim) != 4 * len(net.input):
        raise ValueError(f"{source}: {len(net.input)} 'input' fields need "
                         f"{4 * len(net.input)} 'input_dim' values (four per input), got "
                         f"{len(net.input_dim)}")
    layer = messages()["LayerParameter"](name="input", type="Input")
    for index, name in enumerate(net.input):
        layer.top.append(name)
        shape = layer.input_param.shape.add()
        if net.input_shape:
            shape.CopyFrom(net.input_shape[index])
        else:
            shape.dim.extend(net.input_dim[4 * index:4 * index + 4])
    layers = [layer] + list(net.layer)
    del net.layer[:]
    net.layer.extend(layers)
    del net.input[:]
    del net.input_shape[:]
    del net.input_dim[:]


# ---------------------------------------------------------------------------------------------
# Binary .caffemodel


def read_caffemodel(path):
    """The layers of a .caffemodel in file order: a list of (LayerParameter without blobs,
    [StoredBlob]), upgraded as Caffe does. A truncated or non-Caffe file raises ValueError."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        if file.read(4) == b"\x89HDF":
            raise ValueError(f"{path} is an HDF5 file (Caffe's .caffemodel.h5 snapshot format); "
                             "fastconv reads the binary protobuf .caffemodel only")
        file.seek(0)
        stream = _WireStream(file, size, path)
        return _read_net(stream)


def _read_net(stream):
    classes = messages()
    other_fields = bytearray()
    layers = []
    while stream.pos < stream.size:
        number, wire_type, tag = stream.tag()
        if number in (_NET_LAYER, _NET_V1_LAYERS) and wire_type == _LENGTH:
            end = stream.end_of(stream.varint())
            blob_field = _LAYER_BLOBS if number == _NET_LAYER else _V1_LAYER_BLOBS
            layer_bytes, blobs = _read_layer(stream, end, blob_field)
            kind = "LayerParameter" if number == _NET_LAYER else "V1LayerParameter"
            layer = stream.decode(classes[kind], layer_bytes, "a layer")
            if number == _NET_V1_LAYERS:
                layer = upgrade_v1_layer(layer, stream.path)
            layers.append((layer, blobs))
        else:
            other_fields += tag + stream.raw_value(wire_type)
    net = stream.decode(classes["NetParameter"], bytes(other_fields), "the net's header")
    if not layers:
        raise ValueError(f"{stream.path} holds no layers: it is not a Caffe .caffemodel")
    input_layer = upgrade_net(net, stream.path).layer
    return [(layer, []) for layer in input_layer] + layers


def _read_layer(stream, end, blob_field):
    """(the layer's bytes without its blobs, [StoredBlob]) of the layer ending at ``end``."""
    other_fields = bytearray()
    blobs = []
    while stream.pos < end:
        number, wire_type, tag = stream.tag()
        if number == blob_field and wire_type == _LENGTH:
            blobs.append(_read_blob(stream, stream.end_of(stream.varint(), end)))
        else:
            other_fields += tag + stream.raw_value(wire_type, end)
    stream.check_end(end)
    return bytes(other_fields), blobs


def _read_blob(stream, end):
    legacy_dims = [0, 0, 0, 0]
    legacy = False
    shape = None
    chunks = {np.float32: [], np.float64: []}
    while stream.pos < end:
        number, wire_type, _ = stream.tag()
        if number in (_BLOB_NUM, _BLOB_CHANNELS, _BLOB_HEIGHT, _BLOB_WIDTH) \
                and wire_type == _VARINT:
            legacy_dims[number - 1] = _signed(stream.varint())
            legacy = True
        elif number == _BLOB_SHAPE and wire_type == _LENGTH:
            payload = stream.read(stream.end_of(stream.varint(), end) - stream.pos)
            blob_shape = stream.decode(messages()["BlobShape"], payload, "a blob shape")
            shape = tuple(int(dim) for dim in blob_shape.dim)
        elif number in (_BLOB_DATA, _BLOB_DOUBLE_DATA):
            dtype = np.float32 if number == _BLOB_DATA else np.float64
            chunks[dtype].append(stream.numbers(wire_type, np.dtype(dtype), end))
        else:
            stream.skip_value(wire_type, end)
    stream.check_end(end)
    if legacy:
        shape = tuple(legacy_dims)
    elif shape is None:
        shape = ()
    # Caffe reads double_data when present, data otherwise.
    parts = chunks[np.float64] or chunks[np.float32]
    data = parts[0] if len(parts) == 1 else np.concatenate(parts or [np.empty(0, np.float32)])
    return StoredBlob(shape, legacy, data)


def _signed(value):
    """A varint read as unsigned -> the int64 it encodes (negative int32s use 10 bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value


class _WireStream:
    """Reads protobuf's wire format from a file, checking every length against the file."""

    def __init__(self, file, size, path):
        self.file = file
        self.size = size
        self.path = path
        self.pos = 0

    def fail(self, what):
        raise ValueError(f"{self.path} is not a valid Caffe .caffemodel: {what} at byte "
                         f"{self.pos} of {self.size}")

    def read(self, count):
        data = self.file.read(count)
        if len(data) != count:
            self.fail(f"the file is truncated ({count} bytes needed)")
        self.pos += count
        return data

    def varint(self):
        result = shift = 0
        while True:
            byte = self.read(1)[0]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift >= 70:
                self.fail("a malformed number")

    def tag(self):
        """(field number, wire type, the key's bytes) of the next field."""
        start = self.pos
        key = self.varint()
        wire_type = key & 7
        if wire_type not in (_VARINT, _FIXED64, _LENGTH, _FIXED32) or key >> 3 == 0:
            self.pos = start
            self.fail(f"an invalid field key {key}")
        return key >> 3, wire_type, self._bytes_since(start)

    def end_of(self, length, limit=None):
        """The end position of a field of ``length`` bytes, checked against its container."""
        end = self.pos + length
        if end > (self.size if limit is None else limit):
            self.fail(f"a field of {length} bytes runs past its end (the file is truncated or "
                      "not a .caffemodel)")
        return end

    def check_end(self, end):
        if self.pos != end:
            self.fail("a field overruns its message")

    def raw_value(self, wire_type, limit=None):
        """The encoded value of a field (after its key), as bytes."""
        start = self.pos
        if wire_type == _VARINT:
            self.varint()
            return self._bytes_since(start)
        if wire_type == _LENGTH:
            end = self.end_of(self.varint(), limit)
            self.file.seek(start)
            self.pos = start
            return self.read(end - start)
        return self.read(8 if wire_type == _FIXED64 else 4)

    def _bytes_since(self, start):
        """The bytes from ``start`` to the current position, read again."""
        length = self.pos - start
        self.file.seek(start)
        self.pos = start
        return self.read(length)

    def skip_value(self, wire_type, limit):
        if wire_type == _VARINT:
            self.varint()
            return
        count = self.varint() if wire_type == _LENGTH else (8 if wire_type == _FIXED64 else 4)
        end = self.end_of(count, limit)
        self.file.seek(end)
        self.pos = end

    def numbers(self, wire_type, dtype, limit):
        """A packed (or one unpacked) run of float/double values, read into a new array."""
        little_endian = dtype.newbyteorder("<")
        if wire_type == _LENGTH:
            length = self.varint()
            self.end_of(length, limit)
            if length % dtype.itemsize:
                self.fail(f"a packed array of {length} bytes is not a whole number of "
                          f"{dtype.name} values")
            values = np.empty(length // dtype.itemsize, little_endian)
            got = self.file.readinto(memoryview(values).cast("B"))
            if got != length:
                self.fail(f"the file is truncated ({length} bytes needed)")
            self.pos += length
        elif wire_type == (_FIXED32 if dtype.itemsize == 4 else _FIXED64):
            values = np.frombuffer(self.read(dtype.itemsize), little_endian).copy()
        else:
            self.fail(f"blob values with wire type {wire_type}")
        return values.astype(dtype, copy=False)

    def decode(self, message_class, payload, what):
        from google.protobuf.message import DecodeError

        try:
            return message_class.FromString(payload)
        except DecodeError as error:
            self.fail(f"{what} does not decode ({error})")


# ---------------------------------------------------------------------------------------------
# Writing a .caffemodel


def write_caffemodel(path, net_name, layers):
    """Write ``layers`` [(LayerParameter without blobs, [array])] as a binary NetParameter.

    Blobs are written as Caffe's Blob::ToProto does: ``shape`` and packed ``data`` (float32
    arrays) or ``double_data`` (float64 arrays); the payloads go to the file without copies
    through protobuf.
    """
    header = messages()["NetParameter"](name=net_name) if net_name else None
    with open(path, "wb") as file:
        if header is not None:
            file.write(header.SerializeToString())
        for layer, arrays in layers:
            layer_bytes = layer.SerializeToString()
            blob_headers = [_blob_header(array) for array in arrays]
            length = len(layer_bytes) + sum(
                len(_key(_LAYER_BLOBS, _LENGTH)) + len(_varint(len(head) + array.nbytes))
                + len(head) + array.nbytes for head, array in zip(blob_headers, arrays))
            file.write(_key(_NET_LAYER, _LENGTH) + _varint(length) + layer_bytes)
            for head, array in zip(blob_headers, arrays):
                file.write(_key(_LAYER_BLOBS, _LENGTH) + _varint(len(head) + array.nbytes))
                file.write(head)
                file.write(memoryview(_little_endian(array)).cast("B"))


def _blob_header(array):
    """A BlobProto's shape and the key and length of its data field (the values follow)."""
    shape = messages()["BlobShape"](dim=array.shape).SerializeToString()
    number = _BLOB_DOUBLE_DATA if array.dtype == np.float64 else _BLOB_DATA
    return (_key(_BLOB_SHAPE, _LENGTH) + _varint(len(shape)) + shape
            + _key(number, _LENGTH) + _varint(array.nbytes))


def _little_endian(array):
    little = array.dtype.newbyteorder("<")
    return np.ascontiguousarray(array, dtype=little).reshape(-1)


def _key(number, wire_type):
    return _varint(number << 3 | wire_type)


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)

