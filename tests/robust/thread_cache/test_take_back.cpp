// Per-thread block caches, take-back (thread_cache suite; what must hold: helpers.hpp):
// parked blocks are free memory for everyone. The statistics calls report them as free
// and return them to the heap; another thread or process that finds the heap short takes
// them from a live owner's cache (stealing); an exited thread's blocks stay parked under
// its entry until taken back; a process's last detach hands its threads' blocks back.
#include "thread_cache/helpers.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <latch>
#include <random>

using namespace tcache;

TEST_SUITE_BEGIN("thread_cache");

TEST_CASE("stats take back: attributes and free_blocks report parked blocks as free and return them to the heap") {
    ScopedPool scoped(k_heap, small_options(), "st");
    Pool& pool = scoped.pool();
    const std::vector<std::size_t> sizes{64, 200, 1000};

    SUBCASE("called by the owner thread") {
        in_new_thread([&] {
            warm(pool, 5, 10, sizes);
            auto report = checked(pool, "after warming");
            REQUIRE_MESSAGE(report.cached_blocks > 0, "nothing was cached: the test cannot tell anything");
            MESSAGE("cached before attributes(): " << report.cached_blocks << " blocks, " << report.cached_bytes
                                                   << " B");
            auto attrs = pool.attributes();
            CHECK(attrs.free_bytes == attrs.heap_bytes);
            CHECK(attrs.live_allocations == 0);
            CHECK(attrs.utilization_pct == 0.0);
            report = checked(pool, "after attributes()");
            CHECK(report.cached_blocks == 0);
            CHECK(report.free_bytes == k_heap);

            // The magazines now name blocks that went back: they must not come out twice.
            std::vector<Memory> blocks;
            for (int i = 0; i < 40; ++i) blocks.push_back(pool.alloc(64 + static_cast<std::size_t>(i % 3) * 300));
            bool distinct = false;
            (void)block_bytes(pool, blocks, distinct);
            CHECK(distinct);
            checked(pool, "after allocating through stale magazine slots");
            free_each(blocks);

            warm(pool, 5, 10, sizes);
            report = checked(pool, "after warming again");
            REQUIRE(report.cached_blocks > 0);
            std::uint64_t free_sum = 0;
            for (const auto& fb : pool.free_blocks()) free_sum += fb.block_bytes * fb.count;
            CHECK(free_sum == k_heap);
            report = checked(pool, "after free_blocks()");
            CHECK(report.cached_blocks == 0);
        });
    }

    SUBCASE("called by another thread while the owner is alive, and through the C API") {
        Actor owner;
        owner.run([&] { warm(pool, 5, 10, sizes); });
        auto report = checked(pool, "after warming");
        REQUIRE_MESSAGE(report.cached_blocks > 0, "nothing was cached: the test cannot tell anything");
        auto attrs = pool.attributes();
        CHECK(attrs.free_bytes == k_heap);
        CHECK(attrs.live_allocations == 0);
        report = checked(pool, "after attributes() from another thread");
        CHECK(report.cached_blocks == 0);

        owner.run([&] { warm(pool, 5, 10, sizes); });
        REQUIRE(checked(pool, "after warming again").cached_blocks > 0);
        std::vector<std::uint8_t> ser = pool.serialize();
        dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
        dragonMemoryPoolDescr_t descr;
        REQUIRE(dragon_memory_pool_attach(&descr, &s) == DRAGON_SUCCESS);
        std::uint64_t free_size = 0;
        DM_CHECK_RC(dragon_memory_pool_get_free_size(&descr, &free_size), DRAGON_SUCCESS);
        CHECK(free_size == k_heap);
        (void)dragon_memory_pool_detach(&descr);
        CHECK(checked(pool, "after get_free_size()").cached_blocks == 0);

        // The owner's magazines are stale now; it goes on working.
        owner.run([&] {
            std::vector<Memory> blocks = fill(pool, 64);
            bool distinct = false;
            CHECK(block_bytes(pool, blocks, distinct) == k_heap);
            CHECK(distinct);
            free_each(blocks);
            warm(pool, 2, 10, sizes);
        });
    }
    checked(pool, "at the end");
    CHECK(pool.attributes().free_bytes == k_heap);
}

namespace {

// A holds cached blocks (warmed with `sizes`, `count` at a time) and stays alive; then B
// allocates `bytes` blocks until refused. Returns B's figures.
struct StealResult {
    std::size_t count = 0;
    std::uint64_t bytes = 0;
    bool distinct = false;
};

void warm_sizes_args(std::vector<std::string>& argv, const std::vector<std::size_t>& sizes) {
    for (std::size_t s : sizes) argv.push_back(std::to_string(s));
}

StealResult steal_a_process_b_thread(Pool& pool, const std::string& name, int rounds, std::size_t count,
                                     const std::vector<std::size_t>& sizes) {
    std::vector<std::string> argv{child_program(), "cache-hold", std::to_string(rounds), std::to_string(count), "keep"};
    warm_sizes_args(argv, sizes);
    Child a = Child::spawn(argv, {{"DMR_POOL", pool.serialize_base64()}});
    REQUIRE_MESSAGE(a.wait_line("holding", 20000).has_value(), "cache-hold child: " << a.output());
    auto report = checked(pool, "while process A holds its cache");
    REQUIRE_MESSAGE(report.cached_blocks > 0, "process A cached nothing: the test cannot tell anything");
    MESSAGE("process A holds " << report.cached_blocks << " cached blocks (" << report.cached_bytes << " B)");
    ShmView view(name, false);
    REQUIRE(view.ok());
    CHECK(entries_owned_by_pid(view, a.pid()) == 1);
    StealResult result;
    in_new_thread([&] {
        std::vector<Memory> blocks = fill(pool, k_block);
        result.count = blocks.size();
        result.bytes = block_bytes(pool, blocks, result.distinct);
        checked(pool, "with the pool filled by B");
        free_each(blocks);
    });
    REQUIRE_MESSAGE(!a.try_reap(), "process A stopped by itself: " << a.output());
    a.kill_now(SIGKILL);
    a.wait(5000);
    return result;
}

StealResult steal_a_thread_b_process(Pool& pool, int rounds, std::size_t count, const std::vector<std::size_t>& sizes) {
    Actor a;
    a.run([&] { warm(pool, rounds, count, sizes); });
    auto report = checked(pool, "while thread A holds its cache");
    REQUIRE_MESSAGE(report.cached_blocks > 0, "thread A cached nothing: the test cannot tell anything");
    MESSAGE("thread A holds " << report.cached_blocks << " cached blocks (" << report.cached_bytes << " B)");
    Child b = Child::spawn({child_program(), "cache-fill", std::to_string(k_block)},
                           {{"DMR_POOL", pool.serialize_base64()}});
    auto line = b.wait_line("fill", 30000);
    REQUIRE_MESSAGE(line.has_value(), "cache-fill child: " << b.output());
    StealResult result;
    result.count = std::stoull(field(*line, "count"));
    result.bytes = result.count * k_block;
    result.distinct = field(*line, "distinct") == "1";
    auto rc = static_cast<dragonError_t>(std::stoi(field(*line, "rc")));
    CHECK_MESSAGE((rc == DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE || rc == DRAGON_OUT_OF_SPACE),
                  "process B's last allocation: " << *line);
    auto freed = b.wait_line("freed", 30000);
    REQUIRE_MESSAGE(freed.has_value(), "cache-fill child: " << b.output());
    CHECK(field(*freed, "failures") == "0");
    ChildResult exit = b.wait(10000);
    CHECK_MESSAGE(exit.exited_with(0), exit.describe());
    // A goes on using its (now stale) magazines, then exits.
    a.run([&] { warm(pool, 2, count, sizes); });
    return result;
}

}  // namespace

TEST_CASE("stealing: blocks cached by a live thread or process are never out of reach of another allocator") {
    const std::vector<std::size_t> sizes{64, 128, 256, 512, 1024};
    SUBCASE("heap: A is a process, B a thread of the test") {
        ScopedPool scoped(k_heap, small_options(), "sh1");
        StealResult r = steal_a_process_b_thread(scoped.pool(), scoped.name(), 20, 8, sizes);
        CHECK_MESSAGE(r.bytes == k_heap, "B got " << r.count << " blocks, " << r.bytes << " B of " << k_heap);
        CHECK(r.distinct);
        checked(scoped.pool(), "at the end");
    }
    SUBCASE("heap: A is a thread of the test, B a process") {
        ScopedPool scoped(k_heap, small_options(), "sh2");
        StealResult r = steal_a_thread_b_process(scoped.pool(), 20, 8, sizes);
        CHECK_MESSAGE(r.bytes == k_heap, "B got " << r.count << " blocks, " << r.bytes << " B of " << k_heap);
        CHECK(r.distinct);
        checked(scoped.pool(), "at the end");
        CHECK(scoped.pool().attributes().free_bytes == k_heap);
    }
    // Manifest slots: A's cached blocks hold records; B must still get max_allocations.
    const std::size_t max_allocations = 32;
    const std::vector<std::size_t> slot_sizes{64, 128};
    SUBCASE("manifest slots: A is a process, B a thread of the test") {
        ScopedPool scoped(k_heap, small_options(max_allocations), "ss1");
        StealResult r = steal_a_process_b_thread(scoped.pool(), scoped.name(), 10, 16, slot_sizes);
        CHECK_MESSAGE(r.count == max_allocations, "B made " << r.count << " allocations of " << max_allocations);
        CHECK(r.distinct);
        checked(scoped.pool(), "at the end");
    }
    SUBCASE("manifest slots: A is a thread of the test, B a process") {
        ScopedPool scoped(k_heap, small_options(max_allocations), "ss2");
        StealResult r = steal_a_thread_b_process(scoped.pool(), 10, 16, slot_sizes);
        CHECK_MESSAGE(r.count == max_allocations, "B made " << r.count << " allocations of " << max_allocations);
        CHECK(r.distinct);
        checked(scoped.pool(), "at the end");
    }
}

TEST_CASE("thread exit: an exited thread's cached blocks stay parked under its entry until taken back; the next "
          "thread of the process to claim an entry sweeps it") {
    ScopedPool scoped(k_heap, small_options(), "te");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    REQUIRE(owned_entries(view).empty());

    // Exit never touches the pool (it must not wait for the lock nor race a destroy): the
    // blocks stay cached(E) and the entry keeps naming the thread, now dead.
    int entry = -1;
    std::uint64_t owner = 0;
    dragonmem::CheckReport before;
    in_new_thread([&] {
        warm(pool, 4, 8, {64, 128, 512});
        entry = my_entry(view);
        owner = dragonmem::detail::current_owner_word();
        before = checked(pool, "before the thread exits");
    });
    REQUIRE_MESSAGE(entry >= 0, "the thread held no cache entry");
    REQUIRE_MESSAGE(before.cached_blocks >= 3,
                    "the thread cached only " << before.cached_blocks << " blocks: the test cannot tell anything");
    MESSAGE("the thread held entry " << entry << " with " << before.cached_blocks << " cached blocks");
    const auto e = static_cast<unsigned>(entry);
    REQUIRE(wait_owner_dead(view, e));
    auto report = checked(pool, "after the thread exited");
    CHECK(report.cached_blocks == before.cached_blocks);
    CHECK(report.cached_bytes == before.cached_bytes);
    CHECK(report.free_bytes == before.free_bytes);
    CHECK(report.live_allocations == 0);
    CHECK(records_of_entry(view, e) == before.cached_blocks);
    CHECK(view.header()->cache_entries[e].owner.load() == owner);
    CHECK(owned_entries(view) == std::vector<unsigned>{e});

    // A statistics call takes them back (and leaves the entry as it is).
    auto attrs = pool.attributes();
    CHECK(attrs.free_bytes == k_heap);
    CHECK(attrs.live_allocations == 0);
    report = checked(pool, "after attributes()");
    CHECK(report.cached_blocks == 0);
    CHECK(report.free_bytes == k_heap);
    CHECK(records_of_entry(view, e) == 0);
    CHECK(view.header()->cache_entries[e].owner.load() == owner);

    // The same through free_blocks(), for a second exited thread.
    int entry2 = -1;
    std::size_t cached2 = 0;
    in_new_thread([&] {
        warm(pool, 4, 8, {64, 256});
        entry2 = my_entry(view);
        cached2 = checked(pool, "before the second thread exits").cached_blocks;
    });
    REQUIRE_MESSAGE(entry2 >= 0, "the second thread held no cache entry");
    REQUIRE_MESSAGE(cached2 > 0, "the second thread cached nothing");
    // Its claim swept the first thread's entry (an exited thread of this process): only
    // the second thread's is owned now.
    CHECK(owned_entries(view) == std::vector<unsigned>{static_cast<unsigned>(entry2)});
    CHECK(checked(pool, "after the second thread exited").cached_blocks == cached2);
    std::uint64_t free_sum = 0;
    for (const auto& fb : pool.free_blocks()) free_sum += fb.block_bytes * fb.count;
    CHECK(free_sum == k_heap);
    CHECK(checked(pool, "after free_blocks()").cached_blocks == 0);
    CHECK(owned_entries(view).size() == 1);

    // More threads, one after another, than there are entries: each one's claim takes
    // back the blocks of the thread before it (exited) and releases its entry, so the
    // pool never holds more than one exited thread's cache. (Before, exited threads'
    // entries stayed owned, with their blocks parked, until every entry was taken: each
    // new thread carved its cache from memory nobody had used yet.)
    const int sequential = static_cast<int>(k_cache_entries) + 36;
    int without_entry = 0;
    std::size_t max_owned = owned_entries(view).size();
    std::size_t max_parked_entries = 0;
    for (int i = 0; i < sequential; ++i) {
        in_new_thread([&] {
            warm(pool, 2, 4, {64, 256});
            if (my_entry(view) < 0) ++without_entry;
        });
        const std::vector<unsigned> owned = owned_entries(view);
        max_owned = std::max(max_owned, owned.size());
        std::size_t parked_entries = 0;
        for (unsigned e = 0; e < k_cache_entries; ++e) parked_entries += records_of_entry(view, e) != 0 ? 1 : 0;
        max_parked_entries = std::max(max_parked_entries, parked_entries);
    }
    CHECK_MESSAGE(without_entry == 0, without_entry << " of " << sequential << " threads got no cache entry");
    CHECK_MESSAGE(max_owned == 1, "up to " << max_owned << " entries were owned at once: exited threads' entries "
                                           "were not released by the next thread's claim");
    CHECK_MESSAGE(max_parked_entries == 1,
                  "blocks were parked under up to " << max_parked_entries << " entries at once: exited threads' "
                                                       "blocks were not taken back by the next thread's claim");
    for (unsigned owned : owned_entries(view))
        CHECK_MESSAGE(wait_owner_dead(view, owned), "entry " << owned << " is owned by a live thread");
    checked(pool, "at the end");
    attrs = pool.attributes();
    CHECK(attrs.free_bytes == k_heap);
    CHECK(attrs.live_allocations == 0);
    report = checked(pool, "after attributes() at the end");
    CHECK(report.cached_blocks == 0);
    CHECK(report.free_bytes == k_heap);
}

TEST_CASE("thread exit, many records: a claim sweeps exited threads' entries only once one scan of the used records "
          "serves enough of them") {
    // 66,000 live records: a sweep (one scan of them) waits for two exited threads.
    constexpr std::size_t live = 66000;
    ScopedPool scoped(8 << 20, small_options(live + 4096), "tm");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    std::vector<Memory> held;
    held.reserve(live);
    for (std::size_t i = 0; i < live; ++i) held.push_back(pool.alloc(k_block));
    const std::size_t ours = owned_entries(view).size();  // this (the test's) thread's entry, if it took one
    int first = -1, second = -1, third = -1;
    in_new_thread([&] {
        warm(pool, 2, 4, {64, 256});
        first = my_entry(view);
    });
    REQUIRE(first >= 0);
    REQUIRE(wait_owner_dead(view, static_cast<unsigned>(first)));
    const std::size_t parked = records_of_entry(view, static_cast<unsigned>(first));
    REQUIRE(parked > 0);
    in_new_thread([&] {
        warm(pool, 2, 4, {64, 256});
        second = my_entry(view);
    });
    REQUIRE(second >= 0);
    CHECK(second != first);
    // One exited thread, 66,000 records in use: not swept yet.
    CHECK(records_of_entry(view, static_cast<unsigned>(first)) == parked);
    CHECK(owned_entries(view).size() == ours + 2);
    REQUIRE(wait_owner_dead(view, static_cast<unsigned>(second)));
    in_new_thread([&] {
        warm(pool, 2, 4, {64, 256});
        third = my_entry(view);
    });
    REQUIRE(third >= 0);
    // Two exited threads: one scan serves both.
    const bool first_swept = first == third || records_of_entry(view, static_cast<unsigned>(first)) == 0;
    CHECK(first_swept);
    CHECK(owned_entries(view).size() == ours + 1);
    const bool second_swept = second == third || records_of_entry(view, static_cast<unsigned>(second)) == 0;
    CHECK(second_swept);
    free_each(held);
    checked(pool, "at the end");
}

TEST_CASE("thread exit, other processes: entries of dead threads of other processes stay owned until every entry is "
          "taken; the next thread then sweeps them and gets one") {
    ScopedPool scoped(k_heap, small_options(), "tx");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    // Every entry claimed by a thread of another process, each killed with blocks
    // cached: a claim in this process finds no exited thread of its own to sweep.
    std::vector<Child> children;
    for (unsigned i = 0; i < k_cache_entries; ++i) {
        children.push_back(Child::spawn({child_program(), "cache-hold", "2", "2", "keep", "64", "256"},
                                        {{"DMR_POOL", pool.serialize_base64()}}));
        auto line = children.back().wait_line("holding", 30000);
        REQUIRE_MESSAGE(line.has_value(), "cache-hold child " << i << ": " << children.back().output());
    }
    for (Child& child : children) child.kill_now(SIGKILL);
    for (Child& child : children) (void)child.wait(10000);
    REQUIRE(owned_entries(view).size() == k_cache_entries);
    for (unsigned e = 0; e < k_cache_entries; ++e) REQUIRE(wait_owner_dead(view, e));
    const auto parked = checked(pool, "with every entry held by a dead process").cached_blocks;
    REQUIRE_MESSAGE(parked >= k_cache_entries, "the children cached only " << parked << " blocks");
    int entry = -1;
    in_new_thread([&] {
        warm(pool, 2, 2, {64});
        entry = my_entry(view);
    });
    CHECK_MESSAGE(entry >= 0, "the thread got no cache entry: the dead owners' entries were not swept");
    CHECK(owned_entries(view).size() == 1);
    checked(pool, "after the sweep");
    auto attrs = pool.attributes();
    CHECK(attrs.free_bytes == k_heap);
    CHECK(attrs.live_allocations == 0);
}

TEST_CASE("detach: a process's last detach hands its threads' cached blocks back, while the process lives on") {
    ScopedPool scoped(k_heap, small_options(), "dt");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    // Without detaching first: the blocks stay cached while the process lives (the
    // contrast that shows the detach is what hands them back).
    Child keep = Child::spawn({child_program(), "cache-hold", "10", "8", "keep", "64", "256"},
                              {{"DMR_POOL", pool.serialize_base64()}});
    REQUIRE_MESSAGE(keep.wait_line("holding", 20000).has_value(), keep.output());
    auto report = checked(pool, "while a process holds a warm cache");
    REQUIRE(report.cached_blocks > 0);
    CHECK(entries_owned_by_pid(view, keep.pid()) == 1);
    keep.kill_now(SIGKILL);
    keep.wait(5000);
    (void)pool.attributes();  // takes back the dead process's blocks
    REQUIRE(checked(pool, "after the kill").cached_blocks == 0);

    Child detach = Child::spawn({child_program(), "cache-hold", "10", "8", "detach", "64", "256"},
                                {{"DMR_POOL", pool.serialize_base64()}});
    REQUIRE_MESSAGE(detach.wait_line("holding", 20000).has_value(), detach.output());
    report = checked(pool, "after a process detached with a warm cache");
    CHECK(report.cached_blocks == 0);
    CHECK(report.free_bytes == k_heap);
    CHECK(entries_owned_by_pid(view, detach.pid()) == 0);
    CHECK_MESSAGE(!detach.try_reap(), "the detaching process stopped: " << detach.output());
    detach.kill_now(SIGKILL);
    detach.wait(5000);
}

TEST_SUITE_END();
