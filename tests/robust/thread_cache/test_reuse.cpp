// Per-thread block caches, reuse (thread_cache suite; what must hold: helpers.hpp): a
// freed block parks in the freeing thread's cache and comes back to that thread with a
// newer id, and a cache that could serve a request does not make alloc_blocking accept
// an invalid timeout.
#include "thread_cache/helpers.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <latch>
#include <random>

using namespace tcache;

TEST_SUITE_BEGIN("thread_cache");

TEST_CASE("reuse: a freed block is parked in the thread's cache and handed out again to that thread with a newer id") {
    ScopedPool scoped(k_heap, small_options(), "ru");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    int entry = -1;
    std::uint64_t owner = 0;
    in_new_thread([&] {
        // The thread's first locked allocation claims no entry; its free goes to the heap.
        first_locked_pair(pool);
        CHECK_MESSAGE(my_entry(view) < 0, "the thread's first locked allocation claimed a cache entry");
        CHECK(checked(pool, "after a first alloc+free pair").cached_blocks == 0);

        Memory first = pool.alloc(64, 5);  // the second locked allocation: the thread claims its entry
        const std::uint64_t id = first.id();
        const std::uint64_t offset = first.block_offset();
        Memory stale = pool.from_id(id);
        first.free();  // parks in the cache

        entry = my_entry(view);
        REQUIRE_MESSAGE(entry >= 0, "the thread holds no cache entry after its second locked allocation");
        owner = dragonmem::detail::current_owner_word();
        CHECK(view.record_of(id).id.load() == cached_word(static_cast<std::uint32_t>(entry)));
        auto report = checked(pool, "with one block parked");
        CHECK(report.cached_blocks == 1);
        CHECK(report.cached_bytes == 64);
        CHECK(report.live_allocations == 0);
        CHECK(report.used_bytes == 64);
        CHECK(report.free_bytes + report.used_bytes == k_heap);
        CHECK(pool.allocations().empty());
        CHECK(c_listing(pool).empty());
        CHECK_FALSE(pool.allocation_exists(id));
        expect_error([&] { (void)stale.pointer(); }, DRAGON_KEY_NOT_FOUND, "get_pointer of the parked block's old id");

        // A request of another size of the same block order reuses it too.
        Memory again = pool.alloc(40, 6);
        CHECK(again.block_offset() == offset);
        CHECK(again.id() > id);
        CHECK(again.type() == 6);
        auto listing = pool.allocations();
        REQUIRE(listing.size() == 1);
        CHECK(listing[0].id == again.id());
        CHECK(listing[0].offset == offset);
        CHECK(listing[0].size == 40);
        CHECK(listing[0].type == 6);
        report = checked(pool, "after the parked block was handed out again");
        CHECK(report.cached_blocks == 0);
        CHECK(report.live_allocations == 1);

        // Many pairs: always the same block, ids strictly increasing.
        std::uint64_t last_id = again.id();
        again.free();
        for (int i = 0; i < 200; ++i) {
            Memory m = pool.alloc(64);
            CHECK(m.block_offset() == offset);
            CHECK(m.id() > last_id);
            last_id = m.id();
            m.free();
        }
        report = checked(pool, "after 200 cached alloc+free pairs");
        CHECK(report.cached_blocks == 1);
        CHECK(report.live_allocations == 0);
    });
    // Exit does not touch the pool: the block stays parked under the dead thread's entry
    // (check() takes nothing back) until a statistics call returns it to the heap.
    auto report = checked(pool, "after the thread exited");
    CHECK(report.cached_blocks == 1);
    CHECK(report.live_allocations == 0);
    CHECK(view.header()->cache_entries[entry].owner.load() == owner);
    CHECK(entry_owner_dead(view, static_cast<unsigned>(entry)));
    CHECK(pool.attributes().free_bytes == k_heap);
    report = checked(pool, "after attributes()");
    CHECK(report.cached_blocks == 0);
    CHECK(report.free_bytes == k_heap);
}

TEST_CASE("bad timeout: alloc_blocking with an invalid timespec is refused even when the cache could serve it") {
    ScopedPool scoped(k_heap, small_options(), "bt");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    in_new_thread([&] {
        first_locked_pair(pool);
        Memory warm_block = pool.alloc(64);  // the second locked allocation claims the entry
        const std::uint64_t id = warm_block.id();
        const std::uint64_t offset = warm_block.block_offset();
        warm_block.free();  // parked in the cache: the next 64 B allocation would be a cache hit
        const std::uint64_t parked = view.record_of(id).id.load();
        REQUIRE(dragonmem::detail::is_cache_word(parked));
        const auto before = checked(pool, "with one block parked");
        REQUIRE(before.cached_blocks == 1);
        for (const timespec bad : {timespec{0, 1000000000L}, timespec{-1, 0}, timespec{0, -5}}) {
            const std::string what = "alloc_blocking with timeout {" + std::to_string(bad.tv_sec) + ", " +
                                     std::to_string(bad.tv_nsec) + "}";
            try {
                (void)pool.alloc_blocking(64, 0, &bad);
                CHECK_MESSAGE(false, what << ": succeeded (expected DRAGON_INVALID_ARGUMENT)");
            } catch (const dragonmem::Error& e) {
                CHECK_MESSAGE(e.code() == DRAGON_INVALID_ARGUMENT, what << ": threw " << e.code_name());
                CHECK_MESSAGE(std::string(e.what()).find(std::to_string(bad.tv_nsec)) != std::string::npos,
                              what << ": the message does not name the value: " << e.what());
            }
            // Nothing moved: the block is still parked, the pool reads the same.
            CHECK(view.record_of(id).id.load() == parked);
            const auto after = checked(pool, what);
            CHECK(after.cached_blocks == before.cached_blocks);
            CHECK(after.free_bytes == before.free_bytes);
            CHECK(after.live_allocations == 0);
        }
        Memory again = pool.alloc(64);  // and the cache still serves it
        CHECK(again.block_offset() == offset);
        again.free();
    });
    CHECK(pool.attributes().free_bytes == k_heap);
}

TEST_SUITE_END();
