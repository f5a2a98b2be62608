// The heap's contract (issue 16, man 3 libdragonmem "Allocation sizes and alignment"):
// whole 64 B granules rounded up to a size class, power-of-two blocks up to 4 KiB aligned
// to their size, immediate coalescing (a pool whose allocations are all freed is one free
// block), the largest request reported that really fits, and refusals that leave the
// pool as it was.
#include "testing.hpp"

#include <dragonmem/dragonmem.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

TEST_SUITE_BEGIN("heap_fit");

namespace {

struct FitPool {
    ShmGuard guard{unique_pool_name("fit")};
    Pool pool;
    explicit FitPool(std::size_t bytes, const dragonmem::PoolOptions& options = {})
        : pool(Pool::create(guard.name(), bytes, 0, options)) {}
    ~FitPool() {
        try {
            pool.destroy();
        } catch (const dragonmem::Error&) {
        }
    }
};

std::uintptr_t heap_fit_address(const Memory& m) { return reinterpret_cast<std::uintptr_t>(m.pointer()); }

// Random sizes allocated, then every third freed: free blocks of many sizes, at offsets
// that are no multiple of anything but the granule.
std::vector<Memory> heap_fit_fragment(Pool& pool, std::mt19937& rng, int count) {
    std::vector<Memory> kept;
    for (int i = 0; i < count; ++i) {
        const std::size_t bytes = 1 + rng() % 3000;
        Memory m = pool.alloc(bytes);
        if (i % 3 == 0)
            m.free();
        else
            kept.push_back(std::move(m));
    }
    return kept;
}

// What "one whole free block" means, from both the statistics and the checker.
void check_one_free_block(const Pool& pool, std::size_t heap) {
    auto attrs = pool.attributes();
    CHECK(attrs.free_bytes == heap);
    CHECK(attrs.largest_free_block == heap);
    CHECK(attrs.largest_request == heap);
    auto report = pool.check();
    CHECK(report.ok);
    CHECK(report.free_blocks == 1);
}

}  // namespace

TEST_CASE("a fresh pool fills to 100 % with equal power-of-two blocks and is one free block after") {
    constexpr std::size_t heap = 1 << 20;
    for (std::size_t size = 64; size <= heap; size *= 4) {
        CAPTURE(size);
        FitPool p(heap);
        std::vector<Memory> live;
        for (std::size_t i = 0; i < heap / size; ++i) live.push_back(p.pool.alloc(size));
        auto full = p.pool.attributes();
        CHECK(full.free_bytes == 0);
        CHECK(full.largest_request == 0);
        try {
            (void)p.pool.alloc(64);
            FAIL_CHECK("an allocation succeeded in a full pool");
        } catch (const dragonmem::Error& e) {
            CHECK(e.code() == DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
        }
        std::mt19937 rng(static_cast<unsigned>(size));
        std::shuffle(live.begin(), live.end(), rng);
        for (Memory& m : live) m.free();
        check_one_free_block(p.pool, heap);
    }
}

TEST_CASE("coalescing: random sizes freed in random order end as one free block, the checker passing throughout") {
    constexpr std::size_t heap = 4 << 20;
    FitPool p(heap);
    std::mt19937 rng(1616);
    std::vector<Memory> live;
    for (int i = 0; i < 3000; ++i) {
        try {
            live.push_back(p.pool.alloc(1 + rng() % (rng() % 10 == 0 ? 100000 : 3000)));
        } catch (const dragonmem::Error& e) {
            REQUIRE(e.code() == DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
        }
        if (!live.empty() && rng() % 3 == 0) {
            std::size_t k = rng() % live.size();
            live[k].free();
            live.erase(live.begin() + static_cast<long>(k));
        }
        if (i % 500 == 0) REQUIRE(p.pool.check().ok);
    }
    std::shuffle(live.begin(), live.end(), rng);
    for (std::size_t i = 0; i < live.size(); ++i) {
        live[i].free();
        if (i % 200 == 0) REQUIRE(p.pool.check().ok);
    }
    // Blocks parked in this thread's cache are free memory; a statistics call takes them back.
    CHECK(p.pool.attributes().free_bytes == heap);
    auto report = p.pool.check();
    CHECK(report.ok);
    CHECK(report.free_blocks == 1);
    CHECK(report.free_bytes == heap);
    Memory whole = p.pool.alloc(heap);
    CHECK(whole.block_offset() == 0);
}

TEST_CASE("alignment: every allocation is 64 B aligned, a request of 2^k <= 4 KiB 2^k-aligned, in a fragmented pool") {
    FitPool p(8 << 20);
    std::mt19937 rng(64);
    std::vector<Memory> kept = heap_fit_fragment(p.pool, rng, 600);
    for (int round = 0; round < 200; ++round) {
        const unsigned k = static_cast<unsigned>(rng() % 13);  // 1 B .. 4 KiB
        const std::size_t bytes = std::size_t{1} << k;
        Memory m = p.pool.alloc(bytes);
        const std::uintptr_t align = std::max<std::uintptr_t>(bytes, 64);
        CHECK_MESSAGE(heap_fit_address(m) % align == 0, bytes << " B at " << m.block_offset());
        CHECK(m.block_offset() % align == 0);
        CHECK(m.size() == bytes);  // get_size: the requested size, never the block's
        kept.push_back(std::move(m));
        // Any other size: 64 B aligned.
        Memory odd = p.pool.alloc(1 + rng() % 20000);
        CHECK(heap_fit_address(odd) % 64 == 0);
        kept.push_back(std::move(odd));
    }
    // Larger powers of two: 64 B aligned at least (man 3 libdragonmem).
    Memory big = p.pool.alloc(64 * 1024);
    CHECK(heap_fit_address(big) % 64 == 0);
    CHECK(p.pool.check().ok);
}

TEST_CASE("largest_request fits, and the next class up is refused with the pool unchanged") {
    FitPool p(1 << 20);
    std::mt19937 rng(7);
    std::vector<Memory> kept = heap_fit_fragment(p.pool, rng, 400);
    Memory tail = p.pool.alloc(300000);  // so that the largest free block is not the heap's end alone
    auto before = p.pool.attributes();
    REQUIRE(before.largest_request > 0);
    REQUIRE(before.largest_request <= before.largest_free_block);
    CHECK(p.pool.block_bytes_for(before.largest_request) == before.largest_request);
    // The next class: one byte more rounds up past the largest free block.
    const std::size_t too_big = before.largest_request + 1;
    if (p.pool.block_bytes_for(too_big) > before.largest_free_block) {
        try {
            (void)p.pool.alloc(too_big);
            FAIL_CHECK("a request past largest_request succeeded");
        } catch (const dragonmem::Error& e) {
            CHECK(e.code() == DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
            CHECK(std::string(e.what()).find(std::to_string(too_big)) != std::string::npos);
        }
        auto after = p.pool.attributes();
        CHECK(after.free_bytes == before.free_bytes);
        CHECK(after.live_allocations == before.live_allocations);
        CHECK(after.largest_free_block == before.largest_free_block);
    }
    Memory largest = p.pool.alloc(before.largest_request);
    CHECK(largest.size() == before.largest_request);
    CHECK(p.pool.check().ok);
}

TEST_CASE("preallocations: the pool serves its whole heap, blocking or not, and is one free block after") {
    constexpr std::size_t heap = 1 << 20;
    dragonmem::PoolOptions options;
    options.preallocs = {16, 3, 0, 5};  // blocks of the 32 B minimum block, 64 B and 256 B
    FitPool p(heap, options);
    check_one_free_block(p.pool, heap);
    Memory whole = p.pool.alloc(heap);
    CHECK(whole.block_offset() == 0);
    whole.free();
    // The first allocations of a preallocated size, then everything freed: one block.
    std::vector<Memory> live;
    for (int i = 0; i < 40; ++i) live.push_back(p.pool.alloc(i % 2 == 0 ? 32 : 256));
    for (Memory& m : live) m.free();
    check_one_free_block(p.pool, heap);
    // A blocking request for the whole heap has nothing to wait for (it waited for ever
    // when the preallocated blocks stayed apart; the timeout ends the test if it does).
    const timespec timeout{5, 0};
    try {
        Memory again = p.pool.alloc_blocking(heap, DRAGON_MEMORY_ALLOC_DATA, &timeout);
        CHECK(again.size() == heap);
        again.free();
    } catch (const dragonmem::Error& e) {
        FAIL_CHECK("a blocking allocation of the whole free heap failed: " << e.what());
    }
}

TEST_CASE("bad input: size 0 allocates nothing, too large is TOO_LARGE; the pool is unchanged") {
    TestPool pool(65536);
    dragonMemoryDescr_t kept{};
    DM_REQUIRE_OK(dragon_memory_alloc(&kept, pool.pd(), 1000));
    const PoolState before = pool_state(pool.pd());
    dragonMemoryDescr_t mem{};
    DM_CHECK_OK(dragon_memory_alloc(&mem, pool.pd(), 0));
    CHECK(mem_id(&mem) == 0);
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), 65537), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    CHECK(last_error().find("65537") != std::string::npos);
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), SIZE_MAX), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    // Not too large, but no free block holds it: NOT_AVAILABLE, naming the request.
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), 65536), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    CHECK(last_error().find("65536 B request") != std::string::npos);
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_OK(dragonmem_pool_check(pool.pd()));
    DM_CHECK_OK(dragon_memory_free(&kept));
}

TEST_SUITE_END();
