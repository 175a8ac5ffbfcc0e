/* Caffe's ReLU (neuron.h) for one element type; included by neuron.c once per type. */

void FC_NAME(fc_relu)(ptrdiff_t count, const FC_T *x, FC_T negative_slope, FC_T *y)
{
    const ptrdiff_t by_size = count / FC_NEURON_MIN_PER_THREAD;
    const int most = fc_get_num_threads();
    const int threads = by_size < 1 ? 1 : by_size < most ? (int)by_size : most;
    /* Plain branch-free expressions over contiguous elements: vectorised by the compiler. */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (ptrdiff_t i = 0; i < count; i++) {
        const FC_T value = x[i];
        const FC_T positive = value < 0 ? (FC_T)0 : value;
        const FC_T negative = 0 < value ? (FC_T)0 : value;
        y[i] = positive + negative_slope * negative;
    }
}
