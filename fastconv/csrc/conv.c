/* Two element types from one source: conv.template.c is included once per type. */
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "conv.h"
#include "engine.h"
#include "gemm.h"

#define FC_T float
#define FC_NAME(name) name##_f32
#include "conv.template.c"
#undef FC_T
#undef FC_NAME

#define FC_T double
#define FC_NAME(name) name##_f64
#include "conv.template.c"
#undef FC_T
#undef FC_NAME
