// The C++ API for large pools: Pool::allocations_page (a listing in pages), allocation_info,
// block_bytes_for, and dragonmem::SystemError's errno.
#include "testing.hpp"

#include <dragonmem/system_error.hpp>

#include <algorithm>
#include <set>
#include <vector>

using namespace dmtest;
using dragonmem::AllocationInfo;
using dragonmem::Error;
using dragonmem::Memory;
using dragonmem::Pool;

TEST_SUITE_BEGIN("cxx_pages");

TEST_CASE("allocations_page lists every live allocation once, page by page, of a type when asked") {
    ShmGuard guard(unique_pool_name());
    Pool pool = Pool::create(guard.name(), 1 << 20);
    std::vector<Memory> made;
    for (int i = 0; i < 100; ++i) made.push_back(pool.alloc(64, i % 3 == 0 ? DRAGON_MEMORY_ALLOC_CHANNEL : 0));
    made[10].free();
    made[20].free();

    std::set<std::uint64_t> seen;
    std::vector<AllocationInfo> page;
    std::uint64_t cursor = 0;
    int pages = 0;
    for (bool more = true; more; ++pages) {
        more = pool.allocations_page(cursor, 7, page);
        CHECK(page.size() <= 7);
        for (const AllocationInfo& info : page) {
            CHECK(seen.insert(info.id).second);
            CHECK(info.block_bytes == 64);
        }
    }
    CHECK(seen.size() == 98);
    CHECK(pages >= 14);
    CHECK(seen.count(made[0].id()) == 1);

    cursor = 0;
    std::size_t channels = 0;
    for (bool more = true; more;) {
        more = pool.allocations_page(cursor, 1000, page, DRAGON_MEMORY_ALLOC_CHANNEL);
        for (const AllocationInfo& info : page) CHECK(info.type == DRAGON_MEMORY_ALLOC_CHANNEL);
        channels += page.size();
    }
    CHECK(channels == 34);  // i % 3 == 0 for 0..99, none of them freed (10 and 20 are not)
    pool.destroy();
}

TEST_CASE("allocation_info and block_bytes_for give the manifest's record and the size-class rule") {
    ShmGuard guard(unique_pool_name());
    Pool pool = Pool::create(guard.name(), 1 << 20);
    Memory memory = pool.alloc(100, 7);
    const AllocationInfo info = pool.allocation_info(memory.id());
    CHECK(info.id == memory.id());
    CHECK(info.type == 7);
    CHECK(info.size == 100);
    CHECK(info.block_bytes == 128);
    CHECK(info.offset == memory.block_offset());
    CHECK(pool.block_bytes_for(100) == 128);
    CHECK(pool.block_bytes_for(1) == 64);
    CHECK(pool.block_bytes_for(2049) == 2176);  // 33 granules, rounded up to 34
    CHECK(pool.block_bytes_for(5000) == 5120);
    CHECK(pool.block_bytes_for(0) == 0);
    const std::uint64_t id = memory.id();
    memory.free();
    try {
        (void)pool.allocation_info(id);
        FAIL("allocation_info of a freed id did not throw");
    } catch (const Error& e) {
        CHECK(e.code() == DRAGON_KEY_NOT_FOUND);
        CHECK(dragonmem::errno_of(e) == 0);
    }
    pool.destroy();
}

TEST_CASE("a failed system call throws SystemError with its errno: ENOENT for a missing pool, EEXIST for a name in use") {
    ShmGuard guard(unique_pool_name());
    try {
        (void)Pool::attach_local(guard.name());
        FAIL("attach of a missing pool did not throw");
    } catch (const dragonmem::SystemError& e) {
        CHECK(e.code() == DRAGON_MEMORY_ERRNO);
        CHECK(e.errno_value() == ENOENT);
    }
    Pool pool = Pool::create(guard.name(), 1 << 16);
    try {
        (void)Pool::create(guard.name(), 1 << 16);
        FAIL("create of a name in use did not throw");
    } catch (const Error& e) {
        CHECK(e.code() == DRAGON_MEMORY_ERRNO);
        CHECK(dragonmem::errno_of(e) == EEXIST);
    }
    pool.destroy();
}

TEST_SUITE_END();
