// Per-thread block caches: what makes an alloc+free pair lock-free in the common case.
//
// A thread's second locked allocation in a pool claims one of the pool's
// k_cache_entries shared entries (PoolHeader::cache_entries, owner = the thread's owner
// word) and from then on keeps, in private memory, one small stack ("magazine") of
// manifest slots per size class (tlsf_heap.hpp: a block's size is a function of the
// requested size, so every request of a class can take any cached block of it). A block in a magazine stays allocated as far as the
// heap is concerned; its manifest record's id word says "cached by entry E"
// (manifest.hpp). Then:
//   free:  read the block's class from its record (a hint the allocation wrote,
//          pool_layout.hpp), CAS the record's id from the allocation's id to cached(E),
//          push the slot onto that class's magazine, count it (one plain store to entry
//          E's IdBlock, pool_layout.hpp).
//   alloc: pop a slot, CAS cached(E) -> claimed(E), check the record's size is of the
//          class (a stale or wrongly filed slot is unclaimed and dropped), take the next
//          counter of the thread's id block (private; one plain store publishes it in
//          entry E's IdBlock, and once per k_id_block_counters allocations one CAS
//          reserves a new block, manifest.hpp), write size, type and class, store the id
//          (release), count it in the IdBlock.
// No lock and no heap work: two atomic read-modify-writes per pair, both on the
// record's line, and every line written is one the thread's own process wrote last
// (its records, its id block), so threads in different processes share no line in
// the steady state. The CAS on the free is what detects a double free (and a free
// racing a take-back); the claim CAS is what a lock holder's take-back races with.
//
// Why this is crash-safe and never loses memory:
// - The manifest stays the truth: every block is on a heap list, or named by exactly one
//   record (live, cached or claimed). Whenever a process dies, records are in one of
//   those states.
// - Only a lock holder turns a cache record back into a free block, by CAS on the id
//   word. A cached record may be taken from any thread (its owner's next pop then fails
//   its CAS and drops the stale slot). A claimed record is taken only once its owner
//   thread is confirmed dead (owner words are checked like the lock's, robust_lock.hpp):
//   a live owner may be writing it this instant.
// - Takers: an allocation that would fail (all cached blocks, dead threads' claims),
//   the statistics calls (same), repair (dead threads' records), the last detach of a
//   mapping in a process (the cached blocks of the entries claimed through it; never
//   waits for the lock), a thread claiming an entry (the entries of its own process's
//   exited threads, pool_caches.cpp), and a thread that finds every entry taken (dead
//   threads' entries). A thread that exits leaves its blocks cached under an entry whose owner is
//   now dead; exit itself never touches the pool (it must not block on the lock).
//   A forked child never takes back or releases its parent's entries: the mapping
//   object it inherited records which process claimed them (my_entries_pid_).
// - A magazine may hold stale, duplicate or wrongly filed slots (a damaged class hint);
//   the CAS on the id word and a check of the record's size and offset after claiming
//   make those harmless.
// - A refill carves its blocks in runs (each from the free block that best fits one) and a
//   full magazine gives blocks back in runs (tlsf_heap.hpp, alloc_run; pool_caches.cpp):
//   under the lock, each block committed or retired by its own record, so a death in
//   between leaves what repair rebuilds from.
//
// Bounded: blocks up to min(k_cache_budget_bytes, heap / 64) are cached; a magazine
// holds at most k_magazine_slots blocks, k_cache_class_bytes of them but at least
// k_magazine_min_slots, and never more than that first bound in bytes; magazines come in
// groups of the 16 classes of one power of two, allocated when a thread first refills
// one of them (4 KiB of slots each, at most k_cache_groups; the classes' counts are in
// the ThreadCache); refills grow 1, 2, 4... blocks, take at most k_refill_bytes of them
// (but at least k_refill_min_blocks) and at most 1/16 of the free slots and bytes; a
// thread with a sleeper waiting refills nothing. A thread caches for at most
// k_thread_cached_pools pools, and at most k_cache_entries threads per pool cache at
// once; the others use the locked path.
#pragma once

#include "pool/pool_layout.hpp"
#include "pool/tlsf_heap.hpp"

#include <array>
#include <cstdint>

namespace dragonmem::detail {

class PoolMapping;

inline constexpr std::uint64_t k_magazine_slots = 64;
inline constexpr std::uint64_t k_cache_budget_bytes = 8ULL << 20;
// What one class's magazine may hold, and what one refill may take, in bytes, sized for
// 16 classes per power of two: a mixed-size workload keeps over 100 magazines in use,
// each a random walk between empty and full, so a thread parks about half of the sum of
// its classes' limits. With 8 MiB per class and refills doubling to 64 blocks, the
// benchmark's mixed workload (two threads, 32 B - 64 KiB, 4 MiB live) parked about
// 100 MB; the heap pages of that spread were backed under the pool lock as they were
// first touched, and its first reps ran at half the buddy heap's speed (which has 16
// times fewer classes). With these limits, ~68 MB (docs/design.md §4.7). The floors keep
// large blocks as they were: 8 blocks of 1 MiB per magazine and per refill.
inline constexpr std::uint64_t k_cache_class_bytes = 1ULL << 20;
inline constexpr std::uint64_t k_magazine_min_slots = 8;
inline constexpr std::uint64_t k_refill_bytes = 256ULL << 10;
inline constexpr std::uint64_t k_refill_min_blocks = 8;
inline constexpr std::uint32_t k_thread_cached_pools = 4;  // pools a thread caches for at once
inline constexpr std::uint32_t k_no_entry = ~0u;
// Groups of magazines: the classes of blocks up to k_cache_budget_bytes of 64 B granules
// (class 224 is 2^17 granules, 8 MiB); larger blocks are never cached.
inline constexpr std::uint32_t k_cache_groups = 15;

inline constexpr std::uint32_t k_cached_classes = k_cache_groups * k_heap_sl_count;
// The block size of each cached class in granules (SizeClasses::lower_bound), and of
// class 0 (0): a cached allocation checks the block it pops with two loads from here
// instead of recomputing the request's class (tlsf_heap.hpp).
inline constexpr auto k_cached_class_granules = [] {
    std::array<std::uint32_t, k_cached_classes> granules{};
    for (std::uint32_t c = 1; c < k_cached_classes; ++c)
        granules[c] = static_cast<std::uint32_t>(SizeClasses::lower_bound(c));
    return granules;
}();
static_assert(k_cached_class_granules[1] == 1 && k_cached_class_granules[32] == 32 &&
              k_cached_class_granules[k_cached_classes - 1] == SizeClasses::lower_bound(k_cached_classes - 1));
static_assert(k_magazine_slots <= 255, "a magazine's count and cap are bytes");

// A class's magazine, less its slots: 4 bytes. The heads of all classes lie together in
// the ThreadCache (15 lines), apart from the slots: every cached alloc and free reads its
// class's head, and with heads beside their 256 B of slots, a mixed-size workload (over
// 100 classes in use, each reused only every hundred calls or so) missed L1 on the head
// of nearly every call.
struct MagazineHead {
    std::uint8_t count = 0;
    std::uint8_t cap = 0;   // 0: this class is not cached (or its group is not allocated yet)
    std::uint8_t warm = 0;  // blocks the next refill takes (doubles up to cap; k_refill_bytes bounds it)
    // The thread has freed a block of this class into the magazine: only then does a
    // refill take blocks from the heap. A thread that only allocates (filling a pool)
    // parks nothing: blocks parked in caches are holes the heap cannot coalesce, and
    // random sizes would scatter them over the whole pool (measured: 92 % instead of
    // 98 % of a pool held by a fill of 1 B - 1 MiB requests).
    bool recycled = false;
};
// The slots of the magazines of the 16 classes of one power of two (4 KiB), allocated
// when a thread first refills one of them. Depth first: slots[d][i] is the d-th slot of
// class group * 16 + i, so the tops of the 16 classes' stacks share a line while they
// are shallow. A mixed-size workload uses over 100 classes, each holding a few blocks:
// stored class by class (256 B each), every class's top was a line of its own, over 100
// lines that pushed the manifest records out of L1 (measured with callgrind's cache
// simulation: 0.3 more L1 misses per call); depth first, a few lines per group.
struct alignas(64) MagazineGroup {  // whole cache lines: never a line shared with another thread's group
    std::uint32_t slots[k_magazine_slots][k_heap_sl_count];
};

// One thread's cache for one mapped pool; private to the thread.
struct ThreadCache {
    PoolMapping* mapping = nullptr;
    std::uint64_t epoch = 0;           // the mapping's epoch when created: stale once it differs
    std::uint32_t entry = k_no_entry;  // shared entry index; k_no_entry: none (yet)
    bool gave_up = false;              // no entry could be had: stay uncached
    std::uint32_t slow_allocs = 0;     // locked allocations so far (an entry is claimed at the 2nd)
    std::uint64_t id_next = 0;         // the thread's id block: counters [id_next, id_end) not issued yet
    std::uint64_t id_end = 0;          //   (mirrored in the entry's IdBlock; empty: reserve one)
    MagazineGroup* groups[k_cache_groups] = {};  // owned; null until a class of it is refilled
    // Per class: count, cap (non-zero only once the class's group exists), refill state.
    alignas(64) MagazineHead heads[k_cached_classes] = {};
    // Lock-free allocations and frees of the entry so far (mirrored in its IdBlock; loaded
    // from it when the entry is claimed, since counts carry over between owners).
    std::uint64_t allocs = 0;
    std::uint64_t frees = 0;

    ThreadCache() = default;
    ThreadCache(const ThreadCache&) = delete;
    ThreadCache& operator=(const ThreadCache&) = delete;
    ~ThreadCache() { drop_magazines(); }
    void drop_magazines() noexcept {
        for (MagazineGroup*& group : groups) {
            delete group;
            group = nullptr;
        }
        for (MagazineHead& head : heads) head = MagazineHead{};
    }
};

// Stops refills of every class until the thread frees a block of it again.
inline void stop_refills(ThreadCache& cache) noexcept {
    for (MagazineHead& head : cache.heads) {
        head.recycled = false;
        head.warm = 0;
    }
}

// The head of size class `size_class`'s magazine, or nullptr when that class is never cached.
inline MagazineHead* magazine_head(ThreadCache& cache, std::uint32_t size_class) noexcept {
    return size_class < k_cached_classes ? &cache.heads[size_class] : nullptr;
}
// The first slot of a class whose head has a non-zero cap (so its group exists); its
// d-th slot is k_heap_sl_count further on per d (MagazineGroup).
inline std::uint32_t* magazine_slots(ThreadCache& cache, std::uint32_t size_class) noexcept {
    return &cache.groups[size_class / k_heap_sl_count]->slots[0][size_class % k_heap_sl_count];
}
// Push and pop; the caller checked the count against the cap, or against 0.
inline void magazine_push(MagazineHead& head, std::uint32_t* slots, std::uint32_t slot) noexcept {
    slots[std::size_t{head.count++} * k_heap_sl_count] = slot;
}
inline std::uint32_t magazine_pop(MagazineHead& head, const std::uint32_t* slots) noexcept {
    return slots[std::size_t{--head.count} * k_heap_sl_count];
}

// The calling thread's caches (thread_cache.cpp). Plain pointers, constant-initialised:
// the lookup on every alloc and free is a few loads, with no TLS guard. The default TLS
// model on purpose, not initial-exec: lib/meson.build says why.
extern constinit thread_local ThreadCache* t_caches[k_thread_cached_pools];

// The calling thread's cache for `mapping` at `epoch`, or nullptr. No lock, no atomics.
inline ThreadCache* thread_cache_find(const PoolMapping* mapping, std::uint64_t epoch) noexcept {
    for (ThreadCache* cache : t_caches)
        if (cache != nullptr && cache->mapping == mapping && cache->epoch == epoch) return cache;
    return nullptr;
}

// A new, empty cache for `mapping` at `epoch`, installed for the calling thread (caches
// of mappings that are gone are deleted first); nullptr when the thread already caches
// for k_thread_cached_pools live pools or memory is short.
ThreadCache* thread_cache_create(PoolMapping* mapping, std::uint64_t epoch) noexcept;

// Whether a cache is stale (its mapping was unmapped or recycled).
bool thread_cache_is_stale(const ThreadCache& cache) noexcept;

}  // namespace dragonmem::detail
