/* Two element types from one source: gemm.template.c is included once per type. */
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "engine.h"
#include "gemm.h"

#define FC_T float
#define FC_NAME(name) name##_f32
#include "gemm.template.c"
#undef FC_T
#undef FC_NAME

#define FC_T double
#define FC_NAME(name) name##_f64
#include "gemm.template.c"
#undef FC_T
#undef FC_NAME
