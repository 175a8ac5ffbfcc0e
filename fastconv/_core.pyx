# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The Cython boundary: arrays in, one ``nogil`` call into the C core.

Every argument has been checked, made C-contiguous and native-endian in Python
(``fastconv._params``, ``fastconv.caffe``); the C core trusts it. The run-time configuration
(engine, threads) is read from C here too.
"""

cimport numpy as cnp

cnp.import_array()

cdef extern from "csrc/conv.h" nogil:
    ctypedef struct fc_conv2d_geometry:
        Py_ssize_t batch
        Py_ssize_t in_channels
        Py_ssize_t in_h, in_w
        Py_ssize_t out_channels
        Py_ssize_t out_h, out_w
        Py_ssize_t kernel_h, kernel_w
        Py_ssize_t stride_h, stride_w
        Py_ssize_t pad_top, pad_left
        Py_ssize_t dilation_h, dilation_w
        Py_ssize_t group

    int fc_conv2d_forward_f32(const fc_conv2d_geometry *geom, const float *x, const float *w,
                              const float *bias, float *y)
    int fc_conv2d_forward_f64(const fc_conv2d_geometry *geom, const double *x, const double *w,
                              const double *bias, double *y)

cdef extern from "csrc/gemm.h" nogil:
    int fc_gemm_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const float *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                    const float *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                    int beta, float *c, Py_ssize_t rs_c, Py_ssize_t cs_c)
    int fc_gemm_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const double *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                    const double *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                    int beta, double *c, Py_ssize_t rs_c, Py_ssize_t cs_c)

cdef extern from "csrc/engine.h" nogil:
    enum: FC_ENGINE_COUNT
    int fc_init()
    int fc_engine_available(int id)
    const char *fc_engine_name(int id)
    int fc_active_engine()
    int fc_set_engine(int id)
    int fc_get_num_threads()
    void fc_set_num_threads(int threads)

ctypedef fused floating:
    float
    double


cdef fc_conv2d_geometry _geometry_from(object geom):
    cdef fc_conv2d_geometry g
    g.batch = geom.batch
    g.in_channels = geom.in_channels
    g.in_h = geom.in_h
    g.in_w = geom.in_w
    g.out_channels = geom.out_channels
    g.out_h = geom.out_h
    g.out_w = geom.out_w
    g.kernel_h = geom.kernel_h
    g.kernel_w = geom.kernel_w
    g.stride_h = geom.stride_h
    g.stride_w = geom.stride_w
    g.pad_top = geom.pad_top
    g.pad_left = geom.pad_left
    g.dilation_h = geom.dilation_h
    g.dilation_w = geom.dilation_w
    g.group = geom.group
    return g


cdef class ConvPlan:
    """A checked geometry and dtype, converted to C once: the forward convolution's boundary.

    ``run`` computes y = conv(x, w) + b and trusts its arrays completely (C-contiguous,
    aligned, native byte order, the plan's dtype and shapes; b may be None): fastconv.caffe
    has made sure of all of that. Immutable, so one plan serves concurrent Python threads.
    """
    cdef fc_conv2d_geometry g
    cdef bint is_double
    cdef readonly tuple output_shape

    def __init__(self, object geom, object dtype):
        self.g = _geometry_from(geom)
        self.is_double = dtype.itemsize == 8
        self.output_shape = geom.output_shape

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
                status = fc_conv2d_forward_f64(&self.g, <const double *>x_ptr,
                                               <const double *>w_ptr, <const double *>b_ptr,
                                               <double *>y_ptr)
            else:
                status = fc_conv2d_forward_f32(&self.g, <const float *>x_ptr,
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
