/* Two element types from one source: gemm.template.c is included once per type. */
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "engine.h"
#include "gemm.h"

#define FC_TEMPLATE "gemm.template.c"
#include "each_type.h"
