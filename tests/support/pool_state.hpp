// Observing a pool from a test: C API queries that REQUIRE success, and two snapshots of
// everything observable about a pool's occupancy, to assert "the pool is unchanged"
// after a call that must fail: PoolState through the C API (what the unit tests of the C
// API compare) and PoolSnapshot through the C++ API, with each allocation's offset and
// the checker's verdict (what the robustness tests compare after corruption or a crash).
#pragma once

#include <doctest/doctest.h>

#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dmtest {

struct PoolState {
    std::uint64_t free_bytes = 0;
    std::vector<std::uint64_t> ids;  // live allocation ids, sorted
    std::vector<std::uint64_t> types;
    std::vector<std::size_t> free_block_counts;  // per block size, smallest first
    std::size_t manifest_entries = 0;

    bool operator==(const PoolState&) const = default;
};

PoolState pool_state(dragonMemoryPoolDescr_t* pool);
std::string describe(const PoolState& state);
// doctest finds this through ADL when a PoolState comparison fails.
inline doctest::String toString(const PoolState& s) { return doctest::String(describe(s).c_str()); }

struct PoolSnapshot {
    std::uint64_t free_bytes = 0;
    std::uint64_t live = 0;
    std::vector<dragonmem::AllocationInfo> allocations;
    std::vector<std::size_t> free_block_counts;
    bool check_ok = false;
    std::vector<std::string> problems;
    bool operator==(const PoolSnapshot& o) const;
    std::string describe() const;
};
PoolSnapshot snapshot(const dragonmem::Pool& pool);

// Frees every live allocation of the pool (anyone may free anything); returns how many.
std::size_t free_all(const dragonmem::Pool& pool);

std::vector<std::uint64_t> live_ids(const dragonMemoryPoolDescr_t* pool);
std::uint64_t free_bytes(dragonMemoryPoolDescr_t* pool);
std::vector<dragonHeapStatsAllocationItem_t> free_blocks(dragonMemoryPoolDescr_t* pool);
// True when the only free block is one block of `heap_bytes` (the pool is whole).
bool is_one_maximal_block(dragonMemoryPoolDescr_t* pool, std::size_t heap_bytes);

std::vector<std::uint8_t> serialize_pool(const dragonMemoryPoolDescr_t* pool);
std::vector<std::uint8_t> serialize_mem(const dragonMemoryDescr_t* mem);

void* mem_pointer(const dragonMemoryDescr_t* mem);
std::size_t mem_size(const dragonMemoryDescr_t* mem);
std::uint64_t mem_id(dragonMemoryDescr_t* mem);

}  // namespace dmtest
