// Listing allocations: get_allocations, get_type_allocations (exact type filter),
// allocations_free / allocations_destroy, and the empty-pool listing that must not keep
// the pool lock (checked in a separate process, so a deadlock fails instead of hangs).
#include "testing.hpp"

#include <algorithm>
#include <map>

using namespace dmtest;

namespace {

std::vector<std::pair<std::uint64_t, std::uint64_t>> listing(const dragonMemoryPoolDescr_t* pool) {
    dragonMemoryPoolAllocations_t allocs{};
    const dragonError_t rc = dragon_memory_pool_get_allocations(pool, &allocs);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_allocations returned " << toString(rc) << ": " << last_error());
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (dragonULInt i = 0; i < allocs.nallocs; ++i) out.emplace_back(allocs.ids[i], allocs.types[i]);
    DM_CHECK_OK(dragon_memory_pool_allocations_free(&allocs));
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::uint64_t> typed_ids(const dragonMemoryPoolDescr_t* pool, dragonMemoryAllocationType_t type) {
    dragonMemoryPoolAllocations_t allocs{};
    const dragonError_t rc = dragon_memory_pool_get_type_allocations(pool, type, &allocs);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "get_type_allocations returned " << toString(rc) << ": " << last_error());
    std::vector<std::uint64_t> ids(allocs.ids, allocs.ids + allocs.nallocs);
    for (dragonULInt i = 0; i < allocs.nallocs; ++i) CHECK(allocs.types[i] == static_cast<std::uint64_t>(type));
    DM_CHECK_OK(dragon_memory_pool_allocations_destroy(&allocs));
    std::sort(ids.begin(), ids.end());
    return ids;
}

}  // namespace

TEST_SUITE_BEGIN("listing");

TEST_CASE("an empty pool lists nothing") {
    TestPool pool(65536);
    CHECK(listing(pool.pd()).empty());
    CHECK(typed_ids(pool.pd(), DRAGON_MEMORY_ALLOC_DATA).empty());
}

TEST_CASE("get_allocations on an empty pool does not keep the lock (separate process)") {
    const std::string child = child_program();
    REQUIRE_MESSAGE(!child.empty(), "DM_CHILD_PATH is not set (run through meson test)");
    TestPool pool(65536);
    const std::string var = "DMTEST_POOL";
    const auto result = run_child({child, "list-empty", var}, {{var, base64_encode(serialize_pool(pool.pd()))}}, 10000);
    CHECK_MESSAGE(result.exited_with(0), result.describe());
    // And in this process afterwards.
    CHECK(listing(pool.pd()).empty());
    dragonMemoryDescr_t mem{};
    DM_CHECK_OK(dragon_memory_alloc(&mem, pool.pd(), 64));
}

TEST_CASE("get_allocations lists every live allocation with its type; zero-byte ones are not listed") {
    TestPool pool(65536);
    std::map<std::uint64_t, std::uint64_t> expected;  // id -> type
    std::vector<dragonMemoryDescr_t> mems;
    const dragonMemoryAllocationType_t types[] = {DRAGON_MEMORY_ALLOC_DATA, DRAGON_MEMORY_ALLOC_CHANNEL,
                                                  DRAGON_MEMORY_ALLOC_CHANNEL_BUFFER, DRAGON_MEMORY_ALLOC_BOOTSTRAP};
    for (int i = 0; i < 20; ++i) {
        dragonMemoryDescr_t m{};
        const auto type = types[i % 4];
        DM_REQUIRE_OK(dragon_memory_alloc_type(&m, pool.pd(), 64 + static_cast<std::size_t>(i), type));
        expected[mem_id(&m)] = static_cast<std::uint64_t>(type);
        mems.push_back(m);
    }
    dragonMemoryDescr_t zero{};
    DM_REQUIRE_OK(dragon_memory_alloc_type(&zero, pool.pd(), 0, DRAGON_MEMORY_ALLOC_CHANNEL));

    auto got = listing(pool.pd());
    CHECK(got == std::vector<std::pair<std::uint64_t, std::uint64_t>>(expected.begin(), expected.end()));

    for (const auto type : types) {
        CAPTURE(static_cast<int>(type));
        std::vector<std::uint64_t> want;
        for (auto& [id, t] : expected)
            if (t == static_cast<std::uint64_t>(type)) want.push_back(id);
        CHECK(typed_ids(pool.pd(), type) == want);
    }

    // Freed allocations leave the listings.
    for (std::size_t i = 0; i < mems.size(); i += 2) {
        expected.erase(mem_id(&mems[i]));
        DM_REQUIRE_OK(dragon_memory_free(&mems[i]));
    }
    got = listing(pool.pd());
    CHECK(got == std::vector<std::pair<std::uint64_t, std::uint64_t>>(expected.begin(), expected.end()));
    std::vector<std::uint64_t> channel;
    for (auto& [id, t] : expected)
        if (t == DRAGON_MEMORY_ALLOC_CHANNEL) channel.push_back(id);
    CHECK(typed_ids(pool.pd(), DRAGON_MEMORY_ALLOC_CHANNEL) == channel);
}

TEST_CASE("allocations_free and allocations_destroy release the arrays") {
    TestPool pool(65536);
    dragonMemoryDescr_t m{};
    DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 64));
    dragonMemoryPoolAllocations_t allocs{};
    DM_REQUIRE_OK(dragon_memory_pool_get_allocations(pool.pd(), &allocs));
    REQUIRE(allocs.nallocs == 1);
    REQUIRE(allocs.ids != nullptr);
    REQUIRE(allocs.types != nullptr);
    DM_CHECK_OK(dragon_memory_pool_allocations_free(&allocs));  // leaks show under ASan
    dragonMemoryPoolAllocations_t again{};
    DM_REQUIRE_OK(dragon_memory_pool_get_type_allocations(pool.pd(), DRAGON_MEMORY_ALLOC_DATA, &again));
    CHECK(again.nallocs == 1);
    DM_CHECK_OK(dragon_memory_pool_allocations_destroy(&again));
    // An empty listing is freed the same way.
    dragonMemoryPoolAllocations_t none{};
    DM_REQUIRE_OK(dragon_memory_pool_get_type_allocations(pool.pd(), DRAGON_MEMORY_ALLOC_BOOTSTRAP, &none));
    CHECK(none.nallocs == 0);
    DM_CHECK_OK(dragon_memory_pool_allocations_free(&none));
}

TEST_CASE("a listing of many allocations is complete") {
    TestPool pool(131072);  // 2048 blocks of one 64 B granule
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 2048; ++i) {
        dragonMemoryDescr_t m{};
        DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 1));
        ids.push_back(mem_id(&m));
    }
    std::sort(ids.begin(), ids.end());
    CHECK(live_ids(pool.pd()) == ids);
}

TEST_SUITE_END();
