// The buddy allocator over a pool's heap. Its state is HeapState (pool_layout.hpp), the
// free map, and in-band headers in free blocks; every call must hold the pool lock.
//
// The free map (one bit per minimum block, between the manifest and the heap) says
// where a block on a free list starts. Merging a freed block needs to know whether its
// buddy is free, and the buddy's own bytes cannot tell without being read; but while it
// is allocated its owner may be writing them at that instant, without the lock (a data
// race, whatever the reader does). So the map is asked first, and the buddy's header is
// read (and its keyed tag checked) only when the map says a free block starts there.
// Only block starts are ever asked about, so the map is kept exact there: push_free
// sets the bit, remove_free clears it, and a block leaves the free lists only through
// remove_free; deferred and allocated blocks never have theirs set.
//
// Speed: a freed block goes onto a per-size "deferred" list (up to k_deferred_limit per
// size) instead of being coalesced at once, so the common alloc/free of one size is a
// list pop/push with no split/merge cascade. Coalescing is lazy: an allocation that finds
// no block coalesces every deferred block and retries, so any request that would succeed
// with eager coalescing succeeds here too (the fully coalesced free set is a function of
// the allocated set alone).
//
// Backing (pool_backing.hpp): a header is written only in a chunk backed first, and read
// only in a backed chunk; the one place that writes headers where none was before is a
// split (and format and rebuild), which backs the chunks of the new upper halves before
// it changes anything. alloc() then answers k_nil with the Backing's failure() set.
// The free map is touched only at the bits of block starts in backed chunks: backing a
// chunk backs the free-map page holding that chunk's bits first (pool_backing.hpp), so
// every bit is asked for after heap_backed() said yes, and a bit of a chunk never backed
// is known to be 0 without reading it (no header, so no free block, was ever there).
//
// Crash story: the heap is derived state. The manifest is the truth; if a process dies
// while holding the lock, repair rebuilds the heap from the live manifest records
// (rebuild()) with a new tag secret, so half-updated links and stale headers are ignored.
// The free map is rebuilt with it: a bit the dead process set or cleared half-way is
// redone for every block start (live starts cleared, free starts set).
#pragma once

#include "pool/pool_backing.hpp"
#include "pool/pool_layout.hpp"

#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dragonmem::detail {

struct HeapBlock {
    std::uint64_t offset;
    std::uint32_t order;
};

inline constexpr std::uint64_t k_deferred_limit = 64;
// alloc()'s answer when a list holds a block whose header was overwritten (a user wrote
// past its allocation): the caller repairs the heap from the manifest and retries.
inline constexpr std::uint64_t k_heap_corrupt = ~0ULL - 1;

class BuddyHeap {
public:
    BuddyHeap() = default;
    BuddyHeap(HeapState* state, std::uint8_t* heap_base, std::uint64_t* free_map, std::uint32_t min_order,
              std::uint32_t max_order, Backing* backing)
        : state_(state), base_(heap_base), free_map_(free_map), min_order_(min_order), max_order_(max_order),
          backing_(backing) {}

    // Bytes of the free map of a heap of `heap_bytes` with blocks of at least 2^min_order:
    // one bit per minimum block, in 64-bit words, rounded up to whole pages.
    static std::uint64_t free_map_bytes(std::uint64_t heap_bytes, std::uint32_t min_order) noexcept {
        std::uint64_t words = ((heap_bytes >> min_order) + 63) / 64;
        return (words * 8 + k_page_bytes - 1) / k_page_bytes * k_page_bytes;
    }

    // Fresh heap: one maximal free block. Its chunk (offset 0) must be backed, and the
    // free map must be all zero (a new object).
    void format(std::uint64_t secret);

    // Smallest order whose block holds `bytes` (bytes > 0). One lzcnt: no loop, no division.
    std::uint32_t order_for(std::uint64_t bytes) const noexcept {
        std::uint32_t order = bytes <= 1 ? 0 : static_cast<std::uint32_t>(std::bit_width(bytes - 1));
        return order < min_order_ ? min_order_ : order;
    }
    // The block a manifest record names, if it can be one: a size in (0, heap] and an
    // offset aligned to that size's block, inside the heap. Records live in shared
    // memory that anyone may overwrite, so every reader checks before trusting one.
    bool block_of(std::uint64_t requested_bytes, std::uint64_t offset, HeapBlock& out) const noexcept {
        std::uint64_t heap = heap_bytes();
        if (requested_bytes == 0 || requested_bytes > heap) return false;
        std::uint32_t order = order_for(requested_bytes);
        std::uint64_t size = std::uint64_t{1} << order;
        if ((offset & (size - 1)) != 0 || offset >= heap || size > heap - offset) return false;
        out = HeapBlock{offset, order};
        return true;
    }
    std::uint32_t min_order() const noexcept { return min_order_; }
    std::uint32_t max_order() const noexcept { return max_order_; }

    // A block of exactly `order`, k_nil when none can be had even after coalescing or
    // when splitting one needs memory /dev/shm cannot give (then the Backing's failed()
    // is set; the heap is as it was), or k_heap_corrupt (nothing was changed past the
    // bad block; repair, then retry).
    std::uint64_t alloc(std::uint32_t order);
    // Whether alloc(order) would succeed (may coalesce deferred blocks, nothing else).
    bool can_alloc(std::uint32_t order);
    // Returns a block (it must be allocated, of this order). Its start was a block start
    // before, so its chunk is backed; if not (a forged record), the block is left out of
    // the lists (the checker reports it lost, a repair retries).
    void free(std::uint64_t offset, std::uint32_t order);
    // Returns a block onto its size's deferred list whatever the limit (preallocation:
    // the first allocations of that size are list pops).
    void park_deferred(std::uint64_t offset, std::uint32_t order);
    // Coalesces every deferred block (the heap then is what eager coalescing would give);
    // false if a deferred block's header was found overwritten (repair, then retry).
    bool coalesce_deferred();
    // Rebuilds the free lists and the free map as the complement of `live` (sorted by
    // offset, aligned, non-overlapping), with a new tag secret.
    void rebuild(std::span<const HeapBlock> live_sorted, std::uint64_t new_secret);

    std::uint64_t free_bytes() const noexcept { return state_->free_bytes; }
    std::uint64_t heap_bytes() const noexcept { return std::uint64_t{1} << max_order_; }

    // Free blocks per order (index = order) as if every deferred block were coalesced;
    // reads only.
    void coalesced_counts(std::vector<std::uint64_t>& counts) const;

    // For the checker: every block on the free and deferred lists, validating links,
    // tags, alignment and bounds; problems are appended as sentences.
    void collect_listed_blocks(std::vector<HeapBlock>& out, std::vector<std::string>& problems) const;

private:
    FreeBlockHeader* header(std::uint64_t offset) const noexcept {
        return reinterpret_cast<FreeBlockHeader*>(base_ + offset);
    }
    std::uint64_t tag_for(std::uint64_t offset, std::uint32_t order, std::uint32_t kind) const noexcept;
    // The free map's bit for a block starting at `offset` (in the heap, aligned to the
    // minimum block).
    bool map_says_free(std::uint64_t offset) const noexcept {
        std::uint64_t index = offset >> min_order_;
        return ((free_map_[index / 64] >> (index % 64)) & 1) != 0;
    }
    void map_set(std::uint64_t offset, bool listed) noexcept {
        std::uint64_t index = offset >> min_order_;
        std::uint64_t mask = std::uint64_t{1} << (index % 64);
        if (listed)
            free_map_[index / 64] |= mask;
        else
            free_map_[index / 64] &= ~mask;
    }
    void reset_lists(std::uint64_t secret) noexcept;
    // Whether a block of `order` on a free list starts at `offset`; reads the block's
    // bytes only if the free map says a free block starts there.
    bool is_free_block(std::uint64_t offset, std::uint32_t order) const noexcept;
    // Backs the chunks where splitting a block of `have` at `offset` down to `order`
    // writes headers (the upper halves' starts).
    bool back_split(std::uint64_t offset, std::uint32_t have, std::uint32_t order) noexcept;
    // A listed block's header is ours: tag, and links that stay inside the heap.
    bool header_intact(std::uint64_t offset, std::uint32_t order, std::uint32_t kind) const noexcept;
    void push_free(std::uint64_t offset, std::uint32_t order) noexcept;
    void remove_free(std::uint64_t offset, std::uint32_t order) noexcept;
    void push_deferred(std::uint64_t offset, std::uint32_t order) noexcept;
    std::uint64_t pop_deferred(std::uint32_t order) noexcept;
    void free_coalescing(std::uint64_t offset, std::uint32_t order) noexcept;
    void walk_list(std::uint32_t order, bool deferred, std::vector<HeapBlock>& out,
                   std::vector<std::string>& problems) const;

    HeapState* state_ = nullptr;
    std::uint8_t* base_ = nullptr;
    std::uint64_t* free_map_ = nullptr;  // bit i: a free-listed block starts at i << min_order_
    std::uint32_t min_order_ = 0;
    std::uint32_t max_order_ = 0;
    Backing* backing_ = nullptr;
};

}  // namespace dragonmem::detail
