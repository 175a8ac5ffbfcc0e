# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The Cython boundary: arrays in, one ``nogil`` call into the C core.

Every argument has been checked, made C-contiguous and native-endian in Python
(``fastconv._params``, ``fastconv._engine``); the C core trusts it. The run-time configuration
(engine, threads) is read from C here too.
"""

cimport numpy as cnp
from cpython.buffer cimport PyBuffer_FillInfo
from libc.stdlib cimport free, malloc
import numpy as np

cnp.import_array()

cdef extern from "csrc/conv.h" nogil:
    enum: FC_SPATIAL_AXES
    ctypedef struct fc_conv_geometry:
        Py_ssize_t batch
        Py_ssize_t in_channels
        Py_ssize_t out_channels
        Py_ssize_t group
        Py_ssize_t in_size[3]
        Py_ssize_t out_size[3]
        Py_ssize_t kernel[3]
        Py_ssize_t stride[3]
        Py_ssize_t pad[3]
        Py_ssize_t dilation[3]
        int channels_last
        int columns_by_phase

    int fc_conv_forward_f32(const fc_conv_geometry *geom, const float *x, const float *w,
                            const float *bias, float *y)
    int fc_conv_forward_f64(const fc_conv_geometry *geom, const double *x, const double *w,
                            const double *bias, double *y)
    int fc_conv_backward_f32(const fc_conv_geometry *geom, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *db)
    int fc_conv_backward_f64(const fc_conv_geometry *geom, const double *x, const double *w,
                             const double *dy, double *dx, double *dw, double *db)

cdef extern from "csrc/gemm.h" nogil:
    int fc_gemm_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const float *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                    const float *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                    int beta, float *c, Py_ssize_t rs_c, Py_ssize_t cs_c)
    int fc_gemm_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const double *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                    const double *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                    int beta, double *c, Py_ssize_t rs_c, Py_ssize_t cs_c)
    void fc_inner_product_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *x,
                              const float *w, float *y)
    void fc_inner_product_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *x,
                              const double *w, double *y)

cdef extern from "csrc/elementwise.h" nogil:
    void fc_libm_f32(int function, Py_ssize_t count, const float *x, float exponent, float *y)
    void fc_libm_f64(int function, Py_ssize_t count, const double *x, double exponent,
                     double *y)
    void fc_relu_f32(Py_ssize_t count, const float *x, float negative_slope, float *y)
    void fc_relu_f64(Py_ssize_t count, const double *x, double negative_slope, double *y)
    void fc_channel_normalize_f32(Py_ssize_t outer, Py_ssize_t channels, Py_ssize_t inner,
                                  const float *x, const float *mean, const float *deviation,
                                  float *y)
    void fc_channel_normalize_f64(Py_ssize_t outer, Py_ssize_t channels, Py_ssize_t inner,
                                  const double *x, const double *mean, const double *deviation,
                                  double *y)
    void fc_channel_scale_f32(Py_ssize_t outer, Py_ssize_t channels, Py_ssize_t inner,
                              const float *x, const float *scale, const float *bias, float *y)
    void fc_channel_scale_f64(Py_ssize_t outer, Py_ssize_t channels, Py_ssize_t inner,
                              const double *x, const double *scale, const double *bias,
                              double *y)
    void fc_eltwise_sum_f32(Py_ssize_t count, Py_ssize_t inputs, const float *const *x,
                            const float *coeff, float *y)
    void fc_eltwise_sum_f64(Py_ssize_t count, Py_ssize_t inputs, const double *const *x,
                            const double *coeff, double *y)
    void fc_lrn_window_f32(Py_ssize_t batch, Py_ssize_t channels, Py_ssize_t plane,
                           Py_ssize_t size, float alpha_over_size, float k, const float *x,
                           float *result, int three_quarter_power)
    void fc_lrn_window_f64(Py_ssize_t batch, Py_ssize_t channels, Py_ssize_t plane,
                           Py_ssize_t size, double alpha_over_size, double k, const double *x,
                           double *result, int three_quarter_power)

cdef extern from "csrc/engine.h" nogil:
    enum: FC_ENGINE_COUNT
    int fc_init()
    int fc_engine_available(int id)
    const char *fc_engine_name(int id)
    int fc_active_engine()
    int fc_set_engine(int id)
    int fc_get_num_threads()
    void fc_set_num_threads(int threads)
    int fc_engine_blocking(int id, int element_bytes, Py_ssize_t sizes[5])
    void fc_cache_sizes(Py_ssize_t bytes[3])
    int fc_prefer_direct_tile()
    void *fc_aligned_alloc(size_t bytes)
    void fc_aligned_free(void *memory)

ctypedef fused floating:
    float
    double


cdef fc_conv_geometry _geometry_from(object geom, bint channels_last=False):
    """The one C geometry of a checked 2-D geometry (``Conv2DGeometry``: kernel_h, ...) or N-D
    one (``ConvNDGeometry``: kernel tuple, ...). A rank below 3 gets leading axes of size 1,
    kernel 1, stride 1, pad 0, dilation 1 (see conv.h), so every rank runs the same code."""
    cdef fc_conv_geometry g
    cdef int lead, axis
    if hasattr(geom, "kernel_h"):
        sizes = ((geom.in_h, geom.in_w), (geom.out_h, geom.out_w),
                 (geom.kernel_h, geom.kernel_w), (geom.stride_h, geom.stride_w),
                 (geom.pad_top, geom.pad_left), (geom.dilation_h, geom.dilation_w))
    else:
        sizes = (geom.in_size, geom.out_size, geom.kernel, geom.stride, geom.pad, geom.dilation)
    lead = FC_SPATIAL_AXES - len(sizes[0])
    g.batch = geom.batch
    g.in_channels = geom.in_channels
    g.out_channels = geom.out_channels
    g.group = geom.group
    g.channels_last = channels_last
    g.columns_by_phase = 0
    for axis in range(FC_SPATIAL_AXES):
        if axis < lead:
            g.in_size[axis] = g.out_size[axis] = g.kernel[axis] = 1
            g.stride[axis] = g.dilation[axis] = 1
            g.pad[axis] = 0
        else:
            g.in_size[axis] = sizes[0][axis - lead]
            g.out_size[axis] = sizes[1][axis - lead]
            g.kernel[axis] = sizes[2][axis - lead]
            g.stride[axis] = sizes[3][axis - lead]
            g.pad[axis] = sizes[4][axis - lead]
            g.dilation[axis] = sizes[5][axis - lead]
    return g


cdef class ConvPlan:
    """A checked geometry and dtype, converted to C once: the forward convolution's boundary.

    ``run`` computes y = conv(x, w) + b and trusts its arrays completely (C-contiguous,
    aligned, native byte order, the plan's dtype and shapes; b may be None): the caller has
    made sure of all of that. With ``channels_last`` x and y are (N, *spatial, C) (Keras's
    layout), read and written in place, and w is Keras's (*kernel, C/group, O);
    ``output_shape`` is then in that layout too. Immutable, so one plan serves concurrent
    Python threads.
    """
    cdef fc_conv_geometry g
    cdef bint is_double
    cdef readonly tuple output_shape

    def __init__(self, object geom, object dtype, bint channels_last=False):
        self.g = _geometry_from(geom, channels_last)
        self.is_double = np.dtype(dtype) == np.float64
        shape = tuple(geom.output_shape)
        self.output_shape = (shape[0], *shape[2:], shape[1]) if channels_last else shape

    def run(self, cnp.ndarray x, cnp.ndarray w, object b, cnp.ndarray y):
        cdef const void *x_ptr = cnp.PyArray_DATA(x)
        cdef const void *w_ptr = cnp.PyArray_DATA(w)
        cdef const void *b_ptr = NULL
        cdef void *y_ptr = cnp.PyArray_DATA(y)
        cdef int status
        if cnp.PyArray_SIZE(y) == 0:
            return
        if b is not None:
            b_ptr = cnp.PyArray_DATA(<cnp.ndarray>b)
        with nogil:
            if self.is_double:
                status = fc_conv_forward_f64(&self.g, <const double *>x_ptr,
                                             <const double *>w_ptr, <const double *>b_ptr,
                                             <double *>y_ptr)
            else:
                status = fc_conv_forward_f32(&self.g, <const float *>x_ptr,
                                             <const float *>w_ptr, <const float *>b_ptr,
                                             <float *>y_ptr)
        if status != 0:
            raise MemoryError("fastconv: could not allocate the packing workspace")


# ---------------------------------------------------------------------------------------------
# Run-time configuration: the engine (instruction set) and the thread count live in C
# (csrc/dispatch.c); these are their Python faces.

_init_status = fc_init()


def init_status():
    """0, or -1 if FASTCONV_KERNEL named an engine that is unknown or unavailable here."""
    return _init_status


def available_kernels():
    """Names of the engines this CPU can run, best first."""
    return [fc_engine_name(i).decode() for i in reversed(range(FC_ENGINE_COUNT))
            if fc_engine_available(i)]


def active_kernel():
    return fc_engine_name(fc_active_engine()).decode()


def set_kernel(str name):
    """Make engine ``name`` active for every later call; ValueError if it cannot run here."""
    for i in range(FC_ENGINE_COUNT):
        if fc_engine_name(i).decode() == name:
            if fc_set_engine(i) == 0:
                return
            break
    raise ValueError(
        f"kernel {name!r} is not available on this CPU; available: {available_kernels()}"
    )


def get_num_threads():
    return fc_get_num_threads()


def blocking():
    """The active engine's micro-tile and block sizes per dtype, and the cache sizes (bytes)
    they were derived from: {'float32': {'mr':, 'nr':, 'kc':, 'mc':, 'nc':}, 'float64': ...,
    'cache_bytes': (L1d, L2, L3)}."""
    cdef Py_ssize_t sizes[5]
    cdef Py_ssize_t caches[3]
    found = {}
    for name, item in (("float32", 4), ("float64", 8)):
        fc_engine_blocking(fc_active_engine(), item, sizes)
        found[name] = dict(zip(("mr", "nr", "kc", "mc", "nc"), [sizes[i] for i in range(5)]))
    fc_cache_sizes(caches)
    found["cache_bytes"] = (caches[0], caches[1], caches[2])
    return found


def prefer_direct_tile():
    return bool(fc_prefer_direct_tile())


def set_num_threads(int threads):
    fc_set_num_threads(threads)


def gemm(const floating[:, :] a, const floating[:, :] b, floating[:, :] c, bint beta):
    """c = a @ b (+ c if beta) through fc_gemm, with the arrays' own strides (for tests)."""
    cdef Py_ssize_t m = c.shape[0], n = c.shape[1], k = a.shape[1]
    cdef Py_ssize_t item = sizeof(floating)
    cdef int status
    if a.shape[0] != m or b.shape[0] != k or b.shape[1] != n:
        raise ValueError("gemm: the shapes of a, b and c disagree")
    if m == 0 or n == 0:
        return
    cdef const floating *a_ptr = &a[0, 0] if k > 0 else NULL
    cdef const floating *b_ptr = &b[0, 0] if k > 0 else NULL
    with nogil:
        if floating is float:
            status = fc_gemm_f32(m, n, k, a_ptr, a.strides[0] // item, a.strides[1] // item,
                                 b_ptr, b.strides[0] // item, b.strides[1] // item,
                                 beta, &c[0, 0], c.strides[0] // item, c.strides[1] // item)
        else:
            status = fc_gemm_f64(m, n, k, a_ptr, a.strides[0] // item, a.strides[1] // item,
                                 b_ptr, b.strides[0] // item, b.strides[1] // item,
                                 beta, &c[0, 0], c.strides[0] // item, c.strides[1] // item)
    if status != 0:
        raise MemoryError("fastconv: could not allocate the GEMM packing workspace")


def inner_product(const floating[:, ::1] x, const floating[:, ::1] w, floating[:, ::1] y):
    """y = x @ w.T through fc_inner_product: x (m, k), w (n, k), y (m, n), C-contiguous."""
    cdef Py_ssize_t m = x.shape[0], k = x.shape[1], n = w.shape[0]
    if w.shape[1] != k or y.shape[0] != m or y.shape[1] != n:
        raise ValueError("inner_product: the shapes of x, w and y disagree")
    if m == 0 or n == 0:
        return
    if k == 0:   # no products: zeros (the C side never sees an empty operand)
        y[:, :] = 0
        return
    with nogil:
        if floating is float:
            fc_inner_product_f32(m, n, k, &x[0, 0], &w[0, 0], &y[0, 0])
        else:
            fc_inner_product_f64(m, n, k, &x[0, 0], &w[0, 0], &y[0, 0])


def relu(const floating[::1] x, double negative_slope, floating[::1] y):
    """Caffe's ReLU of x into y (flat, C-contiguous; y may be x itself)."""
    if y.shape[0] != x.shape[0]:
        raise ValueError("relu: x and y differ in size")
    if x.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fc_relu_f32(x.shape[0], &x[0], <float>negative_slope, &y[0])
        else:
            fc_relu_f64(x.shape[0], &x[0], negative_slope, &y[0])


LIBM_FUNCTIONS = ("exp", "log", "tanh", "pow")   # fc_libm_function's order


def libm(str function, const floating[::1] x, double exponent, floating[::1] y):
    """The C library's ``function`` ("exp", "log", "tanh", or "pow" to ``exponent``) of each
    element of x into y (flat, C-contiguous; y may be x itself): expf/logf/tanhf/powf for
    float32, exp/log/tanh/pow for float64, as Caffe's float code calls them."""
    cdef int which = LIBM_FUNCTIONS.index(function)
    if y.shape[0] != x.shape[0]:
        raise ValueError("libm: x and y differ in size")
    if x.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fc_libm_f32(which, x.shape[0], &x[0], <float>exponent, &y[0])
        else:
            fc_libm_f64(which, x.shape[0], &x[0], exponent, &y[0])


cdef _check_channel_pass(str name, Py_ssize_t *x_shape, Py_ssize_t *y_shape, Py_ssize_t first,
                         Py_ssize_t second):
    if x_shape[0] != y_shape[0] or x_shape[1] != y_shape[1] or x_shape[2] != y_shape[2]:
        raise ValueError(f"{name}: x and y differ in shape")
    if first != x_shape[1] or second != x_shape[1]:
        raise ValueError(f"{name}: the per-channel operands must hold {x_shape[1]} values")


def channel_normalize(const floating[:, :, ::1] x, const floating[::1] mean,
                      const floating[::1] deviation, floating[:, :, ::1] y):
    """BatchNorm's (x - mean[c]) / deviation[c] over x (outer, channels, inner) into y (may be
    x itself)."""
    _check_channel_pass("channel_normalize", x.shape, y.shape, mean.shape[0],
                        deviation.shape[0])
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        return
    with nogil:
        if floating is float:
            fc_channel_normalize_f32(x.shape[0], x.shape[1], x.shape[2], &x[0, 0, 0], &mean[0],
                                     &deviation[0], &y[0, 0, 0])
        else:
            fc_channel_normalize_f64(x.shape[0], x.shape[1], x.shape[2], &x[0, 0, 0], &mean[0],
                                     &deviation[0], &y[0, 0, 0])


def channel_scale(const floating[:, :, ::1] x, const floating[::1] scale, floating[::1] bias,
                  floating[:, :, ::1] y):
    """Scale's x * scale[c] (+ bias[c]; an empty bias for none) over x (outer, channels, inner)
    into y (may be x itself)."""
    has_bias = bias.shape[0] != 0
    _check_channel_pass("channel_scale", x.shape, y.shape, scale.shape[0],
                        bias.shape[0] if has_bias else x.shape[1])
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        return
    cdef const floating *bias_pointer = &bias[0] if has_bias else NULL
    with nogil:
        if floating is float:
            fc_channel_scale_f32(x.shape[0], x.shape[1], x.shape[2], &x[0, 0, 0], &scale[0],
                                 bias_pointer, &y[0, 0, 0])
        else:
            fc_channel_scale_f64(x.shape[0], x.shape[1], x.shape[2], &x[0, 0, 0], &scale[0],
                                 bias_pointer, &y[0, 0, 0])


def eltwise_sum(list inputs, const floating[::1] coeff, floating[::1] y):
    """Caffe's Eltwise SUM of the flat C-contiguous arrays ``inputs`` (each y's size and
    dtype), ``coeff[i]`` times each, into y (which may be one of them)."""
    cdef Py_ssize_t count = y.shape[0], index, inputs_count = len(inputs)
    if coeff.shape[0] != inputs_count or inputs_count == 0:
        raise ValueError("eltwise_sum: one coefficient per input, at least one input")
    cdef const floating[::1] view
    views = []
    for index in range(inputs_count):
        view = inputs[index]
        if view.shape[0] != count:
            raise ValueError("eltwise_sum: the inputs and y differ in size")
        views.append(view)
    if count == 0:
        return
    cdef const floating **pointers = <const floating **>malloc(
        inputs_count * sizeof(const floating *))
    if pointers == NULL:
        raise MemoryError()
    for index in range(inputs_count):
        view = views[index]
        pointers[index] = &view[0]
    try:
        with nogil:
            if floating is float:
                fc_eltwise_sum_f32(count, inputs_count, pointers, &coeff[0], &y[0])
            else:
                fc_eltwise_sum_f64(count, inputs_count, pointers, &coeff[0], &y[0])
    finally:
        free(pointers)


def lrn_window(const floating[:, :, ::1] x, Py_ssize_t size, double alpha_over_size, double k,
               floating[:, :, ::1] result, bint three_quarter_power=False):
    """Caffe's LRN ACROSS_CHANNELS window (its scale) of x (batch, channels, plane) into
    result; with three_quarter_power, the layer's output for beta = 0.75 instead
    (csrc/elementwise.h)."""
    if (result.shape[0] != x.shape[0] or result.shape[1] != x.shape[1]
            or result.shape[2] != x.shape[2]):
        raise ValueError("lrn_window: x and result differ in shape")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        return
    with nogil:
        if floating is float:
            fc_lrn_window_f32(x.shape[0], x.shape[1], x.shape[2], size, <float>alpha_over_size,
                              <float>k, &x[0, 0, 0], &result[0, 0, 0], three_quarter_power)
        else:
            fc_lrn_window_f64(x.shape[0], x.shape[1], x.shape[2], size, alpha_over_size, k,
                              &x[0, 0, 0], &result[0, 0, 0], three_quarter_power)


# ---------------------------------------------------------------------------------------------
# Convolution of any rank (forward, backward, and through backward-data: deconvolution) and
# pooling.
# Arrays cross as flat C-contiguous memoryviews; the geometry says their shapes.

cdef extern from "csrc/pool.h" nogil:
    ctypedef struct fc_pool2d_geometry:
        Py_ssize_t batch, channels
        Py_ssize_t in_h, in_w
        Py_ssize_t out_h, out_w
        Py_ssize_t kernel_h, kernel_w
        Py_ssize_t stride_h, stride_w
        Py_ssize_t pad_top, pad_left
        int count_padding

    void fc_pool2d_forward_f32(const fc_pool2d_geometry *geom, int method, const float *x,
                               float *y)
    void fc_pool2d_forward_f64(const fc_pool2d_geometry *geom, int method, const double *x,
                               double *y)
    void fc_pool2d_backward_f32(const fc_pool2d_geometry *geom, int method, const float *x,
                                const float *dy, float *dx)
    void fc_pool2d_backward_f64(const fc_pool2d_geometry *geom, int method, const double *x,
                                const double *dy, double *dx)


cdef inline floating *_data(const floating[::1] array) noexcept:
    """First element, or NULL for None or an empty array (an absent bias or gradient). Inputs
    arrive read-only-capable (const); C only writes through the outputs' pointers."""
    if array is None or array.shape[0] == 0:
        return NULL
    return <floating *>&array[0]


def convnd_forward(object geom, const floating[::1] x, const floating[::1] w,
                   const floating[::1] bias, floating[::1] y):
    """y = conv(x, w) + bias for a checked convolution geometry (NCHW); bias may be None."""
    cdef fc_conv_geometry g = _geometry_from(geom)
    cdef floating *x_ptr = _data(x)
    cdef floating *w_ptr = _data(w)
    cdef floating *bias_ptr = _data(bias)
    cdef floating *y_ptr = _data(y)
    cdef int status
    with nogil:
        if floating is float:
            status = fc_conv_forward_f32(&g, x_ptr, w_ptr, bias_ptr, y_ptr)
        else:
            status = fc_conv_forward_f64(&g, x_ptr, w_ptr, bias_ptr, y_ptr)
    if status != 0:
        raise MemoryError("fastconv: could not allocate the im2col or GEMM workspace")


def convnd_backward(object geom, const floating[::1] x, const floating[::1] w,
                    const floating[::1] dy,
                    floating[::1] dx, floating[::1] dw, floating[::1] db):
    """Gradients of conv(x, w) for ``dy``; any of dx, dw, db may be None (not computed)."""
    cdef fc_conv_geometry g = _geometry_from(geom)
    cdef floating *x_ptr = _data(x)
    cdef floating *w_ptr = _data(w)
    cdef floating *dy_ptr = _data(dy)
    cdef floating *dx_ptr = _data(dx)
    cdef floating *dw_ptr = _data(dw)
    cdef floating *db_ptr = _data(db)
    cdef int status
    with nogil:
        if floating is float:
            status = fc_conv_backward_f32(&g, x_ptr, w_ptr, dy_ptr, dx_ptr, dw_ptr, db_ptr)
        else:
            status = fc_conv_backward_f64(&g, x_ptr, w_ptr, dy_ptr, dx_ptr, dw_ptr, db_ptr)
    if status != 0:
        raise MemoryError("fastconv: could not allocate the col2im or GEMM workspace")


cdef fc_pool2d_geometry _pool_geometry_from(object geom):
    cdef fc_pool2d_geometry g
    g.batch = geom.batch
    g.channels = geom.channels
    g.in_h = geom.in_h
    g.in_w = geom.in_w
    g.out_h = geom.out_h
    g.out_w = geom.out_w
    g.kernel_h = geom.kernel_h
    g.kernel_w = geom.kernel_w
    g.stride_h = geom.stride_h
    g.stride_w = geom.stride_w
    g.pad_top = geom.pad_top
    g.pad_left = geom.pad_left
    g.count_padding = geom.count_padding
    return g


_POOL_METHOD_CODES = {"max": 0, "ave": 1}


def pool2d_forward(object geom, str method, const floating[::1] x, floating[::1] y):
    """y = pool(x) for a checked ``fastconv._params.pooling.Pool2DGeometry``; method 'max' or 'ave'."""
    cdef fc_pool2d_geometry g = _pool_geometry_from(geom)
    cdef int code = _POOL_METHOD_CODES[method]
    cdef floating *x_ptr = _data(x)
    cdef floating *y_ptr = _data(y)
    with nogil:
        if floating is float:
            fc_pool2d_forward_f32(&g, code, x_ptr, y_ptr)
        else:
            fc_pool2d_forward_f64(&g, code, x_ptr, y_ptr)


def pool2d_backward(object geom, str method, const floating[::1] x,
                    const floating[::1] dy,
                    floating[::1] dx):
    """dx of pool(x) for ``dy``; MAX routes to each window's first maximum."""
    cdef fc_pool2d_geometry g = _pool_geometry_from(geom)
    cdef int code = _POOL_METHOD_CODES[method]
    cdef floating *x_ptr = _data(x)
    cdef floating *dy_ptr = _data(dy)
    cdef floating *dx_ptr = _data(dx)
    with nogil:
        if floating is float:
            fc_pool2d_backward_f32(&g, code, x_ptr, dy_ptr, dx_ptr)
        else:
            fc_pool2d_backward_f64(&g, code, x_ptr, dy_ptr, dx_ptr)


# ---------------------------------------------------------------------------------------------
# Output memory. A large output allocated afresh on every call is fresh pages every call (glibc
# maps anything over 32 MiB directly, and unmaps it when freed): the kernel zeroes each page at
# the engine's first write to it, inside the timed convolution. On the Xeon with AVX-512 that
# was 40 % of a batch-32 AlexNet conv1 (37 MB of output). So the memory of large outputs comes
# back here when the last array using it dies, and the next output of a similar size reuses it,
# as TensorFlow's and oneDNN's allocators do. Bounded: a few blocks, at most the limit in bytes
# (set_output_cache_limit; 0 turns the cache off), and a block serves requests of at least half
# its size only.

cdef enum:
    _CACHE_SLOTS = 4
    _CACHE_MIN_BYTES = 4 << 20   # smaller outputs are numpy's (malloc reuses its heap there)
# For the Python side; the C constant serves __dealloc__, which may run at interpreter exit,
# when module globals are gone.
OUTPUT_CACHE_MIN_BYTES = _CACHE_MIN_BYTES
cdef void *_cached_block[_CACHE_SLOTS]
cdef size_t _cached_capacity[_CACHE_SLOTS]
cdef size_t _cache_limit = 0


cdef size_t _cached_total():
    cdef size_t total = 0
    cdef int slot
    for slot in range(_CACHE_SLOTS):
        total += _cached_capacity[slot]
    return total


cdef void _drop_slot(int slot):
    fc_aligned_free(_cached_block[slot])
    _cached_block[slot] = NULL
    _cached_capacity[slot] = 0


def set_output_cache_limit(size_t limit_bytes):
    """Most bytes of freed output memory kept for reuse (0 frees what is kept and stops keeping);
    returns the previous limit."""
    global _cache_limit
    cdef int slot
    previous = _cache_limit
    _cache_limit = limit_bytes
    for slot in range(_CACHE_SLOTS):   # the oldest first
        if _cached_block[slot] != NULL and _cached_total() > _cache_limit:
            _drop_slot(slot)
    _compact()
    return previous


def output_cache_bytes():
    """Bytes of freed output memory kept for reuse now."""
    return _cached_total()


cdef void _compact():
    """Kept blocks to the front, oldest first."""
    cdef int slot, kept = 0
    for slot in range(_CACHE_SLOTS):
        if _cached_block[slot] != NULL:
            _cached_block[kept], _cached_capacity[kept] = _cached_block[slot], _cached_capacity[slot]
            if kept != slot:
                _cached_block[slot], _cached_capacity[slot] = NULL, 0
            kept += 1


cdef void _give_back(void *block, size_t capacity):
    """Keep a freed block for reuse, the oldest kept ones making room, or free it."""
    cdef int slot
    if capacity < _CACHE_MIN_BYTES or capacity > _cache_limit:
        fc_aligned_free(block)
        return
    # Make room: drop kept blocks, slot 0 first (the oldest: kept blocks shift down), until this
    # one fits in the limit and a slot is free.
    while _cached_block[0] != NULL and (_cached_total() + capacity > _cache_limit or
                                        _cached_block[_CACHE_SLOTS - 1] != NULL):
        _drop_slot(0)
        for slot in range(_CACHE_SLOTS - 1):
            _cached_block[slot] = _cached_block[slot + 1]
            _cached_capacity[slot] = _cached_capacity[slot + 1]
        _cached_block[_CACHE_SLOTS - 1] = NULL
        _cached_capacity[_CACHE_SLOTS - 1] = 0
    for slot in range(_CACHE_SLOTS):
        if _cached_block[slot] == NULL:
            _cached_block[slot] = block
            _cached_capacity[slot] = capacity
            return
    fc_aligned_free(block)


cdef class OutputBuffer:
    """Writable memory for one output array (np.frombuffer of it): a kept block of at least
    ``nbytes`` and at most twice that, or a new 64-byte aligned one; the block goes back to the
    cache when the buffer, and so every array viewing it, is gone."""
    cdef void *data
    cdef Py_ssize_t nbytes
    cdef size_t capacity

    def __cinit__(self, Py_ssize_t nbytes):
        cdef int slot, best = -1, last
        for slot in range(_CACHE_SLOTS):
            if (_cached_block[slot] != NULL and _cached_capacity[slot] >= <size_t>nbytes and
                    _cached_capacity[slot] <= 2 * <size_t>nbytes and
                    (best < 0 or _cached_capacity[slot] < _cached_capacity[best])):
                best = slot
        if best >= 0:
            self.data, self.capacity = _cached_block[best], _cached_capacity[best]
            for slot in range(best, _CACHE_SLOTS - 1):
                _cached_block[slot] = _cached_block[slot + 1]
                _cached_capacity[slot] = _cached_capacity[slot + 1]
            _cached_block[_CACHE_SLOTS - 1] = NULL
            _cached_capacity[_CACHE_SLOTS - 1] = 0
        else:
            self.data, self.capacity = fc_aligned_alloc(nbytes), nbytes
            if self.data == NULL:
                raise MemoryError(f"fastconv: could not allocate {nbytes} bytes for an output")
        self.nbytes = nbytes

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.data, self.nbytes, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __dealloc__(self):
        if self.data != NULL:
            _give_back(self.data, self.capacity)
