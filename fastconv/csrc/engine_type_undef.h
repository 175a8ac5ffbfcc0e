/* Ends one element type's instantiation in engine.c (no include guard: used repeatedly). */
#undef FC_T
#undef FC_TYPE_TAG
#undef FC_SUFFIX
#undef FC_VEC
#undef FC_LANES
#undef FC_VEVEN
#undef FC_TRANSPOSE_BLOCK
#undef FC_TRANSPOSE_SIDE
#undef FC_PACK_A_BLOCK
#undef FC_PACK_A_SIDE
#undef FC_VCOPY_MASKED
