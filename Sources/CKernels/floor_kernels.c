// The two floors of a benchmark case (DESIGN §8; see adaptc_kernels.h).
//
// Memory floor: the bytes a case must move, timed as one pass over buffers of
// those sizes — inputs read, accumulated outputs read and written, fresh
// outputs written — with plain vector loads and stores, as the kernels
// themselves move data (no non-temporal stores: a working set that stays in
// the last-level cache between calls is timed there, as the case's own is).
// Each function covers one contiguous block, so the runtime can spread the
// blocks of every buffer over TBB.
//
// Compute floor: fused multiply-adds on registers alone, enough independent
// chains to keep every FMA port busy (a chain waits its FMA's latency, ≈ 4
// cycles, between steps; two ports need ≥ 8 chains in flight), no loads or
// stores in the loop. AVX-512 or AVX2+FMA chosen at run time, as elsewhere.
#include "adaptc_kernels.h"
#include "kernel_common.h"

#include <immintrin.h>

// Sums in four vector accumulators so the adds do not wait on each other
// (one chain would cap a core below its load rate).
__attribute__((target("avx512f")))
static float read_avx512(const float *x, long count) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 64 <= count; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(x + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(x + i + 48));
    }
    for (; i + 16 <= count; i += 16) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
    if (i < count) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps((__mmask16)((1u << (count - i)) - 1u), x + i));
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx2,fma")))
static float read_avx2(const float *x, long count) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 32 <= count; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(x + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(x + i + 24));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    float sum = 0.0f;
    for (int j = 0; j < 8; j++) sum += lanes[j];
    for (; i < count; i++) sum += x[i];
    return sum;
}

float adaptc_stream_read(const float *x, long count) {
    if (count <= 0) return 0.0f;
    switch (adaptc_cpu_isa()) {
    case 2: return read_avx512(x, count);
    case 1: return read_avx2(x, count);
    default: {
        float sum = 0.0f;
        for (long i = 0; i < count; i++) sum += x[i];
        return sum;
    }
    }
}

__attribute__((target("avx512f")))
static void update_avx512(float *y, long count, float delta) {
    __m512 d = _mm512_set1_ps(delta);
    long i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), d));
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, y + i), d));
    }
}

__attribute__((target("avx2,fma")))
static void update_avx2(float *y, long count, float delta) {
    __m256 d = _mm256_set1_ps(delta);
    long i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), d));
    for (; i < count; i++) y[i] += delta;
}

void adaptc_stream_update(float *y, long count, float delta) {
    if (count <= 0) return;
    switch (adaptc_cpu_isa()) {
    case 2: update_avx512(y, count, delta); return;
    case 1: update_avx2(y, count, delta); return;
    default:
        for (long i = 0; i < count; i++) y[i] += delta;
    }
}

__attribute__((target("avx512f")))
static void write_avx512(float *y, long count, float value) {
    __m512 v = _mm512_set1_ps(value);
    long i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, v);
    if (i < count) _mm512_mask_storeu_ps(y + i, (__mmask16)((1u << (count - i)) - 1u), v);
}

__attribute__((target("avx2,fma")))
static void write_avx2(float *y, long count, float value) {
    __m256 v = _mm256_set1_ps(value);
    long i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, v);
    for (; i < count; i++) y[i] = value;
}

void adaptc_stream_write(float *y, long count, float value) {
    if (count <= 0) return;
    switch (adaptc_cpu_isa()) {
    case 2: write_avx512(y, count, value); return;
    case 1: write_avx2(y, count, value); return;
    default:
        for (long i = 0; i < count; i++) y[i] = value;
    }
}

// Chains per body: 16 of 32 zmm registers, 12 of 16 ymm (each chain one
// register; a, b and the loop counter fit beside them without spilling).
#define CHAINS_512 16
#define CHAINS_256 12
#define CHAINS_SCALAR 8

long adaptc_fma_width(void) {
    switch (adaptc_cpu_isa()) {
    case 2: return CHAINS_512 * 16;
    case 1: return CHAINS_256 * 8;
    default: return CHAINS_SCALAR;
    }
}

// Each chain starts at 0 and steps s ← s·a + b; the lanes' sum is returned
// (so the loop is kept), in double so a test can compare it exactly.
__attribute__((target("avx512f")))
static double fma_avx512(long steps, float a, float b) {
    __m512 s[CHAINS_512];
    for (int c = 0; c < CHAINS_512; c++) s[c] = _mm512_setzero_ps();
    __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (long t = 0; t < steps; t++)
        for (int c = 0; c < CHAINS_512; c++) s[c] = _mm512_fmadd_ps(s[c], va, vb);
    double sum = 0.0;
    float lanes[16];
    for (int c = 0; c < CHAINS_512; c++) {
        _mm512_storeu_ps(lanes, s[c]);
        for (int j = 0; j < 16; j++) sum += lanes[j];
    }
    return sum;
}

__attribute__((target("avx2,fma")))
static double fma_avx2(long steps, float a, float b) {
    __m256 s[CHAINS_256];
    for (int c = 0; c < CHAINS_256; c++) s[c] = _mm256_setzero_ps();
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (long t = 0; t < steps; t++)
        for (int c = 0; c < CHAINS_256; c++) s[c] = _mm256_fmadd_ps(s[c], va, vb);
    double sum = 0.0;
    float lanes[8];
    for (int c = 0; c < CHAINS_256; c++) {
        _mm256_storeu_ps(lanes, s[c]);
        for (int j = 0; j < 8; j++) sum += lanes[j];
    }
    return sum;
}

static double fma_scalar(long steps, float a, float b) {
    float s[CHAINS_SCALAR] = {0};
    for (long t = 0; t < steps; t++)
        for (int c = 0; c < CHAINS_SCALAR; c++) s[c] = __builtin_fmaf(s[c], a, b);
    double sum = 0.0;
    for (int c = 0; c < CHAINS_SCALAR; c++) sum += s[c];
    return sum;
}

double adaptc_fma_loop(long steps, float a, float b) {
    if (steps <= 0) return 0.0;
    switch (adaptc_cpu_isa()) {
    case 2: return fma_avx512(steps, a, b);
    case 1: return fma_avx2(steps, a, b);
    default: return fma_scalar(steps, a, b);
    }
}
