/* Two element types from one source: conv.template.c is included once per type. */
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "conv.h"
#include "engine.h"
#include "gemm.h"

#define FC_TEMPLATE "conv.template.c"
#include "each_type.h"
