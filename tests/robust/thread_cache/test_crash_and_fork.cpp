// Per-thread block caches, dead processes and fork (thread_cache suite; what must hold:
// helpers.hpp): a process SIGKILLed with a warm cache loses nothing (its cached and
// claimed blocks are reclaimed); a forked child's detach leaves its parent's cache
// alone; check() reports cached blocks that every take-back would skip.
#include "thread_cache/helpers.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <latch>
#include <random>

using namespace tcache;

TEST_SUITE_BEGIN("thread_cache");

TEST_CASE("crash: a process SIGKILLed with a warm cache loses nothing; its cached and claimed blocks are reclaimed") {
    const int rounds = long_mode() ? 200 : 20;
    const std::size_t heap = 128 * 1024;
    const std::uint64_t child_type = 4200;
    ScopedPool scoped(heap, small_options(), "cr");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    const std::string b64 = pool.serialize_base64();
    std::mt19937_64 rng(0x7C7C ^ static_cast<std::uint64_t>(::getpid()));
    std::size_t cached_after_kills = 0;
    int rounds_with_cached = 0;
    // The unissued rest of every killed child's id block: never issued to anyone after.
    std::vector<CounterRange> dead_blocks;
    const unsigned slot_bits = view.header()->id_slot_bits;
    auto never_a_dead_block = [&](std::uint64_t id) {
        const std::uint64_t counter = id >> slot_bits;
        for (const CounterRange& r : dead_blocks)
            CHECK_MESSAGE((counter < r.first || counter >= r.end),
                          "id " << id << " reissues counter " << counter << " of a killed child's id block [" << r.first
                                << ", " << r.end << ")");
    };

    for (int round = 0; round < rounds; ++round) {
        CAPTURE(round);
        Child child = Child::spawn({child_program(), "cache-crash", std::to_string(child_type), std::to_string(rng())},
                                   {{"DMR_POOL", b64}});
        REQUIRE_MESSAGE(child.wait_line("ready", 20000).has_value(), "cache-crash child: " << child.output());
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30000));
        REQUIRE_MESSAGE(!child.try_reap(), "cache-crash child stopped by itself (" << child.result().describe()
                                                                                  << "): " << child.output());
        const pid_t pid = child.pid();
        child.kill_now(SIGKILL);
        ChildResult exit = child.wait(5000);
        REQUIRE(exit.signal == SIGKILL);
        for (const CounterRange& r : unissued_id_blocks_of(view, pid)) dead_blocks.push_back(r);

        // The dead child's cached blocks are used memory, not lost memory.
        auto report = checked(pool, "right after the kill");
        REQUIRE(report.ok);
        cached_after_kills += report.cached_blocks;
        if (report.cached_blocks > 0) ++rounds_with_cached;

        // Its live allocations are listed; everything else can be allocated.
        auto listing = pool.allocations();
        std::uint64_t live_bytes = 0;
        for (const auto& info : listing) {
            CHECK((info.type == child_type || info.type == child_type + 1));
            live_bytes += info.block_bytes;
        }
        CHECK(listing.size() >= 3);  // 4 kept, one of them possibly being replaced
        in_new_thread([&] {
            std::vector<Memory> blocks = fill(pool, k_block);
            for (const Memory& m : blocks) never_a_dead_block(m.id());
            bool distinct = false;
            const std::uint64_t got = block_bytes(pool, blocks, distinct);
            CHECK_MESSAGE(got == heap - live_bytes, "after the kill the parent could allocate " << got << " B; the heap has "
                                                        << heap << " B and the dead child's live allocations " << live_bytes
                                                        << " B");
            CHECK(distinct);
            std::set<std::uint64_t> offsets;
            for (const Memory& m : blocks) offsets.insert(m.block_offset());
            for (const auto& info : listing)
                for (auto it = offsets.lower_bound(info.offset); it != offsets.end() && *it < info.offset + info.block_bytes;
                     ++it)
                    CHECK_MESSAGE(false, "block at " << *it << " overlaps the dead child's allocation id " << info.id);
            auto full = checked(pool, "with the heap filled after the kill");
            CHECK(full.cached_blocks == 0);
            free_each(blocks);
        });
        // The dead child's entry (its one thread's) may stay owned, by a dead thread, until
        // a sweep, a repair or a failing allocation that meets a claimed record of it.
        CHECK(entries_owned_by_pid(view, pid) <= 1);
        for (unsigned e : owned_entries(view))
            if (view.header()->cache_entries[e].pid.load() == static_cast<std::uint32_t>(pid))
                CHECK_MESSAGE(wait_owner_dead(view, e), "entry " << e << " of the killed child names a live thread");

        // They stay listed and anyone may free them.
        auto after = pool.allocations();
        CHECK(after.size() == listing.size());
        for (const auto& info : listing) {
            Memory m = pool.from_id(info.id);
            m.free();
        }
        report = checked(pool, "after freeing the dead child's allocations");
        CHECK(report.live_allocations == 0);
        // The filling thread's exit left its last frees cached: attributes() takes them back.
        auto attrs = pool.attributes();
        CHECK(attrs.free_bytes == heap);
        CHECK(attrs.live_allocations == 0);
        report = checked(pool, "after attributes()");
        CHECK(report.cached_blocks == 0);
        CHECK(report.free_bytes == heap);
    }
    MESSAGE(rounds << " kills: " << rounds_with_cached << " left cached blocks (" << cached_after_kills << " in all), "
                   << dead_blocks.size() << " unissued id blocks");
    CHECK_MESSAGE(rounds_with_cached > 0, "no killed child left cached blocks: the test exercised nothing");
    CHECK_MESSAGE(!dead_blocks.empty(), "no killed child held an unissued id block: the id check exercised nothing");
    Memory whole = pool.alloc(heap);
    whole.free();
    checked(pool, "at the end");
}

TEST_CASE("fork: a forked child's detach leaves its parent's cache alone; after everyone exits the pool is whole and "
          "every count agrees") {
    const std::size_t heap = 1 << 20;
    const int held = 31;
    ScopedPool scoped(heap, small_options(), "fk");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    // The parent caches, holds 31 allocations, forks a child that detaches the pool (its
    // last handle there) and exits; the parent then takes a statistics call and frees
    // the 31, which park in its cache (tests/child/cache_cmds.cpp, fork-cache). Before the fix the
    // child released the parent's entry, the statistics call cleared the scan hint (no
    // entry owned, nothing cached), and the 31 frees parked out of every take-back's
    // sight: the whole-heap allocation at the end failed.
    Child parent = Child::spawn({child_program(), "fork-cache", std::to_string(held)},
                                {{"DMR_POOL", pool.serialize_base64()}});
    auto forked = parent.wait_line("forked", 20000);
    REQUIRE_MESSAGE(forked.has_value(), parent.output());
    CHECK_MESSAGE(field(*forked, "child_exit") == "0", "the forked child's detach failed: " << parent.output());
    REQUIRE_MESSAGE(parent.wait_line("holding", 20000).has_value(), parent.output());

    // The child did not act on the parent's entry: it still names the parent's thread,
    // alive, and holds the parent's parked blocks.
    CHECK_MESSAGE(entries_owned_by_pid(view, parent.pid()) == 1, "the parent lost its cache entry to its child");
    auto report = checked(pool, "while the parent holds a warm cache");
    CHECK(report.cached_blocks >= static_cast<std::size_t>(held));
    CHECK(report.orphaned_cached_blocks == 0);
    CHECK(report.notices.empty());
    CHECK(report.live_allocations == 0);

    // Everyone that allocated exits (a kill: exit never touches the pool either).
    parent.kill_now(SIGKILL);
    parent.wait(5000);
    for (unsigned e : owned_entries(view)) REQUIRE(wait_owner_dead(view, e));
    report = checked(pool, "after every allocating process exited");
    CHECK(report.live_allocations == 0);
    CHECK(report.cached_blocks >= static_cast<std::size_t>(held));
    CHECK_MESSAGE(report.orphaned_cached_blocks == report.cached_blocks,
                  report.orphaned_cached_blocks << " of " << report.cached_blocks
                                                << " cached blocks reported as orphaned");
    CHECK(report.orphaned_cached_bytes == report.cached_bytes);
    CHECK(report.notices.size() == 1);
    const std::string counted = std::to_string(report.orphaned_cached_blocks) + " cached blocks";
    if (!report.notices.empty()) CHECK(report.notices[0].find(counted) != std::string::npos);

    // Every count agrees (dump's count is the attributes'), and the heap is one block again.
    auto attrs = pool.attributes();
    CHECK(attrs.live_allocations == 0);
    CHECK(pool.allocations().empty());
    CHECK(c_listing(pool).empty());
    CHECK(attrs.free_bytes == heap);
    try {
        Memory whole = pool.alloc(heap);
        CHECK(whole.size() == heap);
        whole.free();
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(false, "the whole heap does not allocate after everyone exited: " << std::string(e.what()));
    }
    report = checked(pool, "at the end");
    CHECK(report.cached_blocks == 0);
    CHECK(report.free_bytes == heap);
    CHECK(report.notices.empty());
}

TEST_CASE("fork: check reports cached blocks that every take-back would skip as a problem") {
    ScopedPool scoped(k_heap, small_options(), "fh");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    in_new_thread([&] { warm(pool, 4, 8, {64, 256}); });  // parks blocks under an entry, then exits
    for (unsigned e : owned_entries(view)) REQUIRE(wait_owner_dead(view, e));
    auto report = checked(pool, "with an exited thread's blocks parked");
    REQUIRE(report.cached_blocks > 0);
    CHECK(report.orphaned_cached_blocks == report.cached_blocks);
    // The state the fork bug left: cache records, and a scan hint that says there are none
    // (nobody else uses this pool, so writing the hint here races with nothing).
    view.header()->cache_records_possible = 0;
    auto hidden = pool.check();
    CHECK_FALSE(hidden.ok);
    bool named = false;
    for (const auto& p : hidden.problems)
        named = named || p.find(std::to_string(report.cached_blocks) + " cached blocks") != std::string::npos;
    CHECK_MESSAGE(named, "problems: " << joined(hidden));
    view.header()->cache_records_possible = 1;
    auto attrs = pool.attributes();  // takes them back
    CHECK(attrs.free_bytes == k_heap);
    report = checked(pool, "after the take-back");
    CHECK(report.cached_blocks == 0);
    CHECK(report.notices.empty());
}

TEST_SUITE_END();
