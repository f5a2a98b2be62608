// Per-thread block caches, refills and take-backs by the run (thread_cache suite; what
// must hold: helpers.hpp). A refill carves its blocks side by side from one free block
// (TlsfHeap::alloc_run) and a full magazine gives its blocks back sorted, each run of
// neighbours as one block (PoolCaches::flush_magazine_locked): every block must still be
// an exact block of its own (aligned, disjoint, freed on its own), and the pool one free
// block once everything is back. And the size-class hint a free files a block by
// (ManifestRecord::size_class) is only a hint: a wrong one never hands a block out at a
// size it does not have.
#include "thread_cache/helpers.hpp"

#include "pool/tlsf_heap.hpp"

#include <random>

using namespace tcache;

TEST_SUITE_BEGIN("thread_cache");

TEST_CASE("runs: blocks refills carve side by side are exact blocks: aligned, disjoint, freed in any order") {
    constexpr std::size_t heap = 16 << 20;
    ScopedPool scoped(heap, {}, "rn");
    Pool& pool = scoped.pool();
    in_new_thread([&] {
        std::mt19937 rng(1616);
        bool cached_seen = false;
        for (int round = 0; round < 4; ++round) {
            for (std::size_t size : {std::size_t{64}, std::size_t{4096}, std::size_t{3000}, std::size_t{20000}}) {
                CAPTURE(round);
                CAPTURE(size);
                const std::size_t block = pool.block_bytes_for(size);
                const std::size_t align = size == 4096 || size == 64 ? size : 64;
                std::vector<Memory> live;
                for (int i = 0; i < 400; ++i) live.push_back(pool.alloc(size, 7));
                std::vector<std::uint64_t> offsets;
                for (const Memory& m : live) {
                    CHECK_MESSAGE(m.block_offset() % align == 0, "offset " << m.block_offset());
                    offsets.push_back(m.block_offset());
                }
                std::sort(offsets.begin(), offsets.end());
                for (std::size_t i = 1; i < offsets.size(); ++i)
                    REQUIRE_MESSAGE(offsets[i - 1] + block <= offsets[i],
                                    "blocks at " << offsets[i - 1] << " and " << offsets[i] << " overlap");
                checked(pool, "with 400 blocks live");
                // Allocation order (the live figure's), reverse, or shuffled: the magazine
                // fills, and each full one goes back to the heap in runs.
                if (round == 1) std::reverse(live.begin(), live.end());
                if (round >= 2) std::shuffle(live.begin(), live.end(), rng);
                for (Memory& m : live) m.free();
                auto report = checked(pool, "after freeing them");
                cached_seen = cached_seen || report.cached_blocks > 0;
                CHECK(report.live_allocations == 0);
            }
        }
        CHECK_MESSAGE(cached_seen, "no block was ever parked in the thread's cache: nothing was tested");
    });
    // Parked blocks are free memory: a statistics call takes them back, and the pool is
    // one free block again.
    CHECK(pool.attributes().free_bytes == heap);
    auto report = checked(pool, "at the end");
    CHECK(report.free_blocks == 1);
    CHECK(report.free_bytes == heap);
}

TEST_CASE("runs: a refill takes its blocks from the free block that best fits one, leaving no hole behind") {
    // A refill used to look for one free block holding its whole run: in a used heap only
    // the large block past everything in use did, so each refill of a warm class took
    // fresh memory and left the holes it could have used (a 2-thread mixed workload grew
    // its pool's touched memory to 230 MB). Now the run is as many blocks as the free
    // block that best fits one holds, then the next run from the next such block.
    constexpr std::size_t heap = 16 << 20;
    constexpr std::size_t size = 4096;  // 4 KiB blocks: a class cached 64 deep in this pool
    ScopedPool scoped(heap, {}, "rh");
    Pool& pool = scoped.pool();
    Actor worker;
    std::vector<Memory> held;
    worker.run([&] {
        // Two locked allocations (the second claims the entry), their frees park (the
        // class now refills), then allocations one by one: each miss refills, twice as
        // many blocks as the one before.
        for (int i = 0; i < 2; ++i) held.push_back(pool.alloc(size, 1));
        free_each(held);
        for (int i = 0; i < 40; ++i) held.push_back(pool.alloc(size, 1));
        free_each(held);
    });
    // Empty the worker's magazine: its next allocation misses and refills (32 blocks).
    const std::size_t parked = checked(pool, "with the worker's blocks parked").cached_blocks;
    REQUIRE_MESSAGE(parked > 0, "no block was parked in the worker's cache: nothing would be tested");
    worker.run([&] {
        for (std::size_t i = 0; i < parked; ++i) held.push_back(pool.alloc(size, 1));
    });
    const auto before = checked(pool, "with the worker's magazine empty");
    REQUIRE(before.cached_blocks == 0);
    // A hole of four blocks, the smallest free block (the frees above gave some back in
    // larger pieces), then a guard, then the rest of the heap: made by a thread whose hole
    // class was never cached, so its free goes to the heap.
    in_new_thread([&] {
        Memory hole = pool.alloc(4 * size, 2);
        Memory guard = pool.alloc(64, 2);  // stays allocated (a handle going out of scope frees nothing)
        hole.free();
    });
    REQUIRE(checked(pool, "with the hole made").free_blocks == before.free_blocks + 1);
    // The miss takes the hole's first block (the best fit) and its refill the other three,
    // then the rest of its 32 from the next best fits: the hole is gone. (Carving the
    // whole run from one free block, the refill took it past the guard, and the hole's
    // three blocks stayed free.)
    worker.run([&] { held.push_back(pool.alloc(size, 1)); });
    auto report = checked(pool, "after the refill");
    CHECK_MESSAGE(report.free_blocks <= before.free_blocks, "the hole was left behind: " << report.free_blocks
                                                                 << " free blocks, " << before.free_blocks << " before it");
    CHECK(report.cached_blocks > 3);
    worker.run([&] { free_each(held); });
    worker.stop();
}

TEST_CASE("size-class hint: a record whose hint was overwritten is never handed out at the hinted size") {
    // 4 MiB: a class's magazine holds up to 64 blocks (heap / 64 bytes), so the frees
    // below are cached whatever warming left in them.
    constexpr std::size_t heap = 4 << 20;
    ScopedPool scoped(heap, small_options(), "hn");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    // The class of 256 B blocks (4 granules of 64 B): another cached class than 64 B's.
    const std::uint32_t class_256 = dragonmem::detail::SizeClasses::list_for(4);
    in_new_thread([&] {
        warm(pool, 2, 4, {64, 256});
        const int entry = my_entry(view);
        REQUIRE_MESSAGE(entry >= 0, "the thread holds no cache entry after warming");
        std::vector<Memory> held;

        SUBCASE("the hint of another cached class") {
            Memory a = pool.alloc(64);
            const std::uint64_t a_offset = a.block_offset();
            auto& rec = view.record_of(a.id());
            rec.size_class.store(class_256);
            a.free();
            // The free was cached, filed by the hint among the 256 B blocks.
            REQUIRE(rec.id.load() == cached_word(static_cast<std::uint32_t>(entry)));
            // The next 256 B request pops it (the top of the stack), sees a 64 B block and
            // drops it; neither it nor the next ones get that block.
            for (int i = 0; i < 8; ++i) {
                Memory b = pool.alloc(256);
                CHECK_MESSAGE(b.block_offset() != a_offset, "a 64 B block was handed out for 256 B");
                held.push_back(std::move(b));
            }
            auto report = checked(pool, "after the wrongly filed block was dropped");
            CHECK(report.cached_blocks >= 1);  // still parked (until a take-back), never lost
        }
        SUBCASE("a hint past every class") {
            Memory a = pool.alloc(64);
            auto& rec = view.record_of(a.id());
            rec.size_class.store(0xFFFFFFFFu);
            const std::uint64_t id = a.id();
            a.free();  // no magazine: the locked path frees it
            CHECK(rec.id.load() != id);
            CHECK((rec.id.load() & k_cached_bit) == 0);
            checked(pool, "after the free of a record with a hint past every class");
        }
        for (Memory& m : held) m.free();
    });
    CHECK(pool.attributes().free_bytes == heap);
    auto report = checked(pool, "at the end");
    CHECK(report.free_blocks == 1);
    CHECK(report.cached_blocks == 0);
}

TEST_CASE("bounds: a magazine holds at most 1 MiB of a class (at least 8 blocks) and a refill takes at most 256 KiB") {
    // 1 GiB: the pool's share (heap / 64 = 16 MiB) is over the 8 MiB budget, so the
    // per-class bounds below are the ones that act.
    constexpr std::size_t heap = std::size_t{1} << 30;
    ScopedPool scoped(heap, {}, "bd");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    in_new_thread([&] {
        first_locked_pair(pool);
        const auto cached_after_frees = [&](std::size_t size, std::size_t count) {
            std::vector<Memory> held;
            for (std::size_t i = 0; i < count; ++i) held.push_back(pool.alloc(size, 1));
            const int entry = my_entry(view);
            REQUIRE_MESSAGE(entry >= 0, "the thread holds no cache entry");
            const std::size_t before = records_of_entry(view, static_cast<unsigned>(entry));
            free_each(held);
            return records_of_entry(view, static_cast<unsigned>(entry)) - before;
        };
        // 4 KiB: 1 MiB is 256 blocks, so the 64-slot bound acts: all 64 frees are parked.
        CHECK(cached_after_frees(4096, 64) == 64);
        // 64 KiB: 16 blocks (1 MiB); the 17th free finds the magazine full and gives half
        // back, and so on: 40 frees leave 8 to 16 parked, never the 40 of 8 MiB per class.
        const std::size_t parked_64k = cached_after_frees(65536, 40);
        CHECK(parked_64k >= 8);
        CHECK(parked_64k <= 16);
        // 1 MiB: the floor of 8 blocks (also the budget's 8 MiB).
        const std::size_t parked_1m = cached_after_frees(std::size_t{1} << 20, 8);
        CHECK(parked_1m == 8);
        // Refills of 64 KiB blocks, now that the class was freed into: doubling 1, 2, 4,
        // 8, then at most 256 KiB (4 blocks) but at least 8 blocks; 8 MiB per class
        // went on to 16, 32, 64. Counted once the blocks parked above are used up.
        const auto entry = static_cast<unsigned>(my_entry(view));
        const auto parked_of_64k = [&] {
            std::size_t n = 0;
            for (std::uint64_t slot = 0; slot < view.header()->slot_hwm; ++slot) {
                const auto& rec = view.records()[slot];
                const std::uint64_t word = rec.id.load();
                if ((word & k_cached_bit) != 0 && (word & dragonmem::detail::k_cache_entry_mask) == entry &&
                    rec.requested_bytes.load() == 65536)
                    ++n;
            }
            return n;
        };
        std::vector<Memory> held;
        bool drained = false;
        std::size_t most = 0;
        for (int i = 0; i < 200; ++i) {
            held.push_back(pool.alloc(65536, 1));
            const std::size_t parked = parked_of_64k();
            drained = drained || parked == 0;
            if (drained) most = std::max(most, parked);
        }
        CHECK(drained);
        CHECK(most == 8);
        free_each(held);
    });
    checked(pool, "at the end");  // ok: every block on a list or named by a record
    CHECK(pool.attributes().free_bytes == heap);  // the parked blocks are taken back
}

TEST_SUITE_END();
