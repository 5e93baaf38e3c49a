// What the C kernels share (private to the target, not part of its C API).
#ifndef ADAPTC_KERNEL_COMMON_H
#define ADAPTC_KERNEL_COMMON_H

#include <stdbool.h>

/// The widest vector body the kernels can run here: 2 AVX-512, 1 AVX2+FMA,
/// 0 neither. Detected once; later calls read the cached value.
int adaptc_cpu_isa(void);

/// Element (row, col) of a row-major matrix with leading dimension ld, or of
/// its transpose when `trans`.
static inline float adaptc_element(const float *x, long ld, bool trans, long row, long col) {
    return trans ? x[col * ld + row] : x[row * ld + col];
}

#endif
