// The heap: a two-level segregated-fit allocator (TLSF) over whole 64 B granules. Its
// state is HeapState (pool_layout.hpp, pages 4-5), the free map, and in-band headers and
// footers in free blocks; every call must hold the pool lock.
//
// Sizes. A request of r bytes gets a block of block_bytes_for(r): r rounded up to whole
// granules, then up to the next size-class bound (classes are one granule apart up to 32
// granules, then 16 per power of two, so a block exceeds its granule-rounded request by
// less than 1/16, 1/32 on average). The block size is a function of the requested size
// alone, so the manifest record {offset, requested} says exactly which bytes a block
// holds: repair and check derive the free space from the manifest as before, and a
// cached block (thread_cache.hpp) of one class serves every request of that class.
//
// Alignment. Every block starts on a granule (64 B at least). A block whose size is a
// power of two up to 4 KiB (k_aligned_block_max) is aligned to its size: requests of 2^k
// <= 4 KiB, and every request rounding to such a block, are 2^k-aligned. alloc() carves
// the block at the first aligned offset of a free block and returns the leading gap to
// the lists. Larger blocks are granule-aligned only.
//
// Lists. List i holds the free blocks of [lower_bound(i), lower_bound(i + 1)) granules; a
// bitmap per power of two and one over them find the first non-empty list at or above a
// class in two bit scans. A request's block size is itself a class bound, so any block
// on its class's list, or above, fits (no list is searched block by block), except for
// alignment: if the head does not fit aligned, a block of size + alignment - granule
// from a higher list does, else the blocks of the lists in between are tried one by one
// (only a request that would otherwise fail gets there; every fitting block is found, so
// can_alloc and largest_request say what alloc does).
//
// Coalescing is immediate: a freed block merges with a free block ending right before it
// and one starting right after it, so a pool whose allocations are all freed is one free
// block again. The free map (one bit per granule, between the manifest and the heap)
// says where free blocks start and end: its bits are exact at the first and last granule
// of every block (set for a free block, clear for an allocated one; interior bits mean
// nothing). A merge asks the map first and reads a neighbour's header or footer (and
// checks its keyed tag) only when the map says a free block starts or ends there: never
// the bytes of an allocated block, which its owner may be writing this instant, without
// the lock. Every operation that makes a granule a block's first or last writes its bit.
//
// Backing (pool_backing.hpp): a header or footer is written only in a chunk backed first,
// and read only in a backed chunk. alloc() and free() back the chunks where they will
// write before changing anything; alloc() then answers k_nil with the Backing's failure
// set. A map bit is read or written only once a chunk holding part of its granule is
// backed (backing a chunk backs the free-map page with its granules' bits); a granule
// with no backed chunk never held a header or footer, so its bit is known to be 0.
//
// Crash story: the heap is derived state. The manifest is the truth; if a process dies
// while holding the lock, repair rebuilds the heap from the live manifest records
// (rebuild()): every gap between live blocks becomes one free block, the map bits at the
// live blocks' first and last granules are cleared, and a new tag secret makes every
// old header and footer unrecognisable (a half-written one included). Links are not
// covered by the tag, but no old link survives: the lists are emptied and every free
// block's header is written anew, links included.
#pragma once

#include "pool/pool_backing.hpp"
#include "pool/pool_layout.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dragonmem::detail {

struct HeapBlock {
    std::uint64_t offset;
    std::uint64_t bytes;
};

// Blocks of a power-of-two size up to this are aligned to their size.
inline constexpr std::uint64_t k_aligned_block_max = 4096;
// alloc()'s answer when a list holds a block whose header was overwritten (a user wrote
// past its allocation): the caller repairs the heap from the manifest and retries.
inline constexpr std::uint64_t k_heap_corrupt = ~0ULL - 1;

// The size classes, in granules (pool_layout.hpp, HeapState). List `list` is
// step * 16 + m for a step (log2 of the class spacing) and m in [16, 32), or m = list
// below 32 (step 0: one granule apart). No branches: sizes of a mixed workload fall on
// either side of 32 granules at random, and a branch there was mispredicted on about
// every other cached alloc and free (measured with cachegrind's branch simulation).
struct SizeClasses {
    // log2 of the class spacing around `granules` (>= 1): 0 below 32 granules, then
    // bit_width - 5 (16 classes per power of two).
    static constexpr std::uint32_t step_of(std::uint64_t granules) noexcept {
        return static_cast<std::uint32_t>(std::bit_width(granules | k_heap_sl_count)) - (k_heap_sl_log2 + 1);
    }
    // The list of a block of `granules` (>= 1) granules.
    static constexpr std::uint32_t list_of(std::uint64_t granules) noexcept {
        const std::uint32_t step = step_of(granules);
        return step * k_heap_sl_count + static_cast<std::uint32_t>(granules >> step);
    }
    // The smallest size of list `list`, in granules.
    static constexpr std::uint64_t lower_bound(std::uint32_t list) noexcept {
        const std::uint32_t step = std::max(list / k_heap_sl_count, 1u) - 1;
        return std::uint64_t{list - step * k_heap_sl_count} << step;
    }
    // `granules` rounded up to a class bound.
    static constexpr std::uint64_t round_up(std::uint64_t granules) noexcept {
        const std::uint64_t spacing = std::uint64_t{1} << step_of(granules);
        return (granules + spacing - 1) & ~(spacing - 1);
    }
    // list_of(round_up(granules)), in one go: the granule count rounded up to the class
    // spacing, as a count of 16..32 spacings (32 is the next power's first class, which
    // the sum gives as well).
    static constexpr std::uint32_t list_for(std::uint64_t granules) noexcept {
        const std::uint32_t step = step_of(granules);
        const auto spacings = static_cast<std::uint32_t>((granules + (std::uint64_t{1} << step) - 1) >> step);
        return step * k_heap_sl_count + spacings;
    }
};
static_assert(SizeClasses::list_of(31) == 31 && SizeClasses::list_of(32) == 32 && SizeClasses::list_of(33) == 32);
static_assert(SizeClasses::lower_bound(SizeClasses::list_of(std::uint64_t{1} << 40)) == std::uint64_t{1} << 40);
static_assert(SizeClasses::list_of(std::uint64_t{1} << 40) < k_heap_lists, "a 2^46 B heap of 64 B granules has a list");
static_assert(SizeClasses::round_up(33) == 34 && SizeClasses::round_up(64) == 64 && SizeClasses::round_up(65) == 68);
static_assert(SizeClasses::list_of(1) == 1 && SizeClasses::list_of(16) == 16 && SizeClasses::list_of(34) == 33 &&
              SizeClasses::list_of(64) == 48 && SizeClasses::lower_bound(1) == 1 && SizeClasses::lower_bound(31) == 31 &&
              SizeClasses::lower_bound(33) == 34 && SizeClasses::lower_bound(48) == 64);
static_assert(SizeClasses::list_for(1) == 1 && SizeClasses::list_for(31) == 31 && SizeClasses::list_for(33) == 33 &&
              SizeClasses::list_for(63) == 48 && SizeClasses::list_for(64) == 48 && SizeClasses::list_for(65) == 49);

class TlsfHeap {
public:
    TlsfHeap() = default;
    TlsfHeap(HeapState* state, std::uint8_t* heap_base, std::uint64_t* free_map, std::uint32_t min_block_order,
             std::uint64_t heap_bytes, Backing* backing)
        : state_(state),
          base_(heap_base),
          free_map_(free_map),
          g_(granule_order_for(min_block_order)),
          granule_mask_((std::uint64_t{1} << g_) - 1),
          heap_bytes_(heap_bytes),
          backing_(backing) {}

    // The granule: 64 B, or the pool's minimum block when that is larger.
    static std::uint32_t granule_order_for(std::uint32_t min_block_order) noexcept {
        return granule_order_of(min_block_order);  // pool_backing.hpp: the free map's bits
    }
    // Bytes of the free map of a heap of `heap_bytes`: one bit per granule, in 64-bit
    // words, rounded up to whole pages.
    static std::uint64_t free_map_bytes(std::uint64_t heap_bytes, std::uint32_t min_block_order) noexcept {
        std::uint64_t words = ((heap_bytes >> granule_order_for(min_block_order)) + 63) / 64;
        return (words * 8 + k_page_bytes - 1) / k_page_bytes * k_page_bytes;
    }

    // Fresh heap: one free block, the whole heap. Backs the last chunk (the footer's);
    // false (the Backing says why) if it cannot. The free map must be all zero.
    bool format(std::uint64_t secret);

    std::uint32_t granule_order() const noexcept { return g_; }
    std::uint64_t granule_bytes() const noexcept { return std::uint64_t{1} << g_; }
    std::uint64_t heap_bytes() const noexcept { return heap_bytes_; }

    // The block a request of `requested` (1..heap) bytes gets. A few instructions.
    std::uint64_t block_bytes_for(std::uint64_t requested) const noexcept {
        const std::uint64_t granules = ((requested - 1) >> g_) + 1;
        return SizeClasses::round_up(granules) << g_;
    }
    // The alignment of a block of `block_bytes` (a class bound): its size for a power of
    // two up to k_aligned_block_max, else the granule.
    std::uint64_t alignment_of(std::uint64_t block_bytes) const noexcept { return alignment_mask_of(block_bytes) + 1; }
    // alignment_of - 1, without a branch: with 16 classes per power of two, whether a
    // cached allocation's block is a power of two is as good as random in a mixed-size
    // workload, and the branch this was (a ?: on it) was mispredicted on most of them
    // (callgrind's branch simulation: 0.74 per cached allocation of the mixed workload;
    // the buddy heap's cached paths: none). ((x & (x - 1)) == 0 rather than
    // std::has_single_bit: without -mpopcnt the latter is a library call; one AND tests
    // "no other bit below, and none above k_aligned_block_max".)
    std::uint64_t alignment_mask_of(std::uint64_t block_bytes) const noexcept {
        const std::uint64_t below = block_bytes - 1;
        const auto natural = static_cast<std::uint64_t>((block_bytes & (below | ~(2 * k_aligned_block_max - 1))) == 0);
        // A natural block is a power of two of at least a granule: its mask holds the
        // granule's. (Written as a ?:, GCC 12 makes it a branch.)
        return (below & (0 - natural)) | granule_mask_;
    }
    // class_of(block_bytes_for(requested)) in one bit scan (the cached paths' lookup).
    std::uint32_t class_for_request(std::uint64_t requested) const noexcept {
        return SizeClasses::list_for(((requested - 1) >> g_) + 1);
    }
    // The size class (list index) of a block of `block_bytes`, and back.
    std::uint32_t class_of(std::uint64_t block_bytes) const noexcept { return SizeClasses::list_of(block_bytes >> g_); }
    std::uint64_t class_bytes(std::uint32_t list) const noexcept { return SizeClasses::lower_bound(list) << g_; }

    // The block a manifest record names, if it can be one: a size in (0, heap] and an
    // offset aligned as that block must be, the block inside the heap. Records live in
    // shared memory that anyone may overwrite, so every reader checks before trusting one.
    bool block_of(std::uint64_t requested_bytes, std::uint64_t offset, HeapBlock& out) const noexcept {
        if (requested_bytes == 0 || requested_bytes > heap_bytes_) return false;
        const std::uint64_t bytes = block_bytes_for(requested_bytes);
        if ((offset & (alignment_of(bytes) - 1)) != 0 || offset >= heap_bytes_ || bytes > heap_bytes_ - offset)
            return false;
        out = HeapBlock{offset, bytes};
        return true;
    }

    // A block of `block_bytes` (a value of block_bytes_for), aligned as alignment_of says:
    // its offset; k_nil when none fits or when writing the split needs memory /dev/shm
    // cannot give (then the Backing's failed() is set; the heap is as it was); or
    // k_heap_corrupt (nothing was changed; repair, then retry).
    std::uint64_t alloc(std::uint64_t block_bytes) {
        std::uint64_t one = 1;
        return alloc_run(block_bytes, one);
    }
    // Up to `count` blocks of `block_bytes` (a value of block_bytes_for) side by side,
    // carved from the free block alloc() would take (the best fit of one block; `count`
    // becomes how many it held, at least 1): the first's offset, or k_nil /
    // k_heap_corrupt as alloc() says.
    // Each block is aligned as alignment_of(block_bytes) says, the chunks of each one's
    // ends are backed and its first and last granules' map bits are clear: each can be
    // freed on its own later, exactly as if alloc() had carved it. A thread cache's
    // refill takes its blocks this way: one list search and one split for the whole run.
    std::uint64_t alloc_run(std::uint64_t block_bytes, std::uint64_t& count);
    // Whether alloc(block_bytes) would find a block (changes nothing).
    bool can_alloc(std::uint64_t block_bytes) const;
    // Returns an allocated block, merging it with free neighbours. If the chunks of its
    // header and footer cannot be backed (a forged record), it is left out of the lists
    // (the checker reports it lost, a repair retries).
    void free(std::uint64_t offset, std::uint64_t bytes);
    // Rebuilds the lists and the free map as the complement of `live` (sorted by offset,
    // non-overlapping), with a new tag secret: each gap is one free block.
    void rebuild(std::span<const HeapBlock> live_sorted, std::uint64_t new_secret);

    std::uint64_t free_bytes() const noexcept { return state_->free_bytes; }
    std::uint64_t free_block_count() const noexcept { return state_->free_blocks; }
    std::uint64_t tag_secret() const noexcept { return state_->tag_secret; }

    // Statistics (read only). The largest listed free block (0: none); the largest request
    // that can succeed now (0: none; exactly the largest r with can_alloc(block_bytes_for(r)));
    // and free blocks by size, counts[k] holding those of
    // [2^k, 2^(k+1)) bytes (k < 64).
    HeapBlock largest_free_block() const noexcept;
    std::uint64_t largest_request() const noexcept;
    void free_histogram(std::vector<std::uint64_t>& counts) const;

    // For the checker: every listed free block, validating links, tags, footers, map
    // bits, classes and bounds; problems are appended as sentences.
    void collect_listed_blocks(std::vector<HeapBlock>& out, std::vector<std::string>& problems) const;
    // For the checker: whether the free map marks the granule holding `offset` as a free
    // block's first or last (false where no chunk of that granule was ever backed). At
    // an allocated block's first or last granule it must not: a neighbour's free() would
    // read the allocation's bytes as a header or footer.
    bool map_marks_free(std::uint64_t offset) const noexcept { return map_says_free(offset); }

private:
    struct Fit {
        std::uint64_t offset = 0;  // the free block
        std::uint64_t bytes = 0;
        std::uint64_t start = 0;  // where the allocation goes in it
    };
    enum class FitResult { found, none, corrupt };

    FreeBlockHeader* header(std::uint64_t offset) const noexcept {
        return reinterpret_cast<FreeBlockHeader*>(base_ + offset);
    }
    FreeBlockFooter* footer(std::uint64_t end) const noexcept {
        return reinterpret_cast<FreeBlockFooter*>(base_ + end - sizeof(FreeBlockFooter));
    }
    std::uint64_t tag_for(std::uint64_t offset, std::uint64_t bytes, std::uint32_t kind) const noexcept;
    // The map bit of the granule holding heap offset `offset`, read or written only when a
    // chunk holding part of that granule is backed.
    bool bit_readable(std::uint64_t granule) const noexcept;
    bool map_says_free(std::uint64_t offset) const noexcept;
    void map_set(std::uint64_t offset, bool free) noexcept;
    void map_clear_if_readable(std::uint64_t offset) noexcept;
    void reset_lists(std::uint64_t secret) noexcept;
    // A listed block's header is ours (tag, size, links that stay in backed chunks);
    // `bytes` 0: any size. Reads only backed memory.
    bool header_intact(std::uint64_t offset, std::uint64_t bytes) const noexcept;
    // The first non-empty list at or above `list`, or k_heap_lists.
    std::uint32_t first_list_from(std::uint32_t list) const noexcept;
    // A free block holding `bytes` at an offset aligned to `align`.
    FitResult find_fit(std::uint64_t bytes, std::uint64_t align, Fit& fit) const noexcept;
    bool fits(std::uint64_t offset, std::uint64_t size, std::uint64_t bytes, std::uint64_t align,
              std::uint64_t& start) const noexcept;
    void insert(std::uint64_t offset, std::uint64_t bytes) noexcept;
    void remove(std::uint64_t offset, std::uint64_t bytes) noexcept;
    void move_start(std::uint64_t offset, std::uint64_t bytes, std::uint64_t new_offset) noexcept;
    void walk_list(std::uint32_t list, std::vector<HeapBlock>& out, std::vector<std::string>& problems) const;

    HeapState* state_ = nullptr;
    std::uint8_t* base_ = nullptr;
    std::uint64_t* free_map_ = nullptr;  // bit i: granule i is a free block's first or last
    std::uint32_t g_ = k_granule_order_floor;
    std::uint64_t granule_mask_ = (std::uint64_t{1} << k_granule_order_floor) - 1;  // granule bytes - 1
    std::uint64_t heap_bytes_ = 0;
    Backing* backing_ = nullptr;
};

}  // namespace dragonmem::detail
