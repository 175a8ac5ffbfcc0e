"""Runs inside the bullseye chroot (Python 3.9, Debian's python3-caffe): whole nets in real Caffe.

Invoked by generate_nets.py as
``chroot ROOT env GLOG_minloglevel=2 python3 - JOBDIR < net_worker.py``.
JOBDIR (a path inside the chroot) holds ``job.json``, a list of nets, each with:

    name, prototxt        the deploy net (new ``layer {}`` or V1 ``layers {}`` text)
    seed                  caffe.set_random_seed before the net is built: Caffe's fillers draw
    params                [[layer, index, recipe]]: parameter blobs set from numpy instead
    input_kinds           {input name: kind}: how the inputs are drawn
    v1_caffemodel         write the .caffemodel in the V1 format (``layers``, legacy 4-D dims)
    legacy_blob_dims      new format, but every blob with the legacy 4-D sizes instead of shape
    training_layers       add layers only a training net has to the .caffemodel

Numbers drawn here use numpy's legacy ``RandomState``, whose streams numpy keeps bit-for-bit
stable across versions, seeded from the net's and the blob's names: a rerun is byte-identical.

For each net the worker builds it in Caffe (fillers fill the parameters), sets the numpy
parameters, saves the .caffemodel (Caffe's own ``net.save``, or written here in the V1 format
Caffe no longer writes), then loads prototxt + .caffemodel afresh the way a user would, checks
the loaded parameters are the ones saved, runs one TEST-phase forward and records what pycaffe
shows: ``<name>.json`` (inputs, outputs, layer names and types, blob names and shapes, parameter
shapes) and ``<name>.npz`` with ``input/<i>``, ``f32/<i>`` (every blob, in net.blobs order),
``param/<i>/<j>`` (net.params order, after the forward), and ``f64/<i>`` and ``param64/<i>/<j>``
from the same forward in Net<double> (caffe_double.cpp).
"""
import json
import os
import subprocess
import sys
import zlib

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import descriptor_pb2, text_format  # noqa: E402

DOUBLE_BINARY = "caffe_double"


def random_state(*names):
    return np.random.RandomState(zlib.crc32("/".join(names).encode()))


def draw(rng, recipe, shape):
    """``normal:STD``, ``uniform:LOW:HIGH``, ``const:VALUE`` or ``image`` (6-bit values in
    [-1, 1), exact in float32 and compressible)."""
    kind, *args = recipe.split(":")
    args = [float(a) for a in args]
    if kind == "normal":
        values = rng.standard_normal(shape) * args[0]
    elif kind == "uniform":
        values = rng.uniform(args[0], args[1], shape)
    elif kind == "const":
        values = np.full(shape, args[0])
    elif kind == "image":
        values = rng.randint(-32, 32, shape) / 32.0
    else:
        raise ValueError("unknown recipe %r" % recipe)
    return values.astype(np.float32)


def legacy_dims(blob, shape):
    """Store a blob's shape as the legacy (num, channels, height, width), left-padded with
    ones: an InnerProduct weight (O, K) becomes 1 x 1 x O x K."""
    blob.ClearField("shape")
    blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - len(shape)) + tuple(shape)


def save_v1_caffemodel(spec, net, path):
    """The V1 format old Model Zoo files use: ``layers`` with enum types, every parameter blob
    with the legacy 4-D sizes (num, channels, height, width) left-padded with ones (an
    InnerProduct weight (O, K) is stored 1 x 1 x O x K)."""
    model = caffe_pb2.NetParameter()
    text_format.Merge(spec["prototxt"], model)
    del model.input[:]
    del model.input_dim[:]
    del model.input_shape[:]
    for layer in model.layers:
        for blob in net.params[layer.name] if layer.name in net.params else []:
            stored = layer.blobs.add()
            legacy_dims(stored, blob.data.shape)
            stored.data.extend(blob.data.ravel().tolist())
    if spec["training_layers"]:
        add_v1_training_layers(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def add_v1_training_layers(model):
    """A training net's data layer, a layer absent from the deploy net (with a blob) and its
    loss: Caffe ignores layers of the .caffemodel whose names the deploy net lacks."""
    data = caffe_pb2.V1LayerParameter(name="train_data", type=caffe_pb2.V1LayerParameter.DATA)
    data.top.extend(["data", "label"])
    model.layers.insert(0, data)
    extra = model.layers.add(name="fc_train_only", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    extra.bottom.append("data")
    extra.top.append("fc_train_only")
    blob = extra.blobs.add(num=1, channels=1, height=2, width=3)
    blob.data.extend([1, 2, 3, 4, 5, 6])
    loss = model.layers.add(name="loss", type=caffe_pb2.V1LayerParameter.SOFTMAX_LOSS)
    loss.bottom.extend(["fc_train_only", "label"])
    loss.top.append("loss")


def rewrite_caffemodel(path, change):
    model = caffe_pb2.NetParameter()
    with open(path, "rb") as f:
        model.ParseFromString(f.read())
    change(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def to_legacy_dims(model):
    for layer in model.layer:
        for blob in layer.blobs:
            legacy_dims(blob, list(blob.shape.dim))


def add_training_layers(model):
    data = caffe_pb2.LayerParameter(name="train_data", type="Data")
    data.top.extend(["data", "label"])
    model.layer.insert(0, data)
    extra = model.layer.add(name="fc_train_only", type="InnerProduct")
    extra.bottom.append("data")
    extra.top.append("fc_train_only")
    blob = extra.blobs.add()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([1, 2, 3, 4, 5, 6])
    loss = model.layer.add(name="loss", type="SoftmaxWithLoss")
    loss.bottom.extend(["fc_train_only", "label"])
    loss.top.append("loss")


def build_and_save(spec, prototxt_path, caffemodel_path):
    caffe.set_random_seed(spec["seed"])
    net = caffe.Net(prototxt_path, caffe.TEST)
    for layer, index, recipe in spec["params"]:
        blob = net.params[layer][index]
        blob.data[...] = draw(random_state(spec["name"], layer, str(index)), recipe,
                              blob.data.shape)
    if spec["v1_caffemodel"]:
        save_v1_caffemodel(spec, net, caffemodel_path)
    else:
        net.save(caffemodel_path)
        if spec["legacy_blob_dims"]:
            rewrite_caffemodel(caffemodel_path, to_legacy_dims)
        if spec["training_layers"]:
            rewrite_caffemodel(caffemodel_path, add_training_layers)
    return {layer: [blob.data.copy() for blob in blobs] for layer, blobs in net.params.items()}


def run_double(spec, job_dir, prototxt_path, caffemodel_path, inputs, blob_names, param_blobs):
    """Net<double>'s blobs and parameters after the same forward (caffe_double.cpp)."""
    out_dir = os.path.join(job_dir, spec["name"] + "_double")
    os.mkdir(out_dir)
    args = [os.path.join(job_dir, DOUBLE_BINARY), prototxt_path, caffemodel_path, out_dir]
    for i, (name, x) in enumerate(inputs):
        path = os.path.join(out_dir, "input%d.f64" % i)
        x.astype("<f8").tofile(path)
        args += [name, path]
    subprocess.run(args, check=True)
    blobs = read_double_listing(out_dir, "blob")
    if [name for name, _ in blobs] != blob_names:
        raise RuntimeError("%s: Net<double> blobs %s differ from pycaffe's %s"
                           % (spec["name"], [n for n, _ in blobs], blob_names))
    params = [values for _, values in read_double_listing(out_dir, "param")]
    if [p.shape for p in params] != [p.shape for p in param_blobs]:
        raise RuntimeError("%s: Net<double> parameters differ in shape from pycaffe's"
                           % spec["name"])
    return [values for _, values in blobs], params


def read_double_listing(out_dir, prefix):
    """[(name or None, values)] from caffe_double's <prefix>s.txt and <prefix><i>.f64."""
    entries = []
    with open(os.path.join(out_dir, prefix + "s.txt")) as listing:
        for line in listing:
            fields = line.rstrip("\n").split(" ")
            index, num_axes = int(fields[0]), int(fields[1])
            shape = tuple(int(d) for d in fields[2:2 + num_axes])
            name = " ".join(fields[2 + num_axes:]) or None
            values = np.fromfile(os.path.join(out_dir, "%s%d.f64" % (prefix, index)), dtype="<f8")
            entries.append((name, values.reshape(shape)))
    return entries


def run_net(spec, job_dir):
    name = spec["name"]
    prototxt_path = os.path.join(job_dir, name + ".prototxt")
    caffemodel_path = os.path.join(job_dir, name + ".caffemodel")
    with open(prototxt_path, "w") as f:
        f.write(spec["prototxt"])
    saved = build_and_save(spec, prototxt_path, caffemodel_path)

    net = caffe.Net(prototxt_path, caffemodel_path, caffe.TEST)
    for layer, blobs in net.params.items():
        for index, blob in enumerate(blobs):
            if not np.array_equal(blob.data, saved[layer][index]):
                raise RuntimeError("%s: %s[%d] loaded from the .caffemodel differs from the "
                                   "one saved" % (name, layer, index))
    inputs = []
    for input_name in net.inputs:
        x = draw(random_state(name, "input", input_name), spec["input_kinds"].get(
            input_name, "image"), net.blobs[input_name].data.shape)
        net.blobs[input_name].data[...] = x
        inputs.append((input_name, x))
    net.forward()

    blob_names = list(net.blobs.keys())
    arrays = {"input/%d" % i: x for i, (_, x) in enumerate(inputs)}
    for i, blob in enumerate(net.blobs.values()):
        arrays["f32/%d" % i] = blob.data.copy()
    for i, blobs in enumerate(net.params.values()):
        for j, blob in enumerate(blobs):
            arrays["param/%d/%d" % (i, j)] = blob.data.copy()
    param_keys = ["%d/%d" % (i, j) for i, blobs in enumerate(net.params.values())
                  for j in range(len(blobs))]
    blobs64, params64 = run_double(spec, job_dir, prototxt_path, caffemodel_path, inputs,
                                   blob_names, [arrays["param/" + key] for key in param_keys])
    for i, values in enumerate(blobs64):
        arrays["f64/%d" % i] = values
    for key, values in zip(param_keys, params64):
        arrays["param64/" + key] = values
    meta = {
        "inputs": list(net.inputs),
        "outputs": list(net.outputs),
        "layers": [[layer_name, layer.type]
                   for layer_name, layer in zip(net._layer_names, net.layers)],
        "blobs": [[blob_name, list(blob.data.shape)] for blob_name, blob in net.blobs.items()],
        "params": [[layer, [list(blob.data.shape) for blob in blobs]]
                   for layer, blobs in net.params.items()],
        "top_names": [[layer, list(tops)] for layer, tops in net.top_names.items()],
        "bottom_names": [[layer, list(bottoms)] for layer, bottoms in net.bottom_names.items()],
    }
    np.savez(os.path.join(job_dir, name + ".npz"), **arrays)
    with open(os.path.join(job_dir, name + ".json"), "w") as f:
        json.dump(meta, f)


def build_double_binary(job_dir):
    """Compile caffe_double.cpp against libcaffe. Debian's caffe.pb.h was made by another protoc
    than bullseye's protobuf headers accept, so the header is regenerated from the schema
    pycaffe carries (only the header: the message code is libcaffe's)."""
    descriptors = descriptor_pb2.FileDescriptorSet()
    descriptors.file.add().MergeFromString(caffe_pb2.DESCRIPTOR.serialized_pb)
    schema_path = os.path.join(job_dir, "caffe.desc")
    with open(schema_path, "wb") as f:
        f.write(descriptors.SerializeToString())
    include = os.path.join(job_dir, "include")
    os.mkdir(include)
    subprocess.run(["protoc", "--descriptor_set_in=" + schema_path, "--cpp_out=" + include,
                    descriptors.file[0].name], check=True)
    subprocess.run(["g++", "-O1", "-DCPU_ONLY", "-I" + include, "-o",
                    os.path.join(job_dir, DOUBLE_BINARY), os.path.join(job_dir, "caffe_double.cpp"),
                    "-lcaffe", "-lglog", "-lprotobuf"], check=True)


def main(job_dir):
    caffe.set_mode_cpu()
    with open(os.path.join(job_dir, "job.json")) as f:
        specs = json.load(f)
    build_double_binary(job_dir)
    for spec in specs:
        run_net(spec, job_dir)


if __name__ == "__main__":
    main(sys.argv[1])
