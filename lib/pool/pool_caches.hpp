// PoolCaches: one mapped pool's side of the per-thread block caches: the lock-free
// alloc and free, the locked refill and flush, the claiming of shared cache entries,
// and the take-back of cached blocks to the heap (before an allocation fails, for
// statistics, at detach, and for threads that are gone). The protocol and why it is
// crash-safe are in thread_cache.hpp; each shared update in pool_caches.cpp says what a
// survivor sees if this process dies there. "_locked": the caller holds the pool lock.
#pragma once

#include "pool/tlsf_heap.hpp"
#include "pool/manifest.hpp"
#include "pool/pool_layout.hpp"
#include "pool/thread_cache.hpp"

#include <cstdint>

namespace dragonmem::detail {

// What an allocation is, as a descriptor needs it.
struct BlockInfo {
    std::uint64_t id = 0;
    std::uint64_t type = 0;
    std::uint64_t offset = 0;
    std::uint64_t requested_bytes = 0;
};

// Of the cache entries in `among`, those whose owner thread is gone (or that have no
// owner). Reads /proc once per owned entry.
std::uint64_t dead_cache_entries(const PoolHeader& header, std::uint64_t among) noexcept;
// Frees the entries in `entries` for other threads; their records were taken back first.
void release_cache_entries(PoolHeader& header, std::uint64_t entries) noexcept;

class PoolCaches {
public:
    // The views of the pool just mapped (they live in the same PoolMapping).
    void attach(PoolHeader* header, Manifest* manifest, TlsfHeap* heap) noexcept {
        header_ = header;
        manifest_ = manifest;
        heap_ = heap;
    }
    // A recycled mapping object starts with no entries claimed through it.
    void forget_claims() noexcept {
        my_entries_ = 0;
        my_entries_pid_ = 0;
    }
    bool holds_claims() const noexcept { return my_entries_ != 0; }

    // Lock-free: a block of size class `size_class` from the thread's magazine, as a live
    // allocation of `bytes` (a request of that class).
    bool alloc_from_cache(ThreadCache& cache, std::uint32_t size_class, std::uint64_t bytes, std::uint64_t type,
                          BlockInfo& out) noexcept;
    // The next id counter of a thread with a cache entry, from its id block (a new block
    // is reserved when it is used up); false when the id space is used up. No lock.
    bool take_counter(ThreadCache& cache, std::uint64_t& counter) noexcept;
    // Lock-free: parks live allocation `id`'s block in the thread's magazine.
    bool free_to_cache(ThreadCache& cache, std::uint64_t id) noexcept;
    // The calling thread's cache for `mapping` (at `epoch`), created (with a shared
    // entry) if it has none.
    ThreadCache* cache_for_this_thread_locked(PoolMapping* mapping, std::uint64_t epoch) noexcept;
    void refill_locked(ThreadCache& cache, std::uint32_t size_class) noexcept;
    void flush_magazine_locked(ThreadCache& cache, std::uint32_t size_class) noexcept;
    // Frees the record in `slot` if its id word still is `word` (one CAS): returns the
    // freed block's size class (>= 1), 0 if the record was implausible (no block freed),
    // -1 if the word had changed.
    int take_back_locked(std::uint64_t slot, std::uint64_t word) noexcept;
    // Retires the record in `slot` if its id word still is `word` (one CAS) and gives its
    // slot back; its block in `block` (bytes 0: the record was implausible), which the
    // caller must give to the heap. False if the word had changed.
    bool retire_locked(std::uint64_t slot, std::uint64_t word, HeapBlock& block) noexcept;
    // Bumps wake_seq after frees; true if sleepers must be woken (futex_wake_all, by the
    // caller, after unlock() where it can; pool_mapping.hpp).
    bool announce_frees_locked() noexcept;
    // Before an allocation fails, and for statistics: every cached block, and the claimed
    // ones of dead threads, go back to the heap; dead threads' entries are released.
    // Returns how many; in `left`, how many cache records remain.
    std::uint64_t take_back_all_cached_locked(std::uint64_t* left = nullptr) noexcept;
    // At the mapping's last release: the cached blocks of the entries claimed through it
    // go back, without waiting for the lock. `pool_gone`: unmapped or destroyed.
    void hand_back_process_caches(bool pool_gone) noexcept;

private:
    struct ReclaimPlan {
        std::uint64_t cached_of = 0;     // bit e: take entry e's cached blocks
        std::uint64_t dead_entries = 0;  // bit e: entry e's owner is known dead: take its claims too
        bool find_dead_claims = false;   // check the owners of claims found (reads /proc), undo the dead ones
    };
    // Takes cache records back to the heap; returns how many, in `left` how many cache
    // records remain, and in `claimed_left` the entries that still have a claimed (in
    // flight) record. A claimed record is only taken when its owner is dead.
    std::uint64_t reclaim_cached_locked(const ReclaimPlan& plan, std::uint64_t* left = nullptr,
                                        std::uint64_t* claimed_left = nullptr) noexcept;
    bool any_entry_owned_locked() const noexcept;
    // Frees the cached blocks of the dead threads among the owners of `among` (bit e:
    // entry e; /proc is read for those entries only) and releases their entries.
    void sweep_dead_entries_locked(std::uint64_t among = ~std::uint64_t{0}) noexcept;
    // The entries claimed through this mapping whose thread has exited (a cheap probe per
    // entry: no /proc read for a live thread), swept as above; before a thread claims an
    // entry (cache_for_this_thread_locked).
    void sweep_exited_threads_locked() noexcept;

    PoolHeader* header_ = nullptr;
    Manifest* manifest_ = nullptr;
    TlsfHeap* heap_ = nullptr;
    // Cache entries claimed through this mapping, the owner word each was claimed with,
    // and the process that claimed them (written under the pool lock; read at the last
    // release). A forked child inherits these: the pid tells it they are its parent's.
    std::uint64_t my_entries_ = 0;
    std::uint64_t my_entry_owner_[k_cache_entries] = {};
    std::uint32_t my_entries_pid_ = 0;
};

}  // namespace dragonmem::detail
