// Per-thread block caches, double frees and bad ids (thread_cache suite; what must hold:
// helpers.hpp): a parked block is not an allocation. A second free of its old id, from
// another descriptor or from threads racing with warm caches, is refused (exactly one
// free wins) and changes nothing; ids with the cache bits set are never allocations.
#include "thread_cache/helpers.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <latch>
#include <random>

using namespace tcache;

TEST_SUITE_BEGIN("thread_cache");

namespace {

// After a double free was refused: the parked block comes out once, the heap is whole.
void expect_block_handed_out_once(const Pool& pool, std::uint64_t offset) {
    Memory x = pool.alloc(64);
    Memory y = pool.alloc(64);
    CHECK(x.block_offset() != y.block_offset());
    CHECK((x.block_offset() == offset || y.block_offset() == offset));
    std::vector<Memory> rest = fill(pool, k_block);
    rest.push_back(std::move(x));
    rest.push_back(std::move(y));
    bool distinct = false;
    CHECK(block_bytes(pool, rest, distinct) == k_heap);
    CHECK(distinct);
    checked(pool, "with the heap filled after the refused double free");
    free_each(rest);
}

}  // namespace

TEST_CASE("double free: a second descriptor of an id whose block went to a cache is refused and changes nothing") {
    ScopedPool scoped(k_heap, small_options(), "df");
    Pool& pool = scoped.pool();

    SUBCASE("C++: Pool::from_id, second free in the same thread") {
        in_new_thread([&] {
            first_locked_pair(pool);
            Memory a = pool.alloc(64);  // the second locked allocation: claims the entry
            const std::uint64_t id = a.id(), offset = a.block_offset();
            Memory b = pool.from_id(id);
            a.free();
            auto report = checked(pool, "after the first free");
            REQUIRE_MESSAGE(report.cached_blocks == 1, "the first free did not go to the cache");
            expect_error([&] { b.free(); }, DRAGON_KEY_NOT_FOUND, "second free through Pool::from_id");
            report = checked(pool, "after the refused second free");
            CHECK(report.cached_blocks == 1);
            CHECK(report.live_allocations == 0);
            expect_block_handed_out_once(pool, offset);
        });
    }

    SUBCASE("C: dragon_memory_get_alloc_memdescr and dragon_memory_from_id, second free in the same thread") {
        in_new_thread([&] {
            std::vector<std::uint8_t> ser = pool.serialize();
            dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
            dragonMemoryPoolDescr_t pd;
            REQUIRE(dragon_memory_pool_attach(&pd, &s) == DRAGON_SUCCESS);
            dragonMemoryDescr_t first, second, third;
            // The thread's first locked allocation claims no entry (its free goes to the
            // heap); `first`, the second, claims it.
            REQUIRE(dragon_memory_alloc(&first, &pd, 64) == DRAGON_SUCCESS);
            REQUIRE(dragon_memory_free(&first) == DRAGON_SUCCESS);
            REQUIRE(dragon_memory_alloc(&first, &pd, 64) == DRAGON_SUCCESS);
            std::uint64_t id = 0;
            REQUIRE(dragon_memory_id(&first, &id) == DRAGON_SUCCESS);
            void* ptr = nullptr;
            REQUIRE(dragon_memory_get_pointer(&first, &ptr) == DRAGON_SUCCESS);
            const auto offset =
                static_cast<std::uint64_t>(static_cast<std::uint8_t*>(ptr) - static_cast<std::uint8_t*>(pool.base_pointer()));
            REQUIRE(dragon_memory_get_alloc_memdescr(&second, &pd, id, 0, nullptr) == DRAGON_SUCCESS);
            REQUIRE(dragon_memory_from_id(&pd, id, &third) == DRAGON_SUCCESS);
            DM_CHECK_RC(dragon_memory_free(&first), DRAGON_SUCCESS);
            REQUIRE_MESSAGE(checked(pool, "after the first free").cached_blocks == 1,
                            "the first free did not go to the cache");
            count_bad_inputs(2);
            DM_CHECK_RC(dragon_memory_free(&second), DRAGON_KEY_NOT_FOUND);
            DM_CHECK_RC(dragon_memory_free(&third), DRAGON_KEY_NOT_FOUND);
            (void)dragon_memory_detach(&second);
            (void)dragon_memory_detach(&third);
            auto report = checked(pool, "after the refused second frees");
            CHECK(report.cached_blocks == 1);
            CHECK(report.live_allocations == 0);
            expect_block_handed_out_once(pool, offset);
            (void)dragon_memory_pool_detach(&pd);
        });
    }

    SUBCASE("second free from another thread with a warm cache of its own") {
        Actor owner, other;
        other.run([&] { warm(pool, 3, 4, {64}); });
        std::uint64_t id = 0, offset = 0;
        Memory second;
        const std::size_t cached_by_other = checked(pool, "after warming the other thread").cached_blocks;
        REQUIRE_MESSAGE(cached_by_other > 0, "the other thread cached nothing");
        owner.run([&] {
            first_locked_pair(pool);
            Memory a = pool.alloc(64);  // the second locked allocation: claims the entry
            id = a.id();
            offset = a.block_offset();
            second = pool.from_id(id);
            a.free();
        });
        auto report = checked(pool, "after the first free");
        REQUIRE_MESSAGE(report.cached_blocks == cached_by_other + 1, "the owner's free did not go to its cache");
        std::size_t cached_before = report.cached_blocks;
        other.run([&] { expect_error([&] { second.free(); }, DRAGON_KEY_NOT_FOUND, "second free from another thread"); });
        report = checked(pool, "after the refused second free");
        CHECK(report.cached_blocks == cached_before);
        CHECK(report.live_allocations == 0);
        owner.run([&] { expect_block_handed_out_once(pool, offset); });
    }

    SUBCASE("the parked block was handed out again under a newer id: the old descriptor's free is refused") {
        in_new_thread([&] {
            first_locked_pair(pool);
            Memory a = pool.alloc(64);  // the second locked allocation: claims the entry
            const std::uint64_t id = a.id(), offset = a.block_offset();
            Memory old_view = pool.from_id(id);
            std::vector<std::uint8_t> old_serial = a.serialize();
            a.free();
            REQUIRE(checked(pool, "after the first free").cached_blocks == 1);
            Memory reused = pool.alloc(64, 9);
            REQUIRE(reused.block_offset() == offset);
            REQUIRE(reused.id() != id);
            std::memset(reused.pointer(), 0x5C, 64);
            expect_error([&] { old_view.free(); }, DRAGON_KEY_NOT_FOUND, "free through the old from_id descriptor");
            Memory old_attached = Memory::attach(old_serial);
            expect_error([&] { old_attached.free(); }, DRAGON_KEY_NOT_FOUND, "free through an old serialized copy");
            CHECK(reused.exists());
            CHECK(static_cast<unsigned char*>(reused.pointer())[63] == 0x5C);
            auto listing = pool.allocations();
            REQUIRE(listing.size() == 1);
            CHECK(listing[0].id == reused.id());
            checked(pool, "after the refused frees of the old id");
            reused.free();
        });
    }
    checked(pool, "at the end");
    CHECK(pool.attributes().free_bytes == k_heap);
}

TEST_CASE("double free race: threads with warm caches free the same id at once; exactly one wins") {
    const int n_threads = 8;
    // Many rounds: whether two frees overlap in the few nanoseconds that matter is luck.
    const int rounds = long_mode() ? 200000 : 20000;
    ScopedPool scoped(k_heap, small_options(), "rc");
    Pool& pool = scoped.pool();

    std::barrier sync(n_threads + 1);
    std::atomic<int> go{0};  // phase 3 starts for everyone at once: round r when go > r
    std::atomic<std::uint64_t> id{0};
    std::vector<std::atomic<int>> wins(static_cast<std::size_t>(rounds));
    std::atomic<int> refused{0};
    ErrorLog error;  // what worker threads saw go wrong (the first 20)
    std::vector<std::thread> threads;
    watchdog().arm(long_mode() ? 600000 : 120000, "double free race");
    for (int t = 0; t < n_threads; ++t)
        threads.emplace_back([&, t] {
            try {
                warm(pool, 2, 4, {64, 128, 256});
            } catch (const std::exception& e) {
                error(std::string("warm-up: ") + e.what());
            }
            for (int r = 0; r < rounds; ++r) {
                // Phase 1: one thread allocates (often from its cache).
                if (r % n_threads == t) {
                    try {
                        Memory m = pool.alloc(static_cast<std::size_t>(64) << (r % 3));
                        id.store(m.id());
                    } catch (const std::exception& e) {
                        error(std::string("alloc: ") + e.what());
                        id.store(0);
                    }
                }
                sync.arrive_and_wait();
                // Phase 2: everyone gets a descriptor of that id.
                Memory mine;
                try {
                    if (id.load() != 0) mine = pool.from_id(id.load());
                } catch (const std::exception& e) {
                    error(std::string("from_id: ") + e.what());
                }
                sync.arrive_and_wait();
                // Phase 3: everyone frees it at once (spinning, so that the threads on a
                // CPU leave together, not one by one as a barrier wakes them).
                for (unsigned spins = 0; go.load(std::memory_order_acquire) <= r; ++spins)
                    if (spins % 64 == 63) std::this_thread::yield();
                if (mine.valid()) {
                    try {
                        mine.free();
                        wins[static_cast<std::size_t>(r)].fetch_add(1);
                    } catch (const dragonmem::Error& e) {
                        if (e.code() == DRAGON_KEY_NOT_FOUND)
                            refused.fetch_add(1);
                        else
                            error(std::string("free: ") + e.code_name() + ": " + e.what());
                    }
                }
                sync.arrive_and_wait();
            }
        });
    for (int r = 0; r < rounds; ++r) {
        // A hang detector, not a speed limit: re-armed as rounds complete. The rounds cost
        // almost no CPU but nine threads meet at three barriers in each; on a loaded
        // 2-core machine 20000 of them took more than the 120 s once allowed for all.
        if (r % 500 == 0) watchdog().arm(60000, "double free race, round " + std::to_string(r));
        sync.arrive_and_wait();
        sync.arrive_and_wait();
        go.store(r + 1, std::memory_order_release);
        sync.arrive_and_wait();
    }
    for (auto& th : threads) th.join();
    watchdog().disarm();
    for (const auto& e : error.errors) CHECK_MESSAGE(false, e);
    int bad_rounds = 0;
    std::string first_bad;
    for (int r = 0; r < rounds; ++r) {
        int w = wins[static_cast<std::size_t>(r)].load();
        if (w != 1) {
            if (bad_rounds++ == 0) first_bad = "round " + std::to_string(r) + ": " + std::to_string(w) + " frees succeeded";
        }
    }
    CHECK_MESSAGE(bad_rounds == 0, bad_rounds << " rounds without exactly one successful free; first: " << first_bad);
    CHECK(refused.load() == rounds * (n_threads - 1));
    count_bad_inputs(static_cast<std::uint64_t>(rounds) * (n_threads - 1));
    auto report = checked(pool, "after the race");
    CHECK(report.live_allocations == 0);
    CHECK(pool.attributes().live_allocations == 0);
    in_new_thread([&] {
        std::vector<Memory> blocks = fill(pool, k_block);
        bool distinct = false;
        CHECK(block_bytes(pool, blocks, distinct) == k_heap);
        CHECK_MESSAGE(distinct, "a block was handed out twice");
        checked(pool, "with the heap filled after the race");
        free_each(blocks);
    });
    CHECK(pool.attributes().free_bytes == k_heap);
}

TEST_CASE("bad ids: ids with the cache bits set are never allocations, even where a record holds that very word") {
    ScopedPool scoped(k_heap, small_options(), "bi");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    Actor owner;
    Memory live;
    std::uint64_t parked_id = 0;
    owner.run([&] {
        // A fresh pool: the first allocation takes slot 0; the second, the thread's second
        // locked allocation, claims entry 0. So once freed, slot 0's record holds exactly
        // cached_word(0).
        Memory parked = pool.alloc(64);
        parked_id = parked.id();
        live = pool.alloc(128, 9);
        parked.free();
    });
    const std::uint64_t slot_mask = (std::uint64_t{1} << view.header()->id_slot_bits) - 1;
    REQUIRE((parked_id & slot_mask) == 0);
    REQUIRE(view.records()[0].id.load() == cached_word(0));

    const std::vector<std::pair<std::uint64_t, std::string>> bad_ids{
        {cached_word(0), "cached_word(0) (the word record 0 holds)"},
        {cached_word(1), "cached_word(1)"},
        {cached_word(k_cache_entries - 1), "cached_word(63)"},
        {cached_word(255), "cached_word(255)"},
        {claimed_word(0), "claimed_word(0)"},
        {claimed_word(3), "claimed_word(3)"},
        {k_cached_bit | parked_id, "the parked block's old id | bit 63"},
        {k_cached_bit | live.id(), "a live id | bit 63"},
        {k_claimed_bit | live.id(), "a live id | bit 62"},
        {k_claimed_bit, "2^62"},
        {k_cached_bit, "2^63"},
        {k_cached_bit | k_claimed_bit, "2^63 | 2^62"},
    };
    std::vector<std::uint8_t> ser = pool.serialize();
    dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
    dragonMemoryPoolDescr_t pd;
    REQUIRE(dragon_memory_pool_attach(&pd, &s) == DRAGON_SUCCESS);
    const std::vector<std::uint8_t> live_serial = live.serialize();
    // lib/descr/descriptor_codec.hpp: the memory fields follow the name and, in format 2,
    // the pool's secret (16 B) and the agent's address (its length byte, then the address).
    std::size_t id_at = 58 + live_serial[57];
    if (live_serial[4] == 2) id_at += 16 + 1 + live_serial[id_at + 16];

    auto try_all = [&](const std::string& who) {
        for (const auto& entry : bad_ids) {
            const std::uint64_t bad = entry.first;
            const std::string what = who + ", id " + entry.second;
            CAPTURE(what);
            count_bad_inputs(6);
            expect_error([&] { (void)pool.from_id(bad); }, DRAGON_KEY_NOT_FOUND, "Pool::from_id");
            CHECK_FALSE(pool.allocation_exists(bad));
            dragonMemoryDescr_t mem;
            DM_CHECK_RC(dragon_memory_get_alloc_memdescr(&mem, &pd, bad, 0, nullptr), DRAGON_KEY_NOT_FOUND);
            DM_CHECK_RC(dragon_memory_from_id(&pd, bad, &mem), DRAGON_KEY_NOT_FOUND);

            // A descriptor carrying the id (forged: a live allocation's, id replaced, resealed).
            std::vector<std::uint8_t> forged = live_serial;
            for (int i = 0; i < 8; ++i) forged[id_at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bad >> (8 * i));
            reseal(forged);
            try {
                Memory m = Memory::attach(forged);
                CHECK(m.id() == bad);
                CHECK_FALSE(m.exists());
                expect_error([&] { (void)m.pointer(); }, DRAGON_KEY_NOT_FOUND, "get_pointer of a forged descriptor");
                expect_error([&] { m.free(); }, DRAGON_KEY_NOT_FOUND, "free of a forged descriptor");
            } catch (const dragonmem::Error& e) {
                CHECK_MESSAGE(e.code() == DRAGON_INVALID_ARGUMENT, "Memory::attach threw " << e.code_name() << ": " << e.what());
            }
            dragonMemorySerial_t ms{forged.size(), forged.data()};
            dragonError_t rc = dragon_memory_attach(&mem, &ms);
            if (rc == DRAGON_SUCCESS) {
                void* ptr = nullptr;
                DM_CHECK_RC(dragon_memory_get_pointer(&mem, &ptr), DRAGON_KEY_NOT_FOUND);
                DM_CHECK_RC(dragon_memory_free(&mem), DRAGON_KEY_NOT_FOUND);
                (void)dragon_memory_detach(&mem);
            } else {
                CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, "dragon_memory_attach returned " << toString(rc));
            }
        }
    };

    // While a block is parked: nothing may change, not even the parked record (so no
    // statistics call here: those take parked blocks back).
    auto raw_state = [&] {
        std::vector<std::uint64_t> words;
        for (std::uint64_t slot = 0; slot < view.header()->slot_hwm; ++slot) words.push_back(view.records()[slot].id.load());
        words.push_back(view.header()->live_count);
        words.push_back(dragonmem::detail::heap_state_at(view.base()).free_bytes);
        words.push_back(view.header()->slot_free_head);
        for (unsigned e = 0; e < k_cache_entries; ++e) words.push_back(view.header()->cache_entries[e].owner.load());
        return words;
    };
    auto listing_ids = [&] {
        std::vector<std::uint64_t> ids;
        for (const auto& info : pool.allocations()) ids.push_back(info.id);
        return ids;
    };
    const auto state_before = raw_state();
    const auto listing_before = listing_ids();
    auto report = checked(pool, "before the bad ids");
    REQUIRE(report.cached_blocks == 1);
    try_all("main thread (no cache)");
    owner.run([&] { try_all("the parked block's owner thread"); });
    CHECK(raw_state() == state_before);
    CHECK(listing_ids() == listing_before);
    report = checked(pool, "after the bad ids");
    CHECK(report.cached_blocks == 1);
    CHECK(report.live_allocations == 1);
    CHECK(view.records()[0].id.load() == cached_word(0));

    // And against the full snapshot (statistics included).
    auto before = snapshot(pool);
    try_all("main thread, after the take-back");
    auto after = snapshot(pool);
    CHECK_MESSAGE(after == before, "before " << before.describe() << "\nafter  " << after.describe());
    (void)dragon_memory_pool_detach(&pd);
    owner.run([&] { live.free(); });
    checked(pool, "at the end");
    CHECK(pool.attributes().free_bytes == k_heap);
}

TEST_SUITE_END();
