/* Two element types from one source: neuron.template.c is included once per type. */
#include "engine.h"
#include "neuron.h"

/* Elements per thread below which one thread does it all: a fork costs more than the pass. */
#define FC_NEURON_MIN_PER_THREAD 65536
/* Pixels of a plane whose LRN window runs together (its running sums on the stack). */
#define FC_LRN_CHUNK 256

#define FC_TEMPLATE "neuron.template.c"
#include "each_type.h"
