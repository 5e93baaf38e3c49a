// Plain C face of oneTBB for AdaptRuntime. Swift never sees C++ (DESIGN §7).
#ifndef ADAPTC_TBB_H
#define ADAPTC_TBB_H

#ifdef __cplusplus
extern "C" {
#endif

/// Body of a parallel loop: handles the half-open index range [begin, end).
typedef void (*adaptc_range_body)(void *context, long begin, long end);

/// Runs body over [0, count) in chunks of at least `grain` indices on at most
/// `threads` worker threads (0: TBB's default). Returns when every chunk is done.
/// With threads == 1 or count <= grain it runs inline on the caller's thread.
void adaptc_parallel_for(long count, long grain, int threads, void *context, adaptc_range_body body);

/// Number of hardware threads TBB would use by default.
int adaptc_default_concurrency(void);

#ifdef __cplusplus
}
#endif
#endif
