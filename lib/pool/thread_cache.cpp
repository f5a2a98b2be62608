// The calling thread's table of block caches (one per pool it allocates from), and
// their end. At thread exit and in a forked child only the private memory is freed:
// touching the pool there could wait on its lock (exit must not block) or race with a
// destroy; the blocks stay cached under an entry whose owner is gone (or, after fork,
// still the parent's: the child never acts on them), and survivors take them back
// (thread_cache.hpp).
#include "pool/thread_cache.hpp"

#include "pool/fork_safety.hpp"
#include "pool/pool_mapping.hpp"

#include <pthread.h>

#include <new>

namespace dragonmem::detail {

constinit thread_local ThreadCache* t_caches[k_thread_cached_pools] = {};

namespace {

void drop_caches() noexcept {
    for (ThreadCache*& cache : t_caches) {
        delete cache;
        cache = nullptr;
    }
}

void drop_at_thread_exit(void*) noexcept { drop_caches(); }

struct ExitKey {
    pthread_key_t key{};
    bool ok = false;
};

// The key whose destructor drops a thread's caches at its exit (created once). A forked
// child drops the forking thread's caches through fork_safety.cpp instead.
const ExitKey& exit_key() noexcept {
    static const ExitKey key = [] {
        ExitKey k;
        // Without the key, caches of exited threads leak their (private) memory: harmless.
        k.ok = pthread_key_create(&k.key, drop_at_thread_exit) == 0;
        return k;
    }();
    return key;
}

// Arms the thread-exit clean-up for the calling thread (once per thread is enough).
void arm_thread_exit() noexcept {
    if (exit_key().ok) pthread_setspecific(exit_key().key, t_caches);  // any non-null value
}

}  // namespace

void thread_caches_settle_for_fork() noexcept { (void)exit_key(); }

// The child's one thread: its caches hold the parent's entry and slots (fork_safety.cpp).
void thread_caches_forget_after_fork() noexcept { drop_caches(); }

bool thread_cache_is_stale(const ThreadCache& cache) noexcept { return cache.mapping->epoch() != cache.epoch; }

ThreadCache* thread_cache_create(PoolMapping* mapping, std::uint64_t epoch) noexcept {
    for (ThreadCache*& slot : t_caches) {
        if (slot != nullptr && thread_cache_is_stale(*slot)) {
            // Its pool was unmapped; that process-wide release handed its blocks back.
            delete slot;
            slot = nullptr;
        }
        if (slot == nullptr) {
            auto* cache = new (std::nothrow) ThreadCache();
            if (cache == nullptr) return nullptr;
            cache->mapping = mapping;
            cache->epoch = epoch;
            slot = cache;
            arm_thread_exit();
            return cache;
        }
    }
    return nullptr;
}

}  // namespace dragonmem::detail
