// Allocation and free: sizes, alignment, types, the error codes of every refused
// request (and the pool left exactly as it was), blocking waits woken by frees,
// zero-byte allocations, ids and from_id, double and stale frees.
#include "testing.hpp"
#include "wait_slice.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <thread>

using namespace dmtest;

namespace {

void* pool_base(const dragonMemoryPoolDescr_t* pool) {
    void* base = nullptr;
    REQUIRE(dragon_memory_pool_get_pointer(pool, &base) == DRAGON_SUCCESS);
    return base;
}

std::size_t offset_in_pool(const dragonMemoryPoolDescr_t* pool, const dragonMemoryDescr_t* mem) {
    return static_cast<std::size_t>(static_cast<char*>(mem_pointer(mem)) - static_cast<char*>(pool_base(pool)));
}

dragonMemoryPoolAttr_t attr_with_max_allocations(std::size_t n) {
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.max_allocations = n;
    return attr;
}

// Fills a 4 KiB pool with two 2 KiB blocks.
struct FullPool {
    TestPool pool{4096};
    dragonMemoryDescr_t a{}, b{};
    FullPool() {
        DM_REQUIRE_OK(dragon_memory_alloc(&a, pool.pd(), 2048));
        DM_REQUIRE_OK(dragon_memory_alloc(&b, pool.pd(), 2048));
        REQUIRE(free_bytes(pool.pd()) == 0);
    }
};

// Polls get_attr until someone waits on the pool (or the deadline passes).
bool wait_for_waiter(dragonMemoryPoolDescr_t* pool, int timeout_ms) {
    const double deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        dragonMemoryPoolAttr_t attr{};
        if (dragon_memory_get_attr(pool, &attr) == DRAGON_SUCCESS) {
            const bool waiting = attr.waiters_for_manifest != 0;
            dragon_memory_attr_destroy(&attr);
            if (waiting) return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

}  // namespace

TEST_SUITE_BEGIN("alloc");

TEST_CASE("alloc gives writable, block-aligned, non-overlapping memory of the requested size") {
    TestPool pool(65536);
    auto* base = static_cast<char*>(pool_base(pool.pd()));
    const std::size_t sizes[] = {1, 31, 32, 33, 63, 64, 100, 1000, 1024, 4095, 4096, 5000, 8192};
    std::vector<dragonMemoryDescr_t> mems(std::size(sizes));
    std::size_t used = 0;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
        CAPTURE(sizes[i]);
        DM_REQUIRE_OK(dragon_memory_alloc(&mems[i], pool.pd(), sizes[i]));
        CHECK(mem_size(&mems[i]) == sizes[i]);
        auto* p = static_cast<char*>(mem_pointer(&mems[i]));
        REQUIRE(p != nullptr);
        const std::size_t block = block_for(sizes[i]);
        CHECK(static_cast<std::size_t>(p - base) % alignment_for(block) == 0);
        CHECK(p + sizes[i] <= base + 65536);
        used += block;
        CHECK(free_bytes(pool.pd()) == 65536 - used);
        fill_pattern(p, sizes[i], i);
    }
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
        CAPTURE(sizes[i]);
        CHECK(find_pattern_mismatch(mem_pointer(&mems[i]), sizes[i], i) == -1);
    }
    for (auto& m : mems) DM_CHECK_OK(dragon_memory_free(&m));
    CHECK(free_bytes(pool.pd()) == 65536);
    CHECK(is_one_maximal_block(pool.pd(), 65536));
}

TEST_CASE("alloc_type records the type; alloc records DATA") {
    TestPool pool(65536);
    dragonMemoryDescr_t plain{}, channel{}, buffer{}, boot{};
    DM_REQUIRE_OK(dragon_memory_alloc(&plain, pool.pd(), 64));
    DM_REQUIRE_OK(dragon_memory_alloc_type(&channel, pool.pd(), 64, DRAGON_MEMORY_ALLOC_CHANNEL));
    DM_REQUIRE_OK(dragon_memory_alloc_type(&buffer, pool.pd(), 64, DRAGON_MEMORY_ALLOC_CHANNEL_BUFFER));
    DM_REQUIRE_OK(dragon_memory_alloc_type(&boot, pool.pd(), 64, DRAGON_MEMORY_ALLOC_BOOTSTRAP));
    const PoolState state = pool_state(pool.pd());
    REQUIRE(state.ids.size() == 4);
    const std::uint64_t expected_type_of[] = {0, 1, 2, 3};
    const std::uint64_t ids[] = {mem_id(&plain), mem_id(&channel), mem_id(&buffer), mem_id(&boot)};
    for (int i = 0; i < 4; ++i) {
        auto it = std::find(state.ids.begin(), state.ids.end(), ids[i]);
        REQUIRE(it != state.ids.end());
        CHECK(state.types[static_cast<std::size_t>(it - state.ids.begin())] == expected_type_of[i]);
    }
}

TEST_CASE("a request larger than the pool is TOO_LARGE at once, even when blocking") {
    TestPool pool(4096);
    dragonMemoryDescr_t held{};
    DM_REQUIRE_OK(dragon_memory_alloc(&held, pool.pd(), 100));
    const PoolState before = pool_state(pool.pd());
    dragonMemoryDescr_t mem{};
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), 4097), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), std::size_t{1} << 40), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), SIZE_MAX), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    DM_CHECK_RC(dragon_memory_alloc_type(&mem, pool.pd(), 8192, DRAGON_MEMORY_ALLOC_CHANNEL),
                DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);

    const timespec one_second = ms_timespec(1000);
    const double t0 = now_ms();
    DM_CHECK_RC(dragon_memory_alloc_blocking(&mem, pool.pd(), 4097, &one_second),
                DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    DM_CHECK_RC(dragon_memory_alloc_type_blocking(&mem, pool.pd(), 4097, DRAGON_MEMORY_ALLOC_DATA, &one_second),
                DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    const double elapsed = now_ms() - t0;
    // Either call waiting would take its whole second (a failure bound: the figure itself
    // is a few microseconds, and a loaded machine may stall the test for hundreds of ms).
    CHECK_MESSAGE(elapsed < 1000.0, "blocking too-large requests took " << elapsed << " ms (should not wait)");
    CHECK(pool_state(pool.pd()) == before);
}

TEST_CASE("a too-large request leaves the pool lock consistent under concurrency") {
    // Dragon released a lock it never took on this path. Hammer the pool from threads
    // doing too-large requests next to threads doing alloc/free; the pool must stay
    // consistent and whole.
    TestPool pool(65536);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 300; ++i) {
                dragonMemoryDescr_t m{};
                const timespec timeout = ms_timespec(1000);
                if (dragon_memory_alloc_blocking(&m, pool.pd(), 1 << 20, &timeout) !=
                    DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE)
                    ++failures;
            }
        });
        threads.emplace_back([&, t] {
            for (int i = 0; i < 300; ++i) {
                dragonMemoryDescr_t m{};
                if (dragon_memory_alloc(&m, pool.pd(), 64 + static_cast<std::size_t>(t) * 100) != DRAGON_SUCCESS ||
                    dragon_memory_free(&m) != DRAGON_SUCCESS)
                    ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(failures.load() == 0);
    DM_CHECK_OK(dragonmem_pool_check(pool.pd()));
    CHECK(free_bytes(pool.pd()) == 65536);
    CHECK(live_ids(pool.pd()).empty());
    CHECK(is_one_maximal_block(pool.pd(), 65536));
}

TEST_CASE("no block free now: NOT_AVAILABLE, or TIMEOUT when blocking; the pool is unchanged") {
    FullPool full;
    const PoolState before = pool_state(full.pool.pd());
    dragonMemoryDescr_t mem{};
    DM_CHECK_RC(dragon_memory_alloc(&mem, full.pool.pd(), 32), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    DM_CHECK_RC(dragon_memory_alloc(&mem, full.pool.pd(), 4096), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    DM_CHECK_RC(dragon_memory_alloc_type(&mem, full.pool.pd(), 100, DRAGON_MEMORY_ALLOC_BOOTSTRAP),
                DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    CHECK(pool_state(full.pool.pd()) == before);

    const timespec timeout = ms_timespec(100);
    double t0 = now_ms();
    DM_CHECK_RC(dragon_memory_alloc_blocking(&mem, full.pool.pd(), 64, &timeout), DRAGON_TIMEOUT);
    double elapsed = now_ms() - t0;
    CHECK_MESSAGE(elapsed >= 95.0, "TIMEOUT after only " << elapsed << " ms of a 100 ms timeout");
    CHECK_MESSAGE(elapsed < 5000.0, "TIMEOUT after " << elapsed << " ms of a 100 ms timeout");
    CHECK(pool_state(full.pool.pd()) == before);

    const timespec short_timeout = ms_timespec(30);
    t0 = now_ms();
    DM_CHECK_RC(dragon_memory_alloc_type_blocking(&mem, full.pool.pd(), 64, DRAGON_MEMORY_ALLOC_CHANNEL,
                                                  &short_timeout),
                DRAGON_TIMEOUT);
    elapsed = now_ms() - t0;
    CHECK(elapsed >= 28.0);
    CHECK(elapsed < 5000.0);
    CHECK(pool_state(full.pool.pd()) == before);
}

TEST_CASE("a partly used pool refuses a block bigger than its largest free block with NOT_AVAILABLE") {
    TestPool pool(4096);
    dragonMemoryDescr_t small{};
    DM_REQUIRE_OK(dragon_memory_alloc(&small, pool.pd(), 32));  // one 64 B granule at 0
    const PoolState before = pool_state(pool.pd());
    // 4032 B are free in one block; the largest class that fits is 62 granules (3968 B):
    // 3969 B round up to 64 granules.
    dragonMemoryDescr_t mem{};
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), 4096), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), 3969), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_OK(dragon_memory_alloc(&mem, pool.pd(), 3968));
}

TEST_CASE("a full manifest is OUT_OF_SPACE; blocking calls wait for a slot, then OUT_OF_SPACE") {
    dragonMemoryPoolAttr_t attr = attr_with_max_allocations(5);
    TestPool pool(4096, &attr);
    dragon_memory_attr_destroy(&attr);
    std::vector<dragonMemoryDescr_t> mems(5);
    for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 32));
    const PoolState before = pool_state(pool.pd());
    CHECK(before.free_bytes == 4096 - 5 * 64);  // 32 B requests take a 64 B granule each

    dragonMemoryDescr_t extra{};
    DM_CHECK_RC(dragon_memory_alloc(&extra, pool.pd(), 32), DRAGON_OUT_OF_SPACE);
    DM_CHECK_RC(dragon_memory_alloc_type(&extra, pool.pd(), 32, DRAGON_MEMORY_ALLOC_CHANNEL), DRAGON_OUT_OF_SPACE);
    CHECK(pool_state(pool.pd()) == before);

    const timespec timeout = ms_timespec(80);
    const double t0 = now_ms();
    DM_CHECK_RC(dragon_memory_alloc_blocking(&extra, pool.pd(), 32, &timeout), DRAGON_OUT_OF_SPACE);
    const double elapsed = now_ms() - t0;
    CHECK_MESSAGE(elapsed >= 75.0, "blocking OUT_OF_SPACE after " << elapsed << " ms: did not wait for a slot");
    CHECK(elapsed < 5000.0);
    CHECK(pool_state(pool.pd()) == before);

    // Zero-byte allocations need no manifest slot.
    dragonMemoryDescr_t zero{};
    DM_CHECK_OK(dragon_memory_alloc(&zero, pool.pd(), 0));
    // A freed slot is reusable.
    DM_REQUIRE_OK(dragon_memory_free(&mems[2]));
    DM_CHECK_OK(dragon_memory_alloc(&extra, pool.pd(), 32));
}

TEST_CASE("a blocking alloc is woken by a free in another thread") {
    LongWaitSlice only_the_free_wakes;  // wait_slice.hpp
    FullPool full;
    const double free_at_ms = 80;
    dragonError_t rc = DRAGON_FAILURE;
    double returned_at = 0;
    dragonMemoryDescr_t got{};
    const double t0 = now_ms();
    std::thread waiter([&] {
        const timespec timeout = ms_timespec(20000);  // woken by the free long before
        rc = dragon_memory_alloc_blocking(&got, full.pool.pd(), 2048, &timeout);
        returned_at = now_ms() - t0;
    });
    CHECK_MESSAGE(wait_for_waiter(full.pool.pd(), 10000), "get_attr never reported the blocked caller");
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(free_at_ms)));
    const double freed_at = now_ms() - t0;
    DM_CHECK_OK(dragon_memory_free(&full.a));  // not REQUIRE: the thread must be joined
    waiter.join();
    CHECK(rc == DRAGON_SUCCESS);
    CHECK_MESSAGE(returned_at >= freed_at, "returned before the free");
    CHECK_MESSAGE(returned_at - freed_at < 5000.0, "woke " << (returned_at - freed_at) << " ms after the free");
    CHECK(mem_size(&got) == 2048);
    dragonMemoryPoolAttr_t attr{};
    DM_REQUIRE_OK(dragon_memory_get_attr(full.pool.pd(), &attr));
    CHECK(attr.waiters_for_manifest == 0);
    dragon_memory_attr_destroy(&attr);
}

TEST_CASE("a blocking alloc waiting for a manifest slot is woken by a free") {
    LongWaitSlice only_the_free_wakes;  // wait_slice.hpp
    dragonMemoryPoolAttr_t attr = attr_with_max_allocations(5);
    TestPool pool(4096, &attr);
    dragon_memory_attr_destroy(&attr);
    std::vector<dragonMemoryDescr_t> mems(5);
    for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 32));
    dragonError_t rc = DRAGON_FAILURE;
    double returned_at = 0;
    const double t0 = now_ms();
    std::thread waiter([&] {
        dragonMemoryDescr_t got{};
        const timespec timeout = ms_timespec(20000);  // woken by the free long before
        rc = dragon_memory_alloc_blocking(&got, pool.pd(), 32, &timeout);
        returned_at = now_ms() - t0;
    });
    CHECK(wait_for_waiter(pool.pd(), 10000));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const double freed_at = now_ms() - t0;
    DM_CHECK_OK(dragon_memory_free(&mems[0]));  // not REQUIRE: the thread must be joined
    waiter.join();
    CHECK(rc == DRAGON_SUCCESS);
    CHECK_MESSAGE(returned_at - freed_at < 5000.0, "woke " << (returned_at - freed_at) << " ms after the free");
    CHECK(live_ids(pool.pd()).size() == 5);
}

TEST_CASE("zero-byte allocations: id 0, NULL pointer, not listed, free is a no-op") {
    TestPool pool(4096);
    const PoolState before = pool_state(pool.pd());
    dragonMemoryDescr_t zero{};
    DM_REQUIRE_OK(dragon_memory_alloc(&zero, pool.pd(), 0));
    CHECK(mem_id(&zero) == 0);
    CHECK(mem_size(&zero) == 0);
    void* p = reinterpret_cast<void*>(0x1);
    DM_CHECK_OK(dragon_memory_get_pointer(&zero, &p));
    CHECK(p == nullptr);
    CHECK(pool_state(pool.pd()) == before);

    dragonMemoryDescr_t typed{}, blocking{}, typed_blocking{};
    const timespec timeout = ms_timespec(10);
    DM_CHECK_OK(dragon_memory_alloc_type(&typed, pool.pd(), 0, DRAGON_MEMORY_ALLOC_CHANNEL));
    DM_CHECK_OK(dragon_memory_alloc_blocking(&blocking, pool.pd(), 0, &timeout));
    DM_CHECK_OK(dragon_memory_alloc_type_blocking(&typed_blocking, pool.pd(), 0, DRAGON_MEMORY_ALLOC_DATA, nullptr));
    CHECK(mem_id(&typed) == 0);
    CHECK(mem_id(&blocking) == 0);
    CHECK(mem_id(&typed_blocking) == 0);
    CHECK(pool_state(pool.pd()) == before);

    DM_CHECK_OK(dragon_memory_free(&zero));
    DM_CHECK_OK(dragon_memory_free(&typed));
    DM_CHECK_OK(dragon_memory_free(&blocking));
    DM_CHECK_OK(dragon_memory_free(&typed_blocking));
    CHECK(pool_state(pool.pd()) == before);

    // Even a full pool gives zero-byte allocations.
    dragonMemoryDescr_t big{};
    DM_REQUIRE_OK(dragon_memory_alloc(&big, pool.pd(), 4096));
    dragonMemoryDescr_t zero2{};
    DM_CHECK_OK(dragon_memory_alloc(&zero2, pool.pd(), 0));
    CHECK(mem_id(&zero2) == 0);
}

TEST_CASE("ids are unique, strictly increasing and never 0 across slot reuse") {
    dragonMemoryPoolAttr_t attr = attr_with_max_allocations(5);
    TestPool pool(4096, &attr);
    dragon_memory_attr_destroy(&attr);
    std::mt19937 rng(1234);
    std::vector<dragonMemoryDescr_t> live;
    std::vector<std::uint64_t> live_id_list;
    std::uint64_t last_id = 0;
    std::set<std::uint64_t> seen;
    std::vector<std::uint64_t> freed_ids;
    for (int step = 0; step < 400; ++step) {
        const bool do_alloc = live.size() < 5 && (live.empty() || rng() % 3 != 0);
        if (do_alloc) {
            dragonMemoryDescr_t m{};
            DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 32 + rng() % 200));
            const std::uint64_t id = mem_id(&m);
            CHECK(id != 0);
            CHECK_MESSAGE(id > last_id, "id " << id << " after " << last_id);
            CHECK(seen.insert(id).second);
            last_id = id;
            live.push_back(m);
            live_id_list.push_back(id);
        } else {
            const std::size_t k = rng() % live.size();
            DM_REQUIRE_OK(dragon_memory_free(&live[k]));
            freed_ids.push_back(live_id_list[k]);
            live.erase(live.begin() + static_cast<long>(k));
            live_id_list.erase(live_id_list.begin() + static_cast<long>(k));
        }
    }
    REQUIRE(freed_ids.size() > 50);
    // A stale id never resolves, while newer allocations occupy its slot.
    for (std::uint64_t stale : freed_ids) {
        CAPTURE(stale);
        dragonMemoryDescr_t m{};
        const dragonError_t rc = dragon_memory_from_id(pool.pd(), stale, &m);
        CHECK(rc != DRAGON_SUCCESS);
        if (rc != DRAGON_SUCCESS) {
            DM_CHECK_CONTAINS(last_error(), std::to_string(stale));
        }
    }
    // The live ones do resolve.
    std::sort(live_id_list.begin(), live_id_list.end());
    CHECK(live_ids(pool.pd()) == live_id_list);
}

TEST_CASE("from_id resolves a live allocation to the same memory") {
    TestPool pool(65536);
    dragonMemoryDescr_t mems[3]{};
    const std::size_t sizes[] = {10, 300, 5000};
    for (int i = 0; i < 3; ++i) DM_REQUIRE_OK(dragon_memory_alloc(&mems[i], pool.pd(), sizes[i]));
    for (int i = 0; i < 3; ++i) {
        dragonMemoryDescr_t found{};
        DM_REQUIRE_OK(dragon_memory_from_id(pool.pd(), mem_id(&mems[i]), &found));
        CHECK(mem_id(&found) == mem_id(&mems[i]));
        CHECK(mem_pointer(&found) == mem_pointer(&mems[i]));
        CHECK(mem_size(&found) == sizes[i]);
        CHECK(offset_in_pool(pool.pd(), &found) == offset_in_pool(pool.pd(), &mems[i]));
    }
    dragonMemoryDescr_t none{};
    CHECK(dragon_memory_from_id(pool.pd(), mem_id(&mems[2]) + 1000, &none) != DRAGON_SUCCESS);
}

TEST_CASE("a stale id does not resolve to the allocation now in its slot") {
    dragonMemoryPoolAttr_t attr = attr_with_max_allocations(5);
    TestPool pool(4096, &attr);
    dragon_memory_attr_destroy(&attr);
    dragonMemoryDescr_t first{};
    DM_REQUIRE_OK(dragon_memory_alloc(&first, pool.pd(), 64));
    const std::uint64_t stale = mem_id(&first);
    DM_REQUIRE_OK(dragon_memory_free(&first));
    // Cycle through every slot several times so the stale slot is surely reused.
    std::vector<dragonMemoryDescr_t> now(5);
    for (int round = 0; round < 3; ++round) {
        for (auto& m : now) DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 64));
        if (round < 2)
            for (auto& m : now) DM_REQUIRE_OK(dragon_memory_free(&m));
    }
    dragonMemoryDescr_t m{};
    CHECK(dragon_memory_from_id(pool.pd(), stale, &m) != DRAGON_SUCCESS);
    for (auto& live : now) CHECK(mem_id(&live) != stale);
}

TEST_CASE("free returns the block; a double free through the same descriptor is MAP_KEY_NOT_FOUND") {
    TestPool pool(65536);
    dragonMemoryDescr_t keep{}, mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&keep, pool.pd(), 100));
    const PoolState before = pool_state(pool.pd());
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 1000));
    DM_REQUIRE_OK(dragon_memory_free(&mem));
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_RC(dragon_memory_free(&mem), DRAGON_MAP_KEY_NOT_FOUND);
    CHECK(pool_state(pool.pd()) == before);
    void* p = nullptr;
    DM_CHECK_RC(dragon_memory_get_pointer(&mem, &p), DRAGON_MAP_KEY_NOT_FOUND);
}

TEST_CASE("freeing an already freed allocation through another descriptor fails and leaves the pool untouched") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 256));
    dragonMemoryDescr_t by_id{}, view{}, attached{};
    DM_REQUIRE_OK(dragon_memory_from_id(pool.pd(), mem_id(&mem), &by_id));
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 16, nullptr));
    const auto serial = serialize_mem(&mem);
    dragonMemorySerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
    DM_REQUIRE_OK(dragon_memory_attach(&attached, &ser));
    const std::size_t old_offset = offset_in_pool(pool.pd(), &mem);

    DM_REQUIRE_OK(dragon_memory_free(&mem));
    // A newer allocation takes the same block (same size, lowest free address or the
    // block just freed: every placement policy hands this one out again in a pool
    // where it is the only free block of its size).
    dragonMemoryDescr_t newer{};
    DM_REQUIRE_OK(dragon_memory_alloc(&newer, pool.pd(), 256));
    fill_pattern(mem_pointer(&newer), 256, 99);
    const PoolState before = pool_state(pool.pd());
    INFO("old block offset " << old_offset << ", new block offset " << offset_in_pool(pool.pd(), &newer));

    for (dragonMemoryDescr_t* other : {&by_id, &view, &attached}) {
        const dragonError_t rc = dragon_memory_free(other);
        CHECK_MESSAGE(rc != DRAGON_SUCCESS, "a second free through another descriptor succeeded");
        CHECK_FALSE(last_error().empty());
        CHECK(pool_state(pool.pd()) == before);
    }
    int flag = -1;
    DM_CHECK_OK(dragon_memory_pool_allocation_exists(&newer, &flag));
    CHECK(flag == 1);
    CHECK(find_pattern_mismatch(mem_pointer(&newer), 256, 99) == -1);
    DM_CHECK_OK(dragon_memory_free(&newer));
    CHECK(free_bytes(pool.pd()) == 65536);
}

TEST_SUITE_END();
