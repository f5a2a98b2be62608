// Pool statistics (free/total size, utilization, block sizes, free blocks), filling a
// pool to 100% and getting it whole again, the 32 KiB / 1024 x 1 B scenario, failed
// allocations leaving the pool unchanged, and the invariant checker on churn.
#include "testing.hpp"

#include <algorithm>
#include <random>
#include <set>

using namespace dmtest;

namespace {

std::size_t log2_exact(std::size_t v) {
    std::size_t n = 0;
    while ((std::size_t{1} << n) < v) ++n;
    return n;
}

double utilization(dragonMemoryPoolDescr_t* pool) {
    double pct = -1;
    const dragonError_t rc = dragon_memory_pool_get_utilization_pct(pool, &pct);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "utilization returned " << toString(rc) << ": " << last_error());
    return pct;
}

}  // namespace

TEST_SUITE_BEGIN("stats");

TEST_CASE("a fresh pool is one maximal block") {
    for (std::size_t min_block : {std::size_t{32}, std::size_t{64}, std::size_t{1024}}) {
        CAPTURE(min_block);
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.data_min_block_size = min_block;
        TestPool pool(65536, &attr);
        dragon_memory_attr_destroy(&attr);
        CHECK(free_bytes(pool.pd()) == 65536);
        std::uint64_t total = 0;
        DM_CHECK_OK(dragon_memory_pool_get_total_size(pool.pd(), &total));
        CHECK(total == 65536);
        CHECK(utilization(pool.pd()) == 0.0);
        std::size_t n = 0;
        DM_REQUIRE_OK(dragon_memory_pool_get_num_block_sizes(pool.pd(), &n));
        CHECK(n == log2_exact(65536 / min_block) + 1);
        const auto items = free_blocks(pool.pd());
        for (std::size_t i = 0; i < items.size(); ++i) {
            CAPTURE(i);
            CHECK(items[i].block_size == min_block << i);
            CHECK(items[i].num_blocks == (i + 1 == items.size() ? 1u : 0u));
        }
        CHECK(is_one_maximal_block(pool.pd(), 65536));
    }
}

// Free blocks are whole granules of any count, so get_free_blocks counts them by power of
// two: the entry of 2^k holds those of [2^k, 2^(k+1)) bytes.
TEST_CASE("one granule taken leaves one free block, counted under its power of two") {
    TestPool pool(1024);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 1));
    CHECK(free_bytes(pool.pd()) == 960);
    CHECK(utilization(pool.pd()) == doctest::Approx(6.25));
    const auto items = free_blocks(pool.pd());
    REQUIRE(items.size() == 6);  // 32 .. 1024
    for (std::size_t i = 0; i < 6; ++i) {
        CAPTURE(items[i].block_size);
        CHECK(items[i].num_blocks == (items[i].block_size == 512 ? 1u : 0u));  // 960 B
    }
    DM_REQUIRE_OK(dragon_memory_free(&mem));
    CHECK(is_one_maximal_block(pool.pd(), 1024));
    CHECK(utilization(pool.pd()) == 0.0);
}

TEST_CASE("utilization and free size follow the blocks in use") {
    TestPool pool(65536);
    dragonMemoryDescr_t half{}, quarter{}, small{};
    DM_REQUIRE_OK(dragon_memory_alloc(&half, pool.pd(), 32768));
    CHECK(utilization(pool.pd()) == doctest::Approx(50.0));
    DM_REQUIRE_OK(dragon_memory_alloc(&quarter, pool.pd(), 10000));  // 157 granules, rounded up to 160
    CHECK(utilization(pool.pd()) == doctest::Approx(100.0 * (32768 + 10240) / 65536));
    CHECK(free_bytes(pool.pd()) == 65536 - 32768 - 10240);
    DM_REQUIRE_OK(dragon_memory_alloc(&small, pool.pd(), 100));  // a 128 B block
    CHECK(free_bytes(pool.pd()) == 65536 - 32768 - 10240 - 128);
    CHECK(utilization(pool.pd()) == doctest::Approx(100.0 * (32768 + 10240 + 128) / 65536));
    for (auto* m : {&half, &quarter, &small}) DM_REQUIRE_OK(dragon_memory_free(m));
    CHECK(is_one_maximal_block(pool.pd(), 65536));
}

// Every allocation takes at least one 64 B granule (64 B alignment), so a 32 KiB pool holds
// 512 of them (the buddy heap this replaced held 1024 blocks of 32 B).
TEST_CASE("512 one-byte allocations exhaust a 32 KiB pool and freeing them makes it whole") {
    TestPool pool(32768);
    void* base = nullptr;
    DM_REQUIRE_OK(dragon_memory_pool_get_pointer(pool.pd(), &base));
    std::vector<dragonMemoryDescr_t> mems(512);
    std::set<char*> pointers;
    for (std::size_t i = 0; i < mems.size(); ++i) {
        DM_REQUIRE_OK(dragon_memory_alloc(&mems[i], pool.pd(), 1));
        auto* p = static_cast<char*>(mem_pointer(&mems[i]));
        CHECK((p - static_cast<char*>(base)) % 64 == 0);
        CHECK(pointers.insert(p).second);
        *p = static_cast<char>(i & 0x7f);
    }
    CHECK(free_bytes(pool.pd()) == 0);
    CHECK(utilization(pool.pd()) == doctest::Approx(100.0));
    CHECK(live_ids(pool.pd()).size() == 512);
    for (std::size_t i = 0; i < mems.size(); ++i) CHECK(*static_cast<char*>(mem_pointer(&mems[i])) == char(i & 0x7f));

    // The 513th: the heap is full (the manifest, 1024 records by default, is not).
    const PoolState full = pool_state(pool.pd());
    dragonMemoryDescr_t extra{};
    DM_CHECK_RC(dragon_memory_alloc(&extra, pool.pd(), 1), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    CHECK(pool_state(pool.pd()) == full);

    std::mt19937 rng(7);
    std::shuffle(mems.begin(), mems.end(), rng);
    for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_free(&m));
    CHECK(free_bytes(pool.pd()) == 32768);
    CHECK(live_ids(pool.pd()).empty());
    CHECK(is_one_maximal_block(pool.pd(), 32768));
    dragonMemoryDescr_t whole{};
    DM_CHECK_OK(dragon_memory_alloc(&whole, pool.pd(), 32768));
}

TEST_CASE("with a full heap and a full manifest, the heap's NOT_AVAILABLE wins") {
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.max_allocations = 512;
    TestPool pool(32768, &attr);
    dragon_memory_attr_destroy(&attr);
    std::vector<dragonMemoryDescr_t> mems(512);
    for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 1));
    const PoolState full = pool_state(pool.pd());
    dragonMemoryDescr_t extra{};
    DM_CHECK_RC(dragon_memory_alloc(&extra, pool.pd(), 1), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    CHECK(pool_state(pool.pd()) == full);
}

TEST_CASE("a failed allocation leaves free size and listing unchanged") {
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.max_allocations = 6;
    TestPool pool(4096, &attr);
    dragon_memory_attr_destroy(&attr);
    dragonMemoryDescr_t a{}, b{};
    DM_REQUIRE_OK(dragon_memory_alloc(&a, pool.pd(), 2048));
    DM_REQUIRE_OK(dragon_memory_alloc_type(&b, pool.pd(), 1000, DRAGON_MEMORY_ALLOC_CHANNEL));
    const PoolState before = pool_state(pool.pd());
    dragonMemoryDescr_t m{};
    const timespec timeout = ms_timespec(20);

    SUBCASE("too large") {
        DM_CHECK_RC(dragon_memory_alloc(&m, pool.pd(), 8192), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    }
    SUBCASE("not available") {
        DM_CHECK_RC(dragon_memory_alloc(&m, pool.pd(), 2048), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    }
    SUBCASE("timeout") {
        DM_CHECK_RC(dragon_memory_alloc_blocking(&m, pool.pd(), 2048, &timeout), DRAGON_TIMEOUT);
    }
    SUBCASE("manifest full") {
        dragonMemoryDescr_t fill[4]{};
        for (auto& f : fill) DM_REQUIRE_OK(dragon_memory_alloc(&f, pool.pd(), 32));
        const PoolState with_fill = pool_state(pool.pd());
        DM_CHECK_RC(dragon_memory_alloc(&m, pool.pd(), 32), DRAGON_OUT_OF_SPACE);
        DM_CHECK_RC(dragon_memory_alloc_blocking(&m, pool.pd(), 32, &timeout), DRAGON_OUT_OF_SPACE);
        CHECK(pool_state(pool.pd()) == with_fill);
        for (auto& f : fill) DM_REQUIRE_OK(dragon_memory_free(&f));
    }
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_OK(dragonmem_pool_check(pool.pd()));
}

TEST_CASE("a pool fills to 100% with blocks of one size") {
    for (std::size_t size : {std::size_t{32}, std::size_t{100}, std::size_t{4096}, std::size_t{65536}}) {
        CAPTURE(size);
        TestPool pool(65536);
        const std::size_t block = block_for(size);  // 32 B take a 64 B granule
        std::vector<dragonMemoryDescr_t> mems(65536 / block);
        for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), size));
        CHECK(free_bytes(pool.pd()) == 0);
        dragonMemoryDescr_t extra{};
        CHECK(dragon_memory_alloc(&extra, pool.pd(), size) != DRAGON_SUCCESS);
        for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_free(&m));
        CHECK(is_one_maximal_block(pool.pd(), 65536));
    }
}

TEST_CASE("a pool fills to 100% with power-of-two sizes requested largest first") {
    TestPool pool(65536);
    std::vector<dragonMemoryDescr_t> mems;
    for (std::size_t size = 32768; size >= 64; size /= 2) {
        mems.emplace_back();
        DM_REQUIRE_OK(dragon_memory_alloc(&mems.back(), pool.pd(), size));
    }
    mems.emplace_back();
    DM_REQUIRE_OK(dragon_memory_alloc(&mems.back(), pool.pd(), 64));
    CHECK(free_bytes(pool.pd()) == 0);
    CHECK(utilization(pool.pd()) == doctest::Approx(100.0));
    for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_free(&m));
    CHECK(is_one_maximal_block(pool.pd(), 65536));
}

TEST_CASE("random churn keeps the invariants and ends whole") {
    TestPool pool(1 << 20);
    std::mt19937 rng(2024);
    struct Live {
        dragonMemoryDescr_t mem;
        std::size_t bytes;
        std::uint64_t seed;
    };
    std::vector<Live> live;
    std::size_t used = 0;
    for (int step = 0; step < 3000; ++step) {
        if (live.empty() || rng() % 100 < 55) {
            const std::size_t bytes = 1 + rng() % (rng() % 8 == 0 ? 60000 : 2000);
            Live l{{}, bytes, static_cast<std::uint64_t>(step)};
            const dragonError_t rc = dragon_memory_alloc(&l.mem, pool.pd(), bytes);
            if (rc == DRAGON_SUCCESS) {
                fill_pattern(mem_pointer(&l.mem), bytes, l.seed);
                used += block_for(bytes);
                live.push_back(l);
            } else {
                REQUIRE(rc == DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
            }
        } else {
            const std::size_t k = rng() % live.size();
            CHECK(find_pattern_mismatch(mem_pointer(&live[k].mem), live[k].bytes, live[k].seed) == -1);
            used -= block_for(live[k].bytes);
            DM_REQUIRE_OK(dragon_memory_free(&live[k].mem));
            live.erase(live.begin() + static_cast<long>(k));
        }
        if (step % 500 == 0) {
            REQUIRE(free_bytes(pool.pd()) == (1u << 20) - used);
            DM_REQUIRE_OK(dragonmem_pool_check(pool.pd()));
        }
    }
    for (auto& l : live) {
        CHECK(find_pattern_mismatch(mem_pointer(&l.mem), l.bytes, l.seed) == -1);
        DM_REQUIRE_OK(dragon_memory_free(&l.mem));
    }
    DM_CHECK_OK(dragonmem_pool_check(pool.pd()));
    CHECK(is_one_maximal_block(pool.pd(), 1 << 20));
}

TEST_SUITE_END();
