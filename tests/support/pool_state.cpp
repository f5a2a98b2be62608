// Observing a pool from a test (see pool_state.hpp).
#include "pool_state.hpp"

#include "testing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

namespace dmtest {

std::vector<std::uint64_t> live_ids(const dragonMemoryPoolDescr_t* pool) {
    dragonMemoryPoolAllocations_t allocs{};
    const dragonError_t rc = dragon_memory_pool_get_allocations(pool, &allocs);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_allocations returned " << toString(rc) << ": " << last_error());
    std::vector<std::uint64_t> ids(allocs.ids, allocs.ids + allocs.nallocs);
    dragon_memory_pool_allocations_free(&allocs);
    std::sort(ids.begin(), ids.end());
    return ids;
}

std::uint64_t free_bytes(dragonMemoryPoolDescr_t* pool) {
    std::uint64_t bytes = 0;
    const dragonError_t rc = dragon_memory_pool_get_free_size(pool, &bytes);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_free_size returned " << toString(rc) << ": " << last_error());
    return bytes;
}

std::vector<dragonHeapStatsAllocationItem_t> free_blocks(dragonMemoryPoolDescr_t* pool) {
    std::size_t n = 0;
    dragonError_t rc = dragon_memory_pool_get_num_block_sizes(pool, &n);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_num_block_sizes returned " << toString(rc) << ": " << last_error());
    REQUIRE(n > 0);
    REQUIRE(n <= 64);
    std::vector<dragonHeapStatsAllocationItem_t> items(n);
    rc = dragon_memory_pool_get_free_blocks(pool, items.data());
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_free_blocks returned " << toString(rc) << ": " << last_error());
    return items;
}

bool is_one_maximal_block(dragonMemoryPoolDescr_t* pool, std::size_t heap_bytes) {
    auto items = free_blocks(pool);
    for (std::size_t i = 0; i < items.size(); ++i) {
        const bool last = i + 1 == items.size();
        if (last && (items[i].block_size != heap_bytes || items[i].num_blocks != 1)) return false;
        if (!last && items[i].num_blocks != 0) return false;
    }
    return true;
}

PoolState pool_state(dragonMemoryPoolDescr_t* pool) {
    PoolState s;
    s.free_bytes = free_bytes(pool);
    dragonMemoryPoolAllocations_t allocs{};
    dragonError_t rc = dragon_memory_pool_get_allocations(pool, &allocs);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_allocations returned " << toString(rc) << ": " << last_error());
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pairs;
    for (dragonULInt i = 0; i < allocs.nallocs; ++i) pairs.emplace_back(allocs.ids[i], allocs.types[i]);
    dragon_memory_pool_allocations_free(&allocs);
    std::sort(pairs.begin(), pairs.end());
    for (auto& [id, type] : pairs) {
        s.ids.push_back(id);
        s.types.push_back(type);
    }
    for (auto& item : free_blocks(pool)) s.free_block_counts.push_back(item.num_blocks);
    dragonMemoryPoolAttr_t attr{};
    rc = dragon_memory_get_attr(pool, &attr);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_attr returned " << toString(rc) << ": " << last_error());
    s.manifest_entries = attr.manifest_entries;
    dragon_memory_attr_destroy(&attr);
    return s;
}

std::string describe(const PoolState& s) {
    std::string blocks;
    for (std::size_t i = 0; i < s.free_block_counts.size(); ++i)
        blocks += fmt::format("{}{}", i ? " " : "", s.free_block_counts[i]);
    return fmt::format("{{free {} B, {} listed, manifest_entries {}, free blocks [{}]}}", s.free_bytes, s.ids.size(),
                       s.manifest_entries, blocks);
}

std::vector<std::uint8_t> serialize_pool(const dragonMemoryPoolDescr_t* pool) {
    dragonMemoryPoolSerial_t ser{};
    const dragonError_t rc = dragon_memory_pool_serialize(&ser, pool);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "pool_serialize returned " << toString(rc) << ": " << last_error());
    REQUIRE(ser.data != nullptr);
    std::vector<std::uint8_t> out(ser.data, ser.data + ser.len);
    dragon_memory_pool_serial_free(&ser);
    return out;
}

std::vector<std::uint8_t> serialize_mem(const dragonMemoryDescr_t* mem) {
    dragonMemorySerial_t ser{};
    const dragonError_t rc = dragon_memory_serialize(&ser, mem);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "memory_serialize returned " << toString(rc) << ": " << last_error());
    REQUIRE(ser.data != nullptr);
    std::vector<std::uint8_t> out(ser.data, ser.data + ser.len);
    dragon_memory_serial_free(&ser);
    return out;
}

void* mem_pointer(const dragonMemoryDescr_t* mem) {
    void* p = nullptr;
    const dragonError_t rc = dragon_memory_get_pointer(mem, &p);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_pointer returned " << toString(rc) << ": " << last_error());
    return p;
}

std::size_t mem_size(const dragonMemoryDescr_t* mem) {
    std::size_t n = 0;
    const dragonError_t rc = dragon_memory_get_size(mem, &n);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_size returned " << toString(rc) << ": " << last_error());
    return n;
}

std::uint64_t mem_id(dragonMemoryDescr_t* mem) {
    std::uint64_t id = 0;
    const dragonError_t rc = dragon_memory_id(mem, &id);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "memory_id returned " << toString(rc) << ": " << last_error());
    return id;
}

bool PoolSnapshot::operator==(const PoolSnapshot& o) const {
    if (free_bytes != o.free_bytes || live != o.live || free_block_counts != o.free_block_counts ||
        check_ok != o.check_ok || problems != o.problems || allocations.size() != o.allocations.size())
        return false;
    for (std::size_t i = 0; i < allocations.size(); ++i) {
        const auto& a = allocations[i];
        const auto& b = o.allocations[i];
        if (a.id != b.id || a.type != b.type || a.offset != b.offset || a.size != b.size) return false;
    }
    return true;
}

std::string PoolSnapshot::describe() const {
    std::ostringstream out;
    out << "{free " << free_bytes << " B, live " << live << ", allocations [";
    for (const auto& a : allocations) out << " id" << a.id << "@" << a.offset << ":" << a.size << "t" << a.type;
    out << " ], free blocks [";
    for (std::size_t c : free_block_counts) out << " " << c;
    out << " ], check " << (check_ok ? "ok" : "FAILED");
    for (const auto& p : problems) out << "; " << p;
    out << "}";
    return out.str();
}

PoolSnapshot snapshot(const dragonmem::Pool& pool) {
    PoolSnapshot s;
    auto attrs = pool.attributes();
    s.free_bytes = attrs.free_bytes;
    s.live = attrs.live_allocations;
    s.allocations = pool.allocations();
    for (const auto& fb : pool.free_blocks()) s.free_block_counts.push_back(fb.count);
    auto report = pool.check();
    s.check_ok = report.ok;
    s.problems = report.problems;
    return s;
}

std::size_t free_all(const dragonmem::Pool& pool) {
    std::size_t freed = 0;
    for (const auto& info : pool.allocations()) {
        dragonmem::Memory mem = pool.from_id(info.id);
        mem.free();
        ++freed;
    }
    return freed;
}

}  // namespace dmtest
