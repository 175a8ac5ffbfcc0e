/* Two element types from one source: elementwise.template.c is included once per type. */
#include <math.h>
#include "engine.h"
#include "elementwise.h"

/* A pass over an element counted as this many flops for fc_threads_for: a thread per 64 K
 * elements or so, below which forking costs more than the pass. */
#define FC_ELEMENTWISE_FLOPS_PER_ELEMENT 32.0
/* The same for a C library function per element: a thread per 4 K elements or so. */
#define FC_LIBM_FLOPS_PER_ELEMENT 512.0
/* Elements an Eltwise sum takes from each input in turn (its sums on the stack). */
#define FC_ELTWISE_BLOCK 1024
/* Pixels of a plane whose LRN window runs together (its running sums on the stack). */
#define FC_LRN_CHUNK 256

#define FC_TEMPLATE "elementwise.template.c"
#include "each_type.h"
