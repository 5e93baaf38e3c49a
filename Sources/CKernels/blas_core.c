// OpenBLAS kernel choice for CPUs its build does not know (see adaptc_kernels.h).
//
// Debian's OpenBLAS 0.3.21 (bookworm) does not recognise Sapphire Rapids and
// falls back to its Prescott (SSE3) kernels: sgemm runs at 33 GFLOP/s instead
// of 150 with the SkylakeX kernels the same library carries (measured on this
// project's 2-core machine, 1024³, one thread). A DYNAMIC_ARCH build chooses
// its kernels once, when it is loaded, from OPENBLAS_CORETYPE or cpuid; it
// exports `gotoblas_dynamic_quit`/`gotoblas_dynamic_init` to choose again.
// When the user has not set OPENBLAS_CORETYPE and the CPU offers more than the
// chosen kernels use, we choose again with the best family the CPU supports.
//
// This runs as a constructor: at load time, before any thread of the app can
// call BLAS or read the environment while we set and unset the variable.
// Every OpenBLAS symbol is weak, so a BLAS without them links and is left as it is.
#include "adaptc_kernels.h"

#include <stdlib.h>
#include <string.h>

extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

// Vector width a kernel family of OpenBLAS uses: 1 SSE, 2 AVX, 3 AVX2+FMA, 4 AVX-512.
static int family_level(const char *name) {
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
    static const char *const avx2[] = {"haswell", "zen", "excavator", "steamroller", "piledriver", NULL};
    static const char *const avx[] = {"sandybridge", "bulldozer", NULL};
    for (int i = 0; avx512[i]; i++) if (strcasecmp(name, avx512[i]) == 0) return 4;
    for (int i = 0; avx2[i]; i++) if (strcasecmp(name, avx2[i]) == 0) return 3;
    for (int i = 0; avx[i]; i++) if (strcasecmp(name, avx[i]) == 0) return 2;
    return 1;
}

// What this CPU and its OS support (the builtins check XCR0 for AVX state).
static int cpu_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) return 4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 3;
    if (__builtin_cpu_supports("avx")) return 2;
    return 1;
}

static const char *chosen = NULL;
static const char *replaced = NULL;

__attribute__((constructor)) static void adaptc_choose_blas_core(void) {
    if (getenv("OPENBLAS_CORETYPE") != NULL) return;  // the user's choice stands
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || !openblas_get_corename) return;
    const char *current = openblas_get_corename();
    if (current == NULL) return;
    int cpu = cpu_level();
    if (cpu <= family_level(current)) return;
    static const char *const names[] = {NULL, NULL, "Sandybridge", "Haswell", "SkylakeX"};
    static char before[32];
    strncpy(before, current, sizeof before - 1);
    setenv("OPENBLAS_CORETYPE", names[cpu], 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
    replaced = before;
    chosen = openblas_get_corename();
}

const char *adaptc_blas_core_replaced(void) { return replaced; }
const char *adaptc_blas_core_chosen(void) { return chosen; }
