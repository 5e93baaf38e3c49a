// The vector ISA the kernels choose at run time (see kernel_common.h): the
// package has no global ISA flags, so bodies carry `target` attributes and
// this picks one.
#include "kernel_common.h"

#include <stdatomic.h>

// -1 until detected; threads may race to detect it, and all store the same value.
static _Atomic int isa = -1;

int adaptc_cpu_isa(void) {
    int known = isa;
    if (known >= 0) return known;
    __builtin_cpu_init();
    known = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    isa = known;
    return known;
}
