// A pool's geometry: what create lays out for a size and options, and whether a header
// read from an object describes a layout this library could have made. Pure: no I/O,
// no shared memory (tests/unit/test_pool_geometry.cpp tests it alone).
//
// Both directions use the same arithmetic, so a header that passes validate_header has
// every region where plan_geometry would put it: open() maps nothing until it passed,
// and everything after trusts these offsets and sizes.
#pragma once

#include "pool/pool_layout.hpp"

#include <dragon/return_codes.h>
#include <dragonmem/types.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace dragonmem::detail {

inline constexpr std::uint64_t k_max_heap_order = 46;  // 64 TiB
inline constexpr std::uint64_t k_max_manifest_capacity = 1ULL << 32;
inline constexpr std::uint64_t k_max_heap_alignment = 1ULL << 30;

struct PoolGeometry {
    std::uint32_t min_order = 0;  // the minimum block is 2^min_order B
    std::uint32_t max_order = 0;  // the heap is 2^max_order B
    std::uint64_t heap_bytes = 0;
    std::uint64_t capacity = 0;       // manifest records (max_allocations)
    std::uint32_t id_slot_bits = 0;   // bits of an id that hold its slot
    std::uint64_t map_bytes = 0;      // backing map
    std::uint64_t manifest_offset = 0;
    std::uint64_t manifest_bytes = 0;
    std::uint64_t free_map_offset = 0;
    std::uint64_t free_map_bytes = 0;
    std::uint64_t heap_offset = 0;
    std::uint64_t total_bytes = 0;    // the pool's mapping: metadata and heap
    std::uint64_t object_bytes = 0;   // the shm object: total_bytes, or the metadata alone
                                      // when the heap is a hugetlbfs file (hugepage pools)
    bool reserve_all = false;         // every page backed now (reserve, or a hugepage pool)
    std::uint64_t alignment = 0;      // of the heap's address in every process
    std::uint32_t chunk_shift = 0;    // heap bytes per backing-map bit (log2)
    std::uint64_t records_backed = 0; // manifest records backed at creation
    // What create backs before formatting (pool_backing.hpp), unless it reserves all.
    std::uint64_t first_records_bytes = 0;   // the first records, page-rounded
    std::uint64_t first_chunk_bytes = 0;     // heap chunk 0
    std::uint64_t first_free_map_bytes = 0;  // the free-map page(s) covering chunk 0
    // What /dev/shm must have free for the pool to be created: the heap users can fill
    // plus the metadata backed now (everything, when reserving).
    std::uint64_t needed_bytes = 0;
};

// Create's first checks: a size at all, and a memory type this library makes (create
// checks the huge-page mount and the NUMA node next, then plan_geometry the rest).
dragonError_t check_size_and_type(std::string_view name, std::size_t bytes, const PoolOptions& options);

// Checks create's size and options (pool `name` names it in messages) and lays the pool
// out. INVALID_ARGUMENT (or MEMORY_ILLEGAL_MEMTYPE, INVALID_LOCK_KIND) naming the value.
// A hugepage pool's heap is at least one huge page.
dragonError_t plan_geometry(std::string_view name, std::size_t bytes, const PoolOptions& options, PoolGeometry& out);

// Writes the geometry's fields into a header being formatted (not the magic, the ready
// word or anything a process changes later).
void store_geometry(PoolHeader& h, const PoolGeometry& g) noexcept;

// Validates a private copy of a header (and its magic, read from it) against the size of
// the object it came from, whose shm name is `shm_name`: INVALID_ARGUMENT saying why it
// is not a usable pool.
dragonError_t validate_header(const PoolHeader& h, std::uint64_t magic, std::uint64_t object_bytes,
                              const std::string& shm_name);

// A field of a private byte copy of a header, taken as plain bytes: the copy is not
// shared memory, and the atomics in its image are no objects to load from.
template <typename T>
T copied_field(const unsigned char* copy, std::size_t offset) noexcept {
    T value;
    std::memcpy(&value, copy + offset, sizeof value);
    return value;
}

}  // namespace dragonmem::detail
