// Backing a sparse pool object before the library touches it.
//
// /dev/shm is tmpfs: ftruncate makes the object's size, not its memory. A page gets its
// memory on first touch (read or write), and a touch tmpfs cannot back (the file system
// is full) is a SIGBUS in whichever code touched it. A library that dies of SIGBUS
// while holding the pool lock takes every process of the pool with it, so the library
// touches no page of the object it has not backed first (or written with pwrite, which
// fails with ENOSPC instead):
//   - the header and the backing map: at creation;
//   - manifest records: only records below the used extent are ever read or written,
//     and that extent only grows, so one counter (PoolHeader::manifest_backed) says how
//     far they are backed; the extent grows in steps of k_manifest_backing_step_bytes,
//     and a step that cannot be backed fails the allocation that needed it;
//   - the heap: the library writes only free blocks' headers (a block's first 32 bytes)
//     and footers (the last 16 bytes of its last granule), and reads only those (and
//     list links read from them). A heap page is backed before the first header or
//     footer is written in it and its bit set in the backing map; one in a page whose
//     bit is clear cannot be one the library wrote, so it is never read (a corrupt link
//     pointing there is treated like any other corrupt link).
//     The map (one bit per page, 1/32768 of the heap) is itself sparse: a page of it is
//     backed before its first bit is set, and the directory page says which are. For
//     heaps over 4 TiB a bit stands for more than a page, so the map stays <= 128 MiB
//     and the directory one page.
//   - the free map (tlsf_heap.hpp: one bit per 64 B granule, 1/512 of the heap): its
//     bits are set and cleared under the lock at free blocks' first and last granules,
//     where a header or footer is written or read, so in a backed chunk. Backing a chunk
//     backs the free-map page(s) holding the bits of every granule the chunk overlaps
//     before the chunk's bit is set; so "chunk backed" implies "its free-map bits have
//     memory", and the heap asks heap_backed() before it reads a bit (a granule no backed
//     chunk overlaps never held a header or footer: its bit is 0, known without a read).
//     No second map is needed. Cost: one more system call per page of the free map (2^15
//     granules, 2 MiB of heap), once for the pool's life: a chunk whose free-map page
//     holds the bit of another backed chunk skips it (free_map_page_backed). Space: at most
//     the free map's pages over the backed chunks, 1/512 of the heap backed plus a page.
// Users' own reads and writes of their allocations are theirs: a pool created with
// "reserve" (PoolOptions::reserve, dragonmem create --reserve) has every page backed at
// creation, so nothing in it can fault.
//
// Crash argument: a bit or the counter is stored only after the kernel confirmed the
// memory (for a chunk: its map page, its free-map page and the chunk itself), and the
// memory stays (nothing in the library gives pages back). Killed between the two, the
// range is backed but not marked: the next toucher backs it again, which costs a system
// call and changes nothing. Bits are only ever set; the counter only grows.
//
// Bounded: the directory is one page, the map 1/32768 of the heap and backed as used;
// backing happens once per page (or manifest step) for the pool's life, a call backing
// up to k_chunks_per_backing heap pages, so steady-state allocation makes no system
// call. A reserved pool skips all of it (fully_backed).
#pragma once

#include "pool/pool_layout.hpp"
#include "os/shm_segment.hpp"

#include <dragon/managed_memory.h>  // DRAGON_MEMORY_TYPE_GPU

#include <cstdint>
#include <string>

namespace dragonmem::detail {

inline constexpr std::uint64_t k_manifest_backing_step_bytes = std::uint64_t{64} * 1024;  // 1024 records

// Heap chunks one call backs (Backing::back_heap_chunk): the one needed and those after
// it, 64 KiB of 4 KiB chunks (less at the heap's end or a map page's). One at a time in
// a GPU pool, whose heap range in the object holds only free-block headers and footers,
// which creation does not count against /dev/shm (pool_geometry.cpp).
inline constexpr std::uint64_t k_chunks_per_backing = 16;
// log2 of the heap bytes one map bit stands for, for a heap of 2^max_order bytes: a page,
// more for heaps over 4 TiB (so that the map's pages fit the one-page directory).
std::uint32_t heap_chunk_shift_for(std::uint32_t max_order) noexcept;
// Bytes of the backing map for a heap of 2^max_order bytes (page-rounded, >= a page).
std::uint64_t backing_map_bytes_for(std::uint32_t max_order) noexcept;
// The heap's granule for a minimum block of 2^min_block_order (TlsfHeap::granule_order_for).
inline std::uint32_t granule_order_of(std::uint32_t min_block_order) noexcept {
    return min_block_order > k_granule_order_floor ? min_block_order : k_granule_order_floor;
}
// Records backed at creation: one page of them, at most the whole manifest.
std::uint64_t initial_manifest_backed(std::uint64_t capacity) noexcept;

class Backing {
public:
    Backing() = default;
    Backing(PoolHeader* header, const ShmMapping& mapping, const std::string& shm_name, ShmObjectId object)
        : header_(header), dir_(reinterpret_cast<BitPage*>(mapping.base + header->backing_dir_offset)),
          map_(reinterpret_cast<BitPage*>(mapping.base + header->backing_map_offset)), mapping_(mapping),
          shm_name_(shm_name), object_(object), heap_bytes_(header->heap_bytes),
          chunk_shift_(header->heap_chunk_shift), capacity_(header->manifest_capacity),
          free_map_offset_(header->free_map_offset), granule_order_(granule_order_of(header->min_block_order)),
          all_backed_(header->fully_backed != 0),
          chunks_per_call_(header->mem_type == DRAGON_MEMORY_TYPE_GPU ? 1 : k_chunks_per_backing) {}
    // A heap whose every byte has memory (a private heap: tests of the heap alone).
    static Backing everything(std::uint64_t heap_bytes) noexcept {
        Backing all;
        all.heap_bytes_ = heap_bytes;
        all.all_backed_ = true;
        return all;
    }

    // Whether the heap page (chunk) holding `offset` is backed; false outside the heap.
    // Two loads, the first from the directory: a map page not backed is never read.
    bool heap_backed(std::uint64_t offset) const noexcept {
        if (offset >= heap_bytes_) return false;
        if (all_backed_) return true;
        std::uint64_t chunk = offset >> chunk_shift_;
        return bit(dir_, chunk / k_bits_per_page) && bit(map_ + chunk / k_bits_per_page, chunk % k_bits_per_page);
    }
    // Backs that page (and the free-map bits for it, and maybe the pages after it) unless
    // it is; false (failure() says why) if the kernel cannot.
    bool back_heap(std::uint64_t offset) noexcept {
        return heap_backed(offset) || back_heap_chunk(offset);
    }

    // Records [0, records_backed()) may be touched.
    std::uint64_t records_backed() const noexcept {
        std::uint64_t backed = header_->manifest_backed.load(std::memory_order_acquire);
        return backed < capacity_ ? backed : capacity_;  // a damaged header cannot widen it
    }
    // Backs records [0, count) (a whole step at a time); false if the kernel cannot.
    bool back_records(std::uint64_t count) noexcept;

    // The last failure of back_*, for the caller's message; cleared by clear_failure().
    // Per process and written under the pool lock, like the heap calls that cause it.
    bool failed() const noexcept { return failure_.err != 0; }
    void clear_failure() noexcept { failure_.err = 0; }
    // "/dev/shm could not back N B of the pool's <part> (at object offset X): <strerror>
    // (errno E); /dev/shm has F B free of T B"
    std::string describe_failure() const;

private:
    static bool bit(const BitPage* page, std::uint64_t index) noexcept {
        return ((page->words[index / 64].load(std::memory_order_relaxed) >> (index % 64)) & 1) != 0;
    }
    static void set_bit(BitPage* page, std::uint64_t index) noexcept {
        page->words[index / 64].fetch_or(std::uint64_t{1} << (index % 64), std::memory_order_release);
    }
    bool back_heap_chunk(std::uint64_t offset) noexcept;
    // Backs heap chunks [first, first + count) (in the heap, their bits on one map page)
    // and their free-map bits, then sets their bits.
    bool back_heap_chunks(std::uint64_t first, std::uint64_t count) noexcept;
    // Whether the free-map page holding chunk `chunk`'s bits is known to be backed
    // (another chunk of it is): back_heap_chunks then skips backing it again.
    bool free_map_page_backed(std::uint64_t chunk) const noexcept;
    bool back_range(std::uint64_t object_offset, std::uint64_t bytes, const char* part) noexcept;

    PoolHeader* header_ = nullptr;
    BitPage* dir_ = nullptr;  // bit m: page m of the map is backed
    BitPage* map_ = nullptr;  // bit c (of the whole map): heap chunk c is backed
    ShmMapping mapping_;
    std::string shm_name_;
    ShmObjectId object_;
    std::uint64_t heap_bytes_ = 0;
    std::uint32_t chunk_shift_ = 0;
    std::uint64_t capacity_ = 0;
    std::uint64_t free_map_offset_ = 0;
    std::uint32_t granule_order_ = 0;  // the heap's granule (tlsf_heap.hpp): one free-map bit each
    bool all_backed_ = false;  // a reserved pool: everything has memory
    // Heap chunks one call backs: k_chunks_per_backing, or 1 in a GPU pool (above).
    std::uint64_t chunks_per_call_ = k_chunks_per_backing;
    // The last failure of back_*: errno (0: none) and what could not be backed.
    struct Failure {
        int err = 0;
        std::uint64_t offset = 0;
        std::uint64_t bytes = 0;
        const char* part = "";
    };
    Failure failure_;
};

}  // namespace dragonmem::detail
