# Over 400 lines on purpose: most of it is MESSAGES, one declarative table of caffe.proto.
"""The subset of Caffe's ``caffe.proto`` (package ``caffe``, proto2) that deploy nets use.

Written for fastconv from the file format's facts: message names, field names, numbers, types
and defaults are Caffe 1.0's (they *are* the format; a wrong number silently misreads weights).
The descriptors are built at run time with protobuf's descriptor_pool, so nothing is compiled
at install time and protobuf stays an optional dependency: it is imported on the first call to
:func:`messages`, which says which extra to install when it is missing.

Kept: every field of the messages for the layers fastconv runs, plus the fields that deploy and
train_val prototxts commonly carry around them (param, fillers, include/exclude rules, engines,
data/loss/accuracy parameters of layers the TEST phase filters out), so that such files parse.
"""
from __future__ import annotations

# Field labels and the scalar types used below.
OPT, REP = "optional", "repeated"
_SCALARS = ("double", "float", "int64", "uint64", "int32", "uint32", "bool", "string", "bytes")

_ENGINE = {"Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]}

# Every message: (fields, nested enums). A field is (name, number, type, label, default) and
# ``"packed"`` as a sixth item for repeated numbers Caffe declares packed. A type that is not a
# scalar names a message, a top-level enum (Phase) or an enum nested in the same message.
MESSAGES = {
    "BlobShape": ([("dim", 1, "int64", REP, None, "packed")], {}),
    "BlobProto": ([
        ("shape", 7, "BlobShape", OPT, None),
        ("data", 5, "float", REP, None, "packed"),
        ("diff", 6, "float", REP, None, "packed"),
        ("double_data", 8, "double", REP, None, "packed"),
        ("double_diff", 9, "double", REP, None, "packed"),
        ("num", 1, "int32", OPT, "0"),
        ("channels", 2, "int32", OPT, "0"),
        ("height", 3, "int32", OPT, "0"),
        ("width", 4, "int32", OPT, "0"),
    ], {}),
    "FillerParameter": ([
        ("type", 1, "string", OPT, "constant"),
        ("value", 2, "float", OPT, "0"),
        ("min", 3, "float", OPT, "0"),
        ("max", 4, "float", OPT, "1"),
        ("mean", 5, "float", OPT, "0"),
        ("std", 6, "float", OPT, "1"),
        ("sparse", 7, "int32", OPT, "-1"),
        ("variance_norm", 8, "VarianceNorm", OPT, "FAN_IN"),
    ], {"VarianceNorm": [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)]}),
    "NetParameter": ([
        ("name", 1, "string", OPT, None),
        ("input", 3, "string", REP, None),
        ("input_shape", 8, "BlobShape", REP, None),
        ("input_dim", 4, "int32", REP, None),
        ("force_backward", 5, "bool", OPT, "false"),
        ("state", 6, "NetState", OPT, None),
        ("debug_info", 7, "bool", OPT, "false"),
        ("layer", 100, "LayerParameter", REP, None),
        ("layers", 2, "V1LayerParameter", REP, None),
    ], {}),
    "NetState": ([
        ("phase", 1, "Phase", OPT, "TEST"),
        ("level", 2, "int32", OPT, "0"),
        ("stage", 3, "string", REP, None),
    ], {}),
    "NetStateRule": ([
        ("phase", 1, "Phase", OPT, None),
        ("min_level", 2, "int32", OPT, None),
        ("max_level", 3, "int32", OPT, None),
        ("stage", 4, "string", REP, None),
        ("not_stage", 5, "string", REP, None),
    ], {}),
    "ParamSpec": ([
        ("name", 1, "string", OPT, None),
        ("share_mode", 2, "DimCheckMode", OPT, None),
        ("lr_mult", 3, "float", OPT, "1"),
        ("decay_mult", 4, "float", OPT, "1"),
    ], {"DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)]}),
    "LayerParameter": ([
        ("name", 1, "string", OPT, None),
        ("type", 2, "string", OPT, None),
        ("bottom", 3, "string", REP, None),
        ("top", 4, "string", REP, None),
        ("phase", 10, "Phase", OPT, None),
        ("loss_weight", 5, "float", REP, None),
        ("param", 6, "ParamSpec", REP, None),
        ("blobs", 7, "BlobProto", REP, None),
        ("propagate_down", 11, "bool", REP, None),
        ("include", 8, "NetStateRule", REP, None),
        ("exclude", 9, "NetStateRule", REP, None),
        ("transform_param", 100, "TransformationParameter", OPT, None),
        ("loss_param", 101, "LossParameter", OPT, None),
        ("accuracy_param", 102, "AccuracyParameter", OPT, None),
        ("argmax_param", 103, "ArgMaxParameter", OPT, None),
        ("batch_norm_param", 139, "BatchNormParameter", OPT, None),
        ("bias_param", 141, "BiasParameter", OPT, None),
        ("concat_param", 104, "ConcatParameter", OPT, None),
        ("convolution_param", 106, "ConvolutionParameter", OPT, None),
        ("crop_param", 144, "CropParameter", OPT, None),
        ("data_param", 107, "DataParameter", OPT, None),
        ("dropout_param", 108, "DropoutParameter", OPT, None),
        ("dummy_data_param", 109, "DummyDataParameter", OPT, None),
        ("eltwise_param", 110, "EltwiseParameter", OPT, None),
        ("elu_param", 140, "ELUParameter", OPT, None),
        ("exp_param", 111, "ExpParameter", OPT, None),
        ("flatten_param", 135, "FlattenParameter", OPT, None),
        ("hdf5_data_param", 112, "HDF5DataParameter", OPT, None),
        ("image_data_param", 115, "ImageDataParameter", OPT, None),
        ("inner_product_param", 117, "InnerProductParameter", OPT, None),
        ("input_param", 143, "InputParameter", OPT, None),
        ("log_param", 134, "LogParameter", OPT, None),
        ("lrn_param", 118, "LRNParameter", OPT, None),
        ("memory_data_param", 119, "MemoryDataParameter", OPT, None),
        ("pooling_param", 121, "PoolingParameter", OPT, None),
        ("power_param", 122, "PowerParameter", OPT, None),
        ("prelu_param", 131, "PReLUParameter", OPT, None),
        ("python_param", 130, "PythonParameter", OPT, None),
        ("relu_param", 123, "ReLUParameter", OPT, None),
        ("reshape_param", 133, "ReshapeParameter", OPT, None),
        ("scale_param", 142, "ScaleParameter", OPT, None),
        ("sigmoid_param", 124, "SigmoidParameter", OPT, None),
        ("softmax_param", 125, "SoftmaxParameter", OPT, None),
        ("slice_param", 126, "SliceParameter", OPT, None),
        ("tanh_param", 127, "TanHParameter", OPT, None),
        ("threshold_param", 128, "ThresholdParameter", OPT, None),
    ], {}),
    "TransformationParameter": ([
        ("scale", 1, "float", OPT, "1"),
        ("mirror", 2, "bool", OPT, "false"),
        ("crop_size", 3, "uint32", OPT, "0"),
        ("mean_file", 4, "string", OPT, None),
        ("mean_value", 5, "float", REP, None),
        ("force_color", 6, "bool", OPT, "false"),
        ("force_gray", 7, "bool", OPT, "false"),
    ], {}),
    "LossParameter": ([
        ("ignore_label", 1, "int32", OPT, None),
        ("normalization", 3, "NormalizationMode", OPT, "VALID"),
        ("normalize", 2, "bool", OPT, None),
    ], {"NormalizationMode": [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)]}),
    "AccuracyParameter": ([
        ("top_k", 1, "uint32", OPT, "1"),
        ("axis", 2, "int32", OPT, "1"),
        ("ignore_label", 3, "int32", OPT, None),
    ], {}),
    "ArgMaxParameter": ([
        ("out_max_val", 1, "bool", OPT, "false"),
        ("top_k", 2, "uint32", OPT, "1"),
        ("axis", 3, "int32", OPT, None),
    ], {}),
    "ConcatParameter": ([
        ("axis", 2, "int32", OPT, "1"),
        ("concat_dim", 1, "uint32", OPT, "1"),
    ], {}),
    "BatchNormParameter": ([
        ("use_global_stats", 1, "bool", OPT, None),
        ("moving_average_fraction", 2, "float", OPT, "0.999"),
        ("eps", 3, "float", OPT, "1e-5"),
    ], {}),
    "BiasParameter": ([
        ("axis", 1, "int32", OPT, "1"),
        ("num_axes", 2, "int32", OPT, "1"),
        ("filler", 3, "FillerParameter", OPT, None),
    ], {}),
    "ConvolutionParameter": ([
        ("num_output", 1, "uint32", OPT, None),
        ("bias_term", 2, "bool", OPT, "true"),
        ("pad", 3, "uint32", REP, None),
        ("kernel_size", 4, "uint32", REP, None),
        ("stride", 6, "uint32", REP, None),
        ("dilation", 18, "uint32", REP, None),
        ("pad_h", 9, "uint32", OPT, "0"),
        ("pad_w", 10, "uint32", OPT, "0"),
        ("kernel_h", 11, "uint32", OPT, None),
        ("kernel_w", 12, "uint32", OPT, None),
        ("stride_h", 13, "uint32", OPT, None),
        ("stride_w", 14, "uint32", OPT, None),
        ("group", 5, "uint32", OPT, "1"),
        ("weight_filler", 7, "FillerParameter", OPT, None),
        ("bias_filler", 8, "FillerParameter", OPT, None),
        ("engine", 15, "Engine", OPT, "DEFAULT"),
        ("axis", 16, "int32", OPT, "1"),
        ("force_nd_im2col", 17, "bool", OPT, "false"),
    ], _ENGINE),
    "CropParameter": ([
        ("axis", 1, "int32", OPT, "2"),
        ("offset", 2, "uint32", REP, None),
    ], {}),
    "DataParameter": ([
        ("source", 1, "string", OPT, None),
        ("batch_size", 4, "uint32", OPT, None),
        ("rand_skip", 7, "uint32", OPT, "0"),
        ("backend", 8, "DB", OPT, "LEVELDB"),
        ("scale", 2, "float", OPT, "1"),
        ("mean_file", 3, "string", OPT, None),
        ("crop_size", 5, "uint32", OPT, "0"),
        ("mirror", 6, "bool", OPT, "false"),
        ("force_encoded_color", 9, "bool", OPT, "false"),
        ("prefetch", 10, "uint32", OPT, "4"),
    ], {"DB": [("LEVELDB", 0), ("LMDB", 1)]}),
    "DropoutParameter": ([("dropout_ratio", 1, "float", OPT, "0.5")], {}),
    "DummyDataParameter": ([
        ("data_filler", 1, "FillerParameter", REP, None),
        ("shape", 6, "BlobShape", REP, None),
        ("num", 2, "uint32", REP, None),
        ("channels", 3, "uint32", REP, None),
        ("height", 4, "uint32", REP, None),
        ("width", 5, "uint32", REP, None),
    ], {}),
    "EltwiseParameter": ([
        ("operation", 1, "EltwiseOp", OPT, "SUM"),
        ("coeff", 2, "float", REP, None),
        ("stable_prod_grad", 3, "bool", OPT, "true"),
    ], {"EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)]}),
    "ELUParameter": ([("alpha", 1, "float", OPT, "1")], {}),
    "ExpParameter": ([
        ("base", 1, "float", OPT, "-1"),
        ("scale", 2, "float", OPT, "1"),
        ("shift", 3, "float", OPT, "0"),
    ], {}),
    "FlattenParameter": ([
        ("axis", 1, "int32", OPT, "1"),
        ("end_axis", 2, "int32", OPT, "-1"),
    ], {}),
    "HDF5DataParameter": ([
        ("source", 1, "string", OPT, None),
        ("batch_size", 2, "uint32", OPT, None),
        ("shuffle", 3, "bool", OPT, "false"),
    ], {}),
    "ImageDataParameter": ([
        ("source", 1, "string", OPT, None),
        ("batch_size", 4, "uint32", OPT, "1"),
        ("rand_skip", 7, "uint32", OPT, "0"),
        ("shuffle", 8, "bool", OPT, "false"),
        ("new_height", 9, "uint32", OPT, "0"),
        ("new_width", 10, "uint32", OPT, "0"),
        ("is_color", 11, "bool", OPT, "true"),
        ("scale", 2, "float", OPT, "1"),
        ("mean_file", 3, "string", OPT, None),
        ("crop_size", 5, "uint32", OPT, "0"),
        ("mirror", 6, "bool", OPT, "false"),
        ("root_folder", 12, "string", OPT, ""),
    ], {}),
    "InnerProductParameter": ([
        ("num_output", 1, "uint32", OPT, None),
        ("bias_term", 2, "bool", OPT, "true"),
        ("weight_filler", 3, "FillerParameter", OPT, None),
        ("bias_filler", 4, "FillerParameter", OPT, None),
        ("axis", 5, "int32", OPT, "1"),
        ("transpose", 6, "bool", OPT, "false"),
    ], {}),
    "InputParameter": ([("shape", 1, "BlobShape", REP, None)], {}),
    "LogParameter": ([
        ("base", 1, "float", OPT, "-1"),
        ("scale", 2, "float", OPT, "1"),
        ("shift", 3, "float", OPT, "0"),
    ], {}),
    "LRNParameter": ([
        ("local_size", 1, "uint32", OPT, "5"),
        ("alpha", 2, "float", OPT, "1"),
        ("beta", 3, "float", OPT, "0.75"),
        ("norm_region", 4, "NormRegion", OPT, "ACROSS_CHANNELS"),
        ("k", 5, "float", OPT, "1"),
        ("engine", 6, "Engine", OPT, "DEFAULT"),
    ], {"NormRegion": [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)], **_ENGINE}),
    "MemoryDataParameter": ([
        ("batch_size", 1, "uint32", OPT, None),
        ("channels", 2, "uint32", OPT, None),
        ("height", 3, "uint32", OPT, None),
        ("width", 4, "uint32", OPT, None),
    ], {}),
    "PoolingParameter": ([
        ("pool", 1, "PoolMethod", OPT, "MAX"),
        ("pad", 4, "uint32", OPT, "0"),
        ("pad_h", 9, "uint32", OPT, "0"),
        ("pad_w", 10, "uint32", OPT, "0"),
        ("kernel_size", 2, "uint32", OPT, None),
        ("kernel_h", 5, "uint32", OPT, None),
        ("kernel_w", 6, "uint32", OPT, None),
        ("stride", 3, "uint32", OPT, "1"),
        ("stride_h", 7, "uint32", OPT, None),
        ("stride_w", 8, "uint32", OPT, None),
        ("engine", 11, "Engine", OPT, "DEFAULT"),
        ("global_pooling", 12, "bool", OPT, "false"),
        # Added to Caffe after 1.0; parsed so that newer files load, FLOOR is refused.
        ("round_mode", 13, "RoundMode", OPT, "CEIL"),
    ], {"PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)],
        "RoundMode": [("CEIL", 0), ("FLOOR", 1)], **_ENGINE}),
    "PowerParameter": ([
        ("power", 1, "float", OPT, "1"),
        ("scale", 2, "float", OPT, "1"),
        ("shift", 3, "float", OPT, "0"),
    ], {}),
    "PReLUParameter": ([
        ("filler", 1, "FillerParameter", OPT, None),
        ("channel_shared", 2, "bool", OPT, "false"),
    ], {}),
    "PythonParameter": ([
        ("module", 1, "string", OPT, None),
        ("layer", 2, "string", OPT, None),
        ("param_str", 3, "string", OPT, ""),
        ("share_in_parallel", 4, "bool", OPT, "false"),
    ], {}),
    "ReLUParameter": ([
        ("negative_slope", 1, "float", OPT, "0"),
        ("engine", 2, "Engine", OPT, "DEFAULT"),
    ], _ENGINE),
    "ReshapeParameter": ([
        ("shape", 1, "BlobShape", OPT, None),
        ("axis", 2, "int32", OPT, "0"),
        ("num_axes", 3, "int32", OPT, "-1"),
    ], {}),
    "ScaleParameter": ([
        ("axis", 1, "int32", OPT, "1"),
        ("num_axes", 2, "int32", OPT, "1"),
        ("filler", 3, "FillerParameter", OPT, None),
        ("bias_term", 4, "bool", OPT, "false"),
        ("bias_filler", 5, "FillerParameter", OPT, None),
    ], {}),
    "SigmoidParameter": ([("engine", 1, "Engine", OPT, "DEFAULT")], _ENGINE),
    "SoftmaxParameter": ([
        ("engine", 1, "Engine", OPT, "DEFAULT"),
        ("axis", 2, "int32", OPT, "1"),
    ], _ENGINE),
    "SliceParameter": ([
        ("axis", 3, "int32", OPT, "1"),
        ("slice_point", 2, "uint32", REP, None),
        ("slice_dim", 1, "uint32", OPT, "1"),
    ], {}),
    "TanHParameter": ([("engine", 1, "Engine", OPT, "DEFAULT")], _ENGINE),
    "ThresholdParameter": ([("threshold", 1, "float", OPT, "0")], {}),
    # The old format: only the parameters of the layer types it had.
    "V1LayerParameter": ([
        ("bottom", 2, "string", REP, None),
        ("top", 3, "string", REP, None),
        ("name", 4, "string", OPT, None),
        ("include", 32, "NetStateRule", REP, None),
        ("exclude", 33, "NetStateRule", REP, None),
        ("type", 5, "LayerType", OPT, None),
        ("blobs", 6, "BlobProto", REP, None),
        ("param", 1001, "string", REP, None),
        ("blob_share_mode", 1002, "DimCheckMode", REP, None),
        ("blobs_lr", 7, "float", REP, None),
        ("weight_decay", 8, "float", REP, None),
        ("loss_weight", 35, "float", REP, None),
        ("accuracy_param", 27, "AccuracyParameter", OPT, None),
        ("argmax_param", 23, "ArgMaxParameter", OPT, None),
        ("concat_param", 9, "ConcatParameter", OPT, None),
        ("convolution_param", 10, "ConvolutionParameter", OPT, None),
        ("data_param", 11, "DataParameter", OPT, None),
        ("dropout_param", 12, "DropoutParameter", OPT, None),
        ("dummy_data_param", 26, "DummyDataParameter", OPT, None),
        ("eltwise_param", 24, "EltwiseParameter", OPT, None),
        ("exp_param", 41, "ExpParameter", OPT, None),
        ("hdf5_data_param", 13, "HDF5DataParameter", OPT, None),
        ("image_data_param", 15, "ImageDataParameter", OPT, None),
        ("inner_product_param", 17, "InnerProductParameter", OPT, None),
        ("lrn_param", 18, "LRNParameter", OPT, None),
        ("memory_data_param", 22, "MemoryDataParameter", OPT, None),
        ("pooling_param", 19, "PoolingParameter", OPT, None),
        ("power_param", 21, "PowerParameter", OPT, None),
        ("relu_param", 30, "ReLUParameter", OPT, None),
        ("sigmoid_param", 38, "SigmoidParameter", OPT, None),
        ("softmax_param", 39, "SoftmaxParameter", OPT, None),
        ("slice_param", 31, "SliceParameter", OPT, None),
        ("tanh_param", 37, "TanHParameter", OPT, None),
        ("threshold_param", 25, "ThresholdParameter", OPT, None),
        ("transform_param", 36, "TransformationParameter", OPT, None),
        ("loss_param", 42, "LossParameter", OPT, None),
        ("layer", 1, "V0LayerParameter", OPT, None),
    ], {"LayerType": [
        ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2),
        ("CONCAT", 3), ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5),
        ("DECONVOLUTION", 39), ("DROPOUT", 6), ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7),
        ("ELTWISE", 25), ("EXP", 38), ("FLATTEN", 8), ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10),
        ("HINGE_LOSS", 28), ("IM2COL", 11), ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13),
        ("INNER_PRODUCT", 14), ("LRN", 15), ("MEMORY_DATA", 29),
        ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34), ("POOLING", 17), ("POWER", 26),
        ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27), ("SILENCE", 36),
        ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33), ("TANH", 23),
        ("WINDOW_DATA", 24), ("THRESHOLD", 31)],
        "DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)]}),
    # The format before V1 (2014): recognised only to refuse it with a clear message.
    "V0LayerParameter": ([
        ("name", 1, "string", OPT, None),
        ("type", 2, "string", OPT, None),
    ], {}),
}

# Caffe's Phase enum: the values pycaffe exposes as caffe.TRAIN and caffe.TEST.
TRAIN, TEST = 0, 1

TOP_LEVEL_ENUMS = {"Phase": [("TRAIN", TRAIN), ("TEST", TEST)]}

# The V1 enum's names for layer types -> today's type strings (Caffe's UpgradeV1LayerType).
V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

INSTALL_HINT = "reading Caffe files needs protobuf: pip install fastconv[caffe]"

_CLASSES = {}


def messages():
    """Message classes by name (``messages()["NetParameter"]()``), built on first use.

    Raises ImportError naming the ``caffe`` extra when protobuf is not installed.
    """
    if not _CLASSES:
        try:
            from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        except ImportError as error:
            raise ImportError(INSTALL_HINT) from error
        pool = descriptor_pool.DescriptorPool()
        pool.Add(_file_descriptor(descriptor_pb2))
        # GetMessageClass arrived in protobuf 4.x; 3.20 has only the factory's GetPrototype.
        message_class = getattr(message_factory, "GetMessageClass", None) or \
            message_factory.MessageFactory(pool).GetPrototype
        for name in MESSAGES:
            _CLASSES[name] = message_class(pool.FindMessageTypeByName("caffe." + name))
    return _CLASSES


def _file_descriptor(descriptor_pb2):
    field_type = descriptor_pb2.FieldDescriptorProto
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="fastconv_caffe_subset.proto", package="caffe", syntax="proto2")
    for enum_name, values in TOP_LEVEL_ENUMS.items():
        _add_enum(file_proto.enum_type.add(), enum_name, values)
    for message_name, (fields, enums) in MESSAGES.items():
        message = file_proto.message_type.add(name=message_name)
        for enum_name, values in enums.items():
            _add_enum(message.enum_type.add(), enum_name, values)
        for name, number, type_name, label, default, *options in fields:
            field = message.field.add(name=name, number=number, label=(
                field_type.LABEL_REPEATED if label == REP else field_type.LABEL_OPTIONAL))
            if type_name in _SCALARS:
                field.type = getattr(field_type, "TYPE_" + type_name.upper())
            elif type_name in enums:
                field.type = field_type.TYPE_ENUM
                field.type_name = f".caffe.{message_name}.{type_name}"
            elif type_name in TOP_LEVEL_ENUMS:
                field.type = field_type.TYPE_ENUM
                field.type_name = ".caffe." + type_name
            else:
                field.type = field_type.TYPE_MESSAGE
                field.type_name = ".caffe." + type_name
            if default is not None:
                field.default_value = default
            if "packed" in options:
                field.options.packed = True
    return file_proto


def _add_enum(enum, name, values):
    enum.name = name
    for value_name, number in values:
        enum.value.add(name=value_name, number=number)
