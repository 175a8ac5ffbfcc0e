/* Instantiate a template once per element type: define FC_TEMPLATE as its file name (a string)
 * and include this file. The template sees FC_T (float, then double) and FC_NAME(name), which
 * appends _f32 or _f64. No include guard: used once per template. */
#define FC_T float
#define FC_NAME(name) name##_f32
#include FC_TEMPLATE
#undef FC_T
#undef FC_NAME

#define FC_T double
#define FC_NAME(name) name##_f64
#include FC_TEMPLATE
#undef FC_T
#undef FC_NAME

#undef FC_TEMPLATE
