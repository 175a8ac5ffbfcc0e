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
