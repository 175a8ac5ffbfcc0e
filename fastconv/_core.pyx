# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The Cython boundary: typed memoryviews in, one ``nogil`` call into the C core.

Every argument has been checked, made C-contiguous and native-endian in Python
(``fastconv._params``); the C core trusts it.
"""

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


def conv2d_forward(object geom, const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                   const floating[::1] bias, floating[:, :, :, ::1] y):
    """y = conv(x, w) + bias for a checked ``fastconv._params.Conv2DGeometry``; bias may be None."""
    cdef fc_conv2d_geometry g = _geometry_from(geom)
    cdef const floating *bias_ptr = NULL
    cdef int status
    if bias is not None:
        bias_ptr = &bias[0]
    if y.shape[0] == 0 or y.shape[1] == 0 or y.shape[2] == 0 or y.shape[3] == 0:
        return
    with nogil:
        if floating is float:
            status = fc_conv2d_forward_f32(&g, &x[0, 0, 0, 0], &w[0, 0, 0, 0], bias_ptr,
                                           &y[0, 0, 0, 0])
        else:
            status = fc_conv2d_forward_f64(&g, &x[0, 0, 0, 0], &w[0, 0, 0, 0], bias_ptr,
                                           &y[0, 0, 0, 0])
    if status != 0:
        raise MemoryError("fastconv: could not allocate the im2col workspace")


# ---------------------------------------------------------------------------------------------
# N-D convolution (forward, backward, and through backward-data: deconvolution) and pooling.
# Arrays cross as flat C-contiguous memoryviews; the geometry says their shapes.

cdef extern from "csrc/convnd.h" nogil:
    enum: FC_SPATIAL_AXES
    ctypedef struct fc_convnd_geometry:
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

    int fc_convnd_forward_f32(const fc_convnd_geometry *geom, const float *x, const float *w,
                              const float *bias, float *y)
    int fc_convnd_forward_f64(const fc_convnd_geometry *geom, const double *x, const double *w,
                              const double *bias, double *y)
    int fc_convnd_backward_f32(const fc_convnd_geometry *geom, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db)
    int fc_convnd_backward_f64(const fc_convnd_geometry *geom, const double *x, const double *w,
                               const double *dy, double *dx, double *dw, double *db)

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


cdef fc_convnd_geometry _nd_geometry_from(object geom):
    """Fill the C struct; a rank below 3 gets leading axes of size 1 (see convnd.h)."""
    cdef fc_convnd_geometry g
    cdef int lead = FC_SPATIAL_AXES - geom.rank
    cdef int axis
    g.batch = geom.batch
    g.in_channels = geom.in_channels
    g.out_channels = geom.out_channels
    g.group = geom.group
    for axis in range(FC_SPATIAL_AXES):
        if axis < lead:
            g.in_size[axis] = g.out_size[axis] = g.kernel[axis] = 1
            g.stride[axis] = g.dilation[axis] = 1
            g.pad[axis] = 0
        else:
            g.in_size[axis] = geom.in_size[axis - lead]
            g.out_size[axis] = geom.out_size[axis - lead]
            g.kernel[axis] = geom.kernel[axis - lead]
            g.stride[axis] = geom.stride[axis - lead]
            g.pad[axis] = geom.pad[axis - lead]
            g.dilation[axis] = geom.dilation[axis - lead]
    return g


cdef inline floating *_data(const floating[::1] array) noexcept:
    """First element, or NULL for None or an empty array (an absent bias or gradient). Inputs
    arrive read-only-capable (const); C only writes through the outputs' pointers."""
    if array is None or array.shape[0] == 0:
        return NULL
    return <floating *>&array[0]


def convnd_forward(object geom, const floating[::1] x, const floating[::1] w,
                   const floating[::1] bias, floating[::1] y):
    """y = conv(x, w) + bias for a checked ``fastconv._params.ConvNDGeometry``; bias may be None."""
    cdef fc_convnd_geometry g = _nd_geometry_from(geom)
    cdef floating *x_ptr = _data(x)
    cdef floating *w_ptr = _data(w)
    cdef floating *bias_ptr = _data(bias)
    cdef floating *y_ptr = _data(y)
    cdef int status
    with nogil:
        if floating is float:
            status = fc_convnd_forward_f32(&g, x_ptr, w_ptr, bias_ptr, y_ptr)
        else:
            status = fc_convnd_forward_f64(&g, x_ptr, w_ptr, bias_ptr, y_ptr)
    if status != 0:
        raise MemoryError("fastconv: could not allocate the im2col workspace")


def convnd_backward(object geom, const floating[::1] x, const floating[::1] w,
                    const floating[::1] dy,
                    floating[::1] dx, floating[::1] dw, floating[::1] db):
    """Gradients of conv(x, w) for ``dy``; any of dx, dw, db may be None (not computed)."""
    cdef fc_convnd_geometry g = _nd_geometry_from(geom)
    cdef floating *x_ptr = _data(x)
    cdef floating *w_ptr = _data(w)
    cdef floating *dy_ptr = _data(dy)
    cdef floating *dx_ptr = _data(dx)
    cdef floating *dw_ptr = _data(dw)
    cdef floating *db_ptr = _data(db)
    cdef int status
    with nogil:
        if floating is float:
            status = fc_convnd_backward_f32(&g, x_ptr, w_ptr, dy_ptr, dx_ptr, dw_ptr, db_ptr)
        else:
            status = fc_convnd_backward_f64(&g, x_ptr, w_ptr, dy_ptr, dx_ptr, dw_ptr, db_ptr)
    if status != 0:
        raise MemoryError("fastconv: could not allocate the col2im workspace")


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
    """y = pool(x) for a checked ``fastconv._params.Pool2DGeometry``; method 'max' or 'ave'."""
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
