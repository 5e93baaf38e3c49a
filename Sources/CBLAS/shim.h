// OpenBLAS's CBLAS (header guard CBLAS_H) and LAPACKE, as one Clang module.
#ifndef ADAPTC_CBLAS_SHIM_H
#define ADAPTC_CBLAS_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
