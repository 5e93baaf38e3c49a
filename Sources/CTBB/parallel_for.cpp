// tbb::parallel_for inside a task_arena of the requested width. Arenas are
// created once per width and kept: building one per call costs more than a
// small adapter step.
#include "adaptc_tbb.h"

#include <map>
#include <memory>
#include <mutex>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

namespace {

tbb::task_arena &arena_for(int threads) {
    static std::mutex lock;
    static std::map<int, std::unique_ptr<tbb::task_arena>> arenas;
    std::lock_guard<std::mutex> guard(lock);
    auto &slot = arenas[threads];
    if (!slot) {
        slot = std::make_unique<tbb::task_arena>(threads);
        slot->initialize();
    }
    return *slot;
}

}  // namespace

extern "C" void adaptc_parallel_for(long count, long grain, int threads, void *context, adaptc_range_body body) {
    if (count <= 0) return;
    if (grain < 1) grain = 1;
    if (threads == 1 || count <= grain) {
        body(context, 0, count);
        return;
    }
    int width = threads > 0 ? threads : tbb::info::default_concurrency();
    arena_for(width).execute([&] {
        tbb::parallel_for(tbb::blocked_range<long>(0, count, grain),
                          [&](const tbb::blocked_range<long> &r) { body(context, r.begin(), r.end()); },
                          tbb::simple_partitioner());
    });
}

extern "C" int adaptc_default_concurrency(void) { return tbb::info::default_concurrency(); }
