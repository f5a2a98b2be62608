// The calling thread's table of block caches (one per pool it allocates from), and
// their end: at thread exit they are handed back to their pools; in a forked child they
// are dropped (the blocks stay cached under the parent thread's entry, which the parent
// still owns).
#include "thread_cache.hpp"

#include "pool_mapping.hpp"

#include <pthread.h>

#include <new>

namespace dragonmem::detail {

namespace {

// Plain pointers, constant-initialised: the lookup on every alloc and free is a few
// loads from initial-exec TLS, with no guard and no registration.
__attribute__((tls_model("initial-exec"))) constinit thread_local ThreadCache* t_caches[k_thread_cached_pools] = {};

void flush_at_thread_exit(void*) noexcept {
    for (ThreadCache*& cache : t_caches) {
        if (cache == nullptr) continue;
        PoolMapping::hand_back_thread_cache(*cache);
        delete cache;
        cache = nullptr;
    }
}

void drop_after_fork() noexcept {
    for (ThreadCache*& cache : t_caches) {
        delete cache;
        cache = nullptr;
    }
}

pthread_key_t exit_key() noexcept {
    static const pthread_key_t key = [] {
        pthread_key_t k{};
        pthread_key_create(&k, flush_at_thread_exit);
        pthread_atfork(nullptr, nullptr, drop_after_fork);
        return k;
    }();
    return key;
}

}  // namespace

ThreadCache* thread_cache_find(const PoolMapping* mapping, std::uint64_t epoch) noexcept {
    for (ThreadCache* cache : t_caches)
        if (cache != nullptr && cache->mapping == mapping && cache->epoch == epoch) return cache;
    return nullptr;
}

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
            // Any non-null value makes the key's destructor run at thread exit.
            pthread_setspecific(exit_key(), t_caches);
            return cache;
        }
    }
    return nullptr;
}

}  // namespace dragonmem::detail
