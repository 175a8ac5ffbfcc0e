/* Caffe's element-by-element layers (elementwise.h) for one type; elementwise.c includes it per
 * type. */

void FC_NAME(fc_relu)(ptrdiff_t count, const FC_T *x, FC_T negative_slope, FC_T *y)
{
    const int threads = fc_threads_for((double)count * FC_ELEMENTWISE_FLOPS_PER_ELEMENT);
    /* Plain branch-free expressions over contiguous elements: vectorised by the compiler. */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t i = 0; i < count; i++) {
        const FC_T value = x[i];
        const FC_T positive = value < 0 ? (FC_T)0 : value;
        const FC_T negative = 0 < value ? (FC_T)0 : value;
        y[i] = positive + negative_slope * negative;
    }
}

/* The C library's function of the element type: the float one for float (C++'s std::exp on a
 * float is expf, as in Caffe's Dtype code). */
#define FC_LIBM(name) _Generic((FC_T)0, float: name##f, default: name)
void FC_NAME(fc_libm)(int function, ptrdiff_t count, const FC_T *x, FC_T exponent, FC_T *y)
{
    /* A libm call per element, some tens of cycles: worth threads sooner than a plain pass. */
    const int threads = fc_threads_for((double)count * FC_LIBM_FLOPS_PER_ELEMENT);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t i = 0; i < count; i++) {
        switch (function) {
        case FC_LIBM_EXP:
            y[i] = FC_LIBM(exp)(x[i]);
            break;
        case FC_LIBM_LOG:
            y[i] = FC_LIBM(log)(x[i]);
            break;
        case FC_LIBM_TANH:
            y[i] = FC_LIBM(tanh)(x[i]);
            break;
        default:
            y[i] = FC_LIBM(pow)(x[i], exponent);
        }
    }
}
#undef FC_LIBM

/* Threads for a pass over `elements` elements split into `items` work items: as many as the
 * elements are worth, at most one per item. */
static int FC_NAME(threads_for_items)(ptrdiff_t items, ptrdiff_t elements)
{
    const int threads = fc_threads_for((double)elements * FC_ELEMENTWISE_FLOPS_PER_ELEMENT);
    return items < threads ? (int)items : threads;
}

void FC_NAME(fc_channel_normalize)(ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                                   const FC_T *x, const FC_T *mean, const FC_T *deviation,
                                   FC_T *y)
{
    const ptrdiff_t rows = outer * channels;
    const int threads = FC_NAME(threads_for_items)(rows, rows * inner);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t row = 0; row < rows; row++) {
        const FC_T subtrahend = mean[row % channels], divisor = deviation[row % channels];
        const FC_T *in = x + row * inner;
        FC_T *out = y + row * inner;
        for (ptrdiff_t j = 0; j < inner; j++)
            out[j] = (in[j] - subtrahend) / divisor;
    }
}

void FC_NAME(fc_channel_scale)(ptrdiff_t outer, ptrdiff_t channels, ptrdiff_t inner,
                               const FC_T *x, const FC_T *scale, const FC_T *bias, FC_T *y)
{
    const ptrdiff_t rows = outer * channels;
    const int threads = FC_NAME(threads_for_items)(rows, rows * inner);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t row = 0; row < rows; row++) {
        const FC_T factor = scale[row % channels];
        const FC_T *in = x + row * inner;
        FC_T *out = y + row * inner;
        if (bias) {
            const FC_T addend = bias[row % channels];
            for (ptrdiff_t j = 0; j < inner; j++)
                out[j] = in[j] * factor + addend;
        } else {
            for (ptrdiff_t j = 0; j < inner; j++)
                out[j] = in[j] * factor;
        }
    }
}

void FC_NAME(fc_eltwise_sum)(ptrdiff_t count, ptrdiff_t inputs, const FC_T *const *x,
                             const FC_T *coeff, FC_T *y)
{
    const int threads = fc_threads_for((double)(count * inputs) * FC_ELEMENTWISE_FLOPS_PER_ELEMENT);
    if (inputs == 2) {
        /* ResNet's shortcut sums: one expression, no buffer. */
        const FC_T *first = x[0], *second = x[1];
        const FC_T first_factor = coeff[0], second_factor = coeff[1];
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (ptrdiff_t j = 0; j < count; j++) {
            const FC_T partial = (FC_T)0 + first_factor * first[j];
            y[j] = partial + second_factor * second[j];
        }
        return;
    }
    /* Blocks of FC_ELTWISE_BLOCK elements, every input's in turn: each element's sum from +0
     * in input order, kept in a block-long buffer on the stack while the inputs stream. */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t start = 0; start < count; start += FC_ELTWISE_BLOCK) {
        const ptrdiff_t length = count - start < FC_ELTWISE_BLOCK ? count - start
                                                                  : FC_ELTWISE_BLOCK;
        FC_T sum[FC_ELTWISE_BLOCK];
        for (ptrdiff_t j = 0; j < length; j++)
            sum[j] = 0;
        for (ptrdiff_t i = 0; i < inputs; i++) {
            const FC_T factor = coeff[i], *in = x[i] + start;
            for (ptrdiff_t j = 0; j < length; j++)
                sum[j] = sum[j] + factor * in[j];
        }
        for (ptrdiff_t j = 0; j < length; j++)
            y[start + j] = sum[j];
    }
}

/* One term of the window: alpha_over_size * x², the square and the product each rounded, as
 * Caffe's caffe_sqr and caffe_axpy (the same value every time it enters or leaves). */
static inline FC_T FC_NAME(lrn_term)(FC_T value, FC_T alpha_over_size)
{
    const FC_T square = value * value;
    return alpha_over_size * square;
}

/* One channel's window sums of a chunk: the sums themselves, or the LRN output x * sum^-0.75
 * (the engine's, vectorised for the instruction set: AlexNet's LRN at batch 8 spent 80 % of its
 * time in numpy's float64 power and the arrays around it). */
static inline void FC_NAME(lrn_store)(const FC_NAME(fc_engine) *engine, ptrdiff_t count,
                                      const FC_T *sum, const FC_T *x, FC_T *out,
                                      int three_quarter_power)
{
    if (three_quarter_power)
        engine->lrn_three_quarters(count, sum, x, out);
    else
        for (ptrdiff_t p = 0; p < count; p++)
            out[p] = sum[p];
}

void FC_NAME(fc_lrn_window)(ptrdiff_t batch, ptrdiff_t channels, ptrdiff_t plane,
                            ptrdiff_t size, FC_T alpha_over_size, FC_T k, const FC_T *x,
                            FC_T *result, int three_quarter_power)
{
    const FC_NAME(fc_engine) *engine = FC_NAME(fc_engine_active)();
    const ptrdiff_t pre_pad = (size - 1) / 2;
    const ptrdiff_t chunks = (plane + FC_LRN_CHUNK - 1) / FC_LRN_CHUNK;
    const ptrdiff_t items = batch * chunks;
    const int threads = FC_NAME(threads_for_items)(items, batch * channels * plane);
    /* Padding channels add alpha_over_size * 0, which is -0 for a negative alpha: added as
     * computed, since +0 would turn a -0 sum into +0. */
    const FC_T padding_term = alpha_over_size * (FC_T)0;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t item = 0; item < items; item++) {
        const ptrdiff_t n = item / chunks, p0 = item % chunks * FC_LRN_CHUNK;
        const ptrdiff_t count = plane - p0 < FC_LRN_CHUNK ? plane - p0 : FC_LRN_CHUNK;
        const FC_T *image = x + n * channels * plane + p0;
        FC_T *out = result + n * channels * plane + p0;
        FC_T sum[FC_LRN_CHUNK];
        for (ptrdiff_t p = 0; p < count; p++)
            sum[p] = k;
        for (ptrdiff_t c = -pre_pad; c < size - pre_pad; c++) {
            const FC_T *row = image + c * plane;
            if (c < 0 || c >= channels)
                for (ptrdiff_t p = 0; p < count; p++)
                    sum[p] = sum[p] + padding_term;
            else
                for (ptrdiff_t p = 0; p < count; p++)
                    sum[p] = sum[p] + FC_NAME(lrn_term)(row[p], alpha_over_size);
        }
        FC_NAME(lrn_store)(engine, count, sum, image, out, three_quarter_power);
        for (ptrdiff_t c = 1; c < channels; c++) {
            /* Caffe's order: the previous channel's sum, plus the entering term, minus the
             * leaving one. */
            const ptrdiff_t entering = c + size - 1 - pre_pad, leaving = c - 1 - pre_pad;
            const FC_T *enter_row = image + entering * plane, *leave_row = image + leaving * plane;
            for (ptrdiff_t p = 0; p < count; p++) {
                const FC_T enter = entering < channels
                                       ? FC_NAME(lrn_term)(enter_row[p], alpha_over_size)
                                       : padding_term;
                const FC_T leave = leaving >= 0
                                       ? FC_NAME(lrn_term)(leave_row[p], alpha_over_size)
                                       : padding_term;
                sum[p] = sum[p] + enter;
                sum[p] = sum[p] - leave;
            }
            FC_NAME(lrn_store)(engine, count, sum, image + c * plane, out + c * plane,
                               three_quarter_power);
        }
    }
}
