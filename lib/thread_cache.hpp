// Per-thread block caches: what makes an alloc+free pair lock-free in the common case.
//
// A thread that allocates from a pool claims one of the pool's k_cache_entries shared
// entries (PoolHeader::cache_entries) and keeps, in private memory, one small stack
// ("magazine") of manifest slots per block size. A block in a magazine stays allocated
// as far as the heap is concerned; its manifest record's id word says "cached by entry
// E" (manifest.hpp). Then:
//   free:  CAS the record's id from the allocation's id to cached(E), push the slot.
//   alloc: pop a slot, CAS cached(E) -> claimed(E), take an id (one fetch_add), write
//          the size and type, store the id (release).
// No lock, no heap work, three atomic read-modify-writes per pair, none of them on a
// line another thread writes in the steady state.
//
// Why this is crash-safe and never loses memory:
// - The manifest stays the truth: every block is on a heap list, or named by exactly one
//   record (live, cached or claimed). A process killed at any instant leaves records in
//   one of those states; repair keeps the blocks of live owners and frees those whose
//   owner thread is dead (owner words are checked like the lock's, robust_lock.hpp).
// - Cached blocks are never out of reach: an allocation that fails, and the statistics
//   calls, first take every cached (not claimed) block back to the heap under the lock,
//   by the same CAS; the owner's next pop then fails its CAS and drops the stale slot.
// - A magazine may hold stale or duplicate slots (taken back, then cached again); the
//   CAS on the id word and a size check after claiming make those harmless.
//
// Bounded: a magazine holds at most k_magazine_slots blocks and at most
// min(k_cache_budget_bytes, heap / 64) bytes per size, and a thread's refills grow
// 1, 2, 4... so one-off users (the CLI) cache nothing.
#pragma once

#include "pool_layout.hpp"

#include <cstdint>

namespace dragonmem::detail {

class PoolMapping;

inline constexpr std::uint32_t k_magazine_slots = 64;
inline constexpr std::uint64_t k_cache_budget_bytes = 8ULL << 20;
inline constexpr std::uint32_t k_thread_cached_pools = 4;  // pools a thread caches for at once
inline constexpr std::uint32_t k_no_entry = ~0u;

struct Magazine {
    std::uint32_t count = 0;
    std::uint32_t cap = 0;   // 0: this size is not cached
    std::uint32_t warm = 0;  // blocks the next refill takes (doubles up to cap)
    std::uint32_t slots[k_magazine_slots];
};

// One thread's cache for one mapped pool; private to the thread.
struct ThreadCache {
    PoolMapping* mapping = nullptr;
    std::uint64_t epoch = 0;          // the mapping's epoch when created: stale once it differs
    std::uint32_t entry = k_no_entry;  // shared entry index; k_no_entry: none could be had
    Magazine mags[k_max_orders];
};

// The calling thread's cache for `mapping` at `epoch`, or nullptr. No lock, no atomics.
ThreadCache* thread_cache_find(const PoolMapping* mapping, std::uint64_t epoch) noexcept;

// A new, empty cache for `mapping` at `epoch`, installed for the calling thread (caches
// of mappings that are gone are deleted first); nullptr when the thread already caches
// for k_thread_cached_pools live pools or memory is short.
ThreadCache* thread_cache_create(PoolMapping* mapping, std::uint64_t epoch) noexcept;

// Whether a cache is stale (its mapping was unmapped or recycled).
bool thread_cache_is_stale(const ThreadCache& cache) noexcept;

}  // namespace dragonmem::detail
