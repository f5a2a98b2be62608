// Per-thread block caches (lib/pool/thread_cache.hpp): once a thread holds a cache entry (it
// claims one at its second locked allocation in a pool), its frees park blocks in its own
// magazines (the manifest record's id word becomes cached(E)) and its next allocations
// reuse them without the lock. What must hold whatever the caches do:
//   - a parked block is free memory for everyone: an allocation that would fail, the
//     statistics calls, the process's last detach, a repair and (for dead owners) a
//     thread that finds every entry taken all take it back; nothing is ever stuck in a
//     cache. A thread's exit does not touch the pool: its blocks stay parked under its
//     entry, whose owner is now a dead thread, until one of those takes them back;
//   - a block another thread is claiming this instant (a claimed record of a live
//     owner) is never taken;
//   - a parked block is not an allocation: it is not listed, its old id is dead (a second
//     free, from any descriptor, thread or process, is KEY_NOT_FOUND and changes
//     nothing), and no block is ever handed out twice;
//   - check() counts parked blocks as used (cached_blocks/cached_bytes), never as lost.
// Each case makes sure the cache really holds blocks before asserting (check() reports
// cached blocks without taking them back), so it fails if the feature is broken rather
// than passing because nothing was cached. No timing assertions: bounds on waits are
// failure limits only.
#include "pool/manifest.hpp"
#include "pool/robust_lock.hpp"
#include "shm_view.hpp"
#include "support.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <bit>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <latch>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace robust;
using dragonmem::detail::cached_word;
using dragonmem::detail::claimed_word;
using dragonmem::detail::k_cache_entries;
using dragonmem::detail::k_cached_bit;
using dragonmem::detail::k_claimed_bit;

TEST_SUITE_BEGIN("thread_cache");

namespace {

// Collects the errors worker threads report (callable from any thread), keeping the first 20.
struct ErrorLog {
    std::mutex mutex;
    std::vector<std::string> errors;
    void operator()(const std::string& e) {
        std::lock_guard lock(mutex);
        if (errors.size() < 20) errors.push_back(e);
    }
};


constexpr std::size_t k_heap = 64 * 1024;  // 1024 blocks of 64 B
constexpr std::size_t k_block = 64;

dragonmem::PoolOptions small_options(std::size_t max_allocations = 0) {
    dragonmem::PoolOptions options;
    options.min_block_bytes = k_block;
    options.max_allocations = max_allocations;
    return options;
}

std::string joined(const dragonmem::CheckReport& r) {
    std::string out;
    for (const auto& p : r.problems) out += p + " | ";
    return out;
}

dragonmem::CheckReport checked(const Pool& pool, const std::string& when) {
    watchdog().arm(15000, "check() " + when);
    auto report = pool.check();
    watchdog().disarm();
    CHECK_MESSAGE(report.ok, "check() failed " << when << ": " << joined(report));
    return report;
}

// Runs `fn` in a new thread (a thread with no cache yet) and rethrows what it threw, a
// failed REQUIRE included. The thread has exited on return (its cached blocks, if any,
// stay parked under its entry, now owned by a dead thread).
template <typename Fn>
void in_new_thread(Fn&& fn) {
    std::exception_ptr error;
    std::thread thread([&] {
        try {
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    thread.join();
    if (error) std::rethrow_exception(error);
}

// A thread that stays alive (keeping its cache) and runs what it is given, in order.
class Actor {
public:
    Actor() : thread_([this] { loop(); }) {}
    ~Actor() { stop(); }
    Actor(const Actor&) = delete;
    Actor& operator=(const Actor&) = delete;

    std::future<void> post(std::function<void()> fn) {
        std::packaged_task<void()> task(std::move(fn));
        std::future<void> done = task.get_future();
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        }
        cv_.notify_one();
        return done;
    }
    // Runs `fn` on the actor's thread and waits; rethrows what it threw.
    void run(std::function<void()> fn) { post(std::move(fn)).get(); }
    // Ends the thread (its cached blocks stay parked under its entry) and joins it.
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_one();
        if (thread_.joinable()) thread_.join();
    }

private:
    void loop() {
        for (;;) {
            std::packaged_task<void()> task;
            {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
                if (tasks_.empty()) return;
                task = std::move(tasks_.front());
                tasks_.pop_front();
            }
            task();
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::packaged_task<void()>> tasks_;
    bool stopping_ = false;
    std::thread thread_;
};

// Warms the calling thread's cache: `rounds` times, for each size, `count` allocations
// then their frees (which park in the cache, up to each magazine's bound). With count >= 2
// the first round's first two allocations take the lock, the second claiming the entry.
void warm(const Pool& pool, int rounds, std::size_t count, const std::vector<std::size_t>& sizes) {
    std::vector<Memory> held;
    for (int r = 0; r < rounds; ++r)
        for (std::size_t size : sizes) {
            for (std::size_t i = 0; i < count; ++i) held.push_back(pool.alloc(size, 1));
            for (Memory& m : held) m.free();
            held.clear();
        }
}

// The calling thread's first locked allocation in `pool` (its first allocation there)
// claims no cache entry (thread_cache.hpp): this pair's free goes straight to the heap,
// and the thread's next allocation, locked too, claims the entry.
void first_locked_pair(const Pool& pool) {
    Memory m = pool.alloc(k_block);
    m.free();
}

// Allocates `bytes` blocks until the pool refuses one (which must be a plain refusal).
std::vector<Memory> fill(const Pool& pool, std::size_t bytes, std::uint64_t type = 0) {
    std::vector<Memory> blocks;
    watchdog().arm(30000, "filling the pool");
    for (;;) {
        try {
            blocks.push_back(pool.alloc(bytes, type));
        } catch (const dragonmem::Error& e) {
            CHECK_MESSAGE((e.code() == DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE || e.code() == DRAGON_OUT_OF_SPACE),
                          "the pool refused with " << e.code_name() << ": " << e.what());
            break;
        }
    }
    watchdog().disarm();
    return blocks;
}

// Block sizes of `blocks` summed, and whether their offsets are all different.
std::uint64_t block_bytes(const Pool& pool, const std::vector<Memory>& blocks, bool& distinct) {
    std::set<std::uint64_t> offsets;
    std::uint64_t sum = 0;
    const std::uint64_t min_block = pool.attributes().min_block_bytes;
    for (const Memory& m : blocks) {
        offsets.insert(m.block_offset());
        sum += std::max<std::uint64_t>(std::bit_ceil(static_cast<std::uint64_t>(m.size())), min_block);
    }
    distinct = offsets.size() == blocks.size();
    return sum;
}

void free_each(std::vector<Memory>& blocks) {
    for (Memory& m : blocks) m.free();
    blocks.clear();
}

// Cache entries with an owner, and the one the calling thread owns (-1: none).
std::vector<unsigned> owned_entries(const ShmView& view) {
    std::vector<unsigned> out;
    for (unsigned e = 0; e < k_cache_entries; ++e)
        if (view.header()->cache_entries[e].owner.load() != 0) out.push_back(e);
    return out;
}
int my_entry(const ShmView& view) {
    const std::uint64_t me = dragonmem::detail::current_owner_word();
    for (unsigned e = 0; e < k_cache_entries; ++e)
        if (view.header()->cache_entries[e].owner.load() == me) return static_cast<int>(e);
    return -1;
}
// Whether entry `e`'s owner (thread) is gone.
bool entry_owner_dead(const ShmView& view, unsigned e) {
    return dragonmem::detail::owner_word_is_dead(view.header()->cache_entries[e].owner.load());
}
// Waits (a failure bound, not a speed requirement) until entry `e`'s owner reads as
// gone: a joined thread's task may still be finishing its exit for a moment.
bool wait_owner_dead(const ShmView& view, unsigned e) {
    for (int i = 0; i < 10000; ++i) {
        if (entry_owner_dead(view, e)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return entry_owner_dead(view, e);
}
// Records that name cache entry `e` (cached or claimed).
std::size_t records_of_entry(const ShmView& view, unsigned e) {
    std::size_t n = 0;
    for (std::uint64_t slot = 0; slot < view.header()->slot_hwm; ++slot) {
        std::uint64_t word = view.records()[slot].id.load();
        if ((word & k_cached_bit) != 0 && (word & dragonmem::detail::k_cache_entry_mask) == e) ++n;
    }
    return n;
}
// Entries still owned by (a thread of) process `pid`.
// The unissued part [next, end) of the id block of every entry that process `pid`
// claimed (pool_layout.hpp, IdBlock).
struct CounterRange {
    std::uint64_t first;
    std::uint64_t end;
};
std::vector<CounterRange> unissued_id_blocks_of(const ShmView& view, pid_t pid) {
    const auto* blocks = reinterpret_cast<const dragonmem::detail::IdBlock*>(
        static_cast<const std::uint8_t*>(view.base()) + dragonmem::detail::k_id_blocks_offset);
    std::vector<CounterRange> out;
    for (unsigned e = 0; e < k_cache_entries; ++e) {
        const std::uint64_t end = blocks[e].end.load();
        const std::uint64_t next = blocks[e].next.load();
        if (view.header()->cache_entries[e].pid.load() == static_cast<std::uint32_t>(pid) && next < end)
            out.push_back({next, end});
    }
    return out;
}

int entries_owned_by_pid(const ShmView& view, pid_t pid) {
    int n = 0;
    for (unsigned e = 0; e < k_cache_entries; ++e)
        if (view.header()->cache_entries[e].owner.load() != 0 &&
            view.header()->cache_entries[e].pid.load() == static_cast<std::uint32_t>(pid))
            ++n;
    return n;
}

// The C API's listing of every allocation: its ids.
std::vector<std::uint64_t> c_listing(const Pool& pool) {
    std::vector<std::uint8_t> ser = pool.serialize();
    dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
    dragonMemoryPoolDescr_t descr;
    REQUIRE(dragon_memory_pool_attach(&descr, &s) == DRAGON_SUCCESS);
    dragonMemoryPoolAllocations_t allocs{};
    dragonError_t rc = dragon_memory_pool_get_allocations(&descr, &allocs);
    CHECK(rc == DRAGON_SUCCESS);
    std::vector<std::uint64_t> ids;
    if (rc == DRAGON_SUCCESS) {
        ids.assign(allocs.ids, allocs.ids + allocs.nallocs);
        (void)dragon_memory_pool_allocations_destroy(&allocs);
    }
    (void)dragon_memory_pool_detach(&descr);
    return ids;
}

// `fn` throws dragonmem::Error with `code` (and a message).
template <typename Fn>
void expect_error(Fn&& fn, dragonError_t code, const std::string& what) {
    try {
        fn();
        CHECK_MESSAGE(false, what << ": succeeded (expected " << toString(code) << ")");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == code, what << ": threw " << e.code_name() << " (expected " << toString(code)
                                              << "): " << e.what());
        CHECK_MESSAGE(std::strlen(e.what()) > 0, what << ": no message");
    }
}

}  // namespace

// ---------------------------------------------------------------------------- 1

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

// ---------------------------------------------------------------------------- 2

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
        ROBUST_CHECK_RC(dragon_memory_pool_get_free_size(&descr, &free_size), DRAGON_SUCCESS);
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

// ---------------------------------------------------------------------------- 3

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
    Child a = Child::spawn(argv, {"DMR_POOL=" + pool.serialize_base64()});
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
                           {"DMR_POOL=" + pool.serialize_base64()});
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
    ChildExit exit = b.wait(10000);
    CHECK_MESSAGE((exit.exited && exit.code == 0), exit.describe() << ": " << b.output());
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

// ---------------------------------------------------------------------------- 4

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
            ROBUST_CHECK_RC(dragon_memory_free(&first), DRAGON_SUCCESS);
            REQUIRE_MESSAGE(checked(pool, "after the first free").cached_blocks == 1,
                            "the first free did not go to the cache");
            count_bad_inputs(2);
            ROBUST_CHECK_RC(dragon_memory_free(&second), DRAGON_KEY_NOT_FOUND);
            ROBUST_CHECK_RC(dragon_memory_free(&third), DRAGON_KEY_NOT_FOUND);
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

// ---------------------------------------------------------------------------- 5

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

// ---------------------------------------------------------------------------- 6

TEST_CASE("thread exit: an exited thread's cached blocks stay parked under its entry until taken back; its entry is "
          "swept when every entry is taken") {
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
    CHECK(entry2 != entry);  // the first thread's entry is still owned
    REQUIRE_MESSAGE(cached2 > 0, "the second thread cached nothing");
    CHECK(checked(pool, "after the second thread exited").cached_blocks == cached2);
    std::uint64_t free_sum = 0;
    for (const auto& fb : pool.free_blocks()) free_sum += fb.block_bytes * fb.count;
    CHECK(free_sum == k_heap);
    CHECK(checked(pool, "after free_blocks()").cached_blocks == 0);
    CHECK(owned_entries(view).size() == 2);

    // More threads, one after another, than there are entries: exited threads' entries
    // stay owned until every entry is taken; the next thread then sweeps the dead owners'
    // entries (freeing their blocks) and claims one. Every thread gets an entry.
    const int sequential = static_cast<int>(k_cache_entries) + 36;
    int without_entry = 0, sweeps = 0;
    std::size_t max_owned = owned_entries(view).size();
    std::size_t last_owned = max_owned;
    for (int i = 0; i < sequential; ++i) {
        in_new_thread([&] {
            warm(pool, 2, 4, {64, 256});
            if (my_entry(view) < 0) ++without_entry;
        });
        const std::size_t owned = owned_entries(view).size();
        max_owned = std::max(max_owned, owned);
        if (owned < last_owned) ++sweeps;
        last_owned = owned;
    }
    CHECK_MESSAGE(without_entry == 0, without_entry << " of " << sequential << " threads got no cache entry");
    CHECK_MESSAGE(max_owned == k_cache_entries,
                  "at most " << max_owned << " entries were owned at once: exited threads' entries were released");
    CHECK_MESSAGE(sweeps >= 1, "no thread swept the dead owners' entries");
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

// ---------------------------------------------------------------------------- 7

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
                                   {"DMR_POOL=" + b64});
        REQUIRE_MESSAGE(child.wait_line("ready", 20000).has_value(), "cache-crash child: " << child.output());
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30000));
        REQUIRE_MESSAGE(!child.try_reap(), "cache-crash child stopped by itself (" << child.exit_status().describe()
                                                                                  << "): " << child.output());
        const pid_t pid = child.pid();
        child.kill_now(SIGKILL);
        ChildExit exit = child.wait(5000);
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

// ---------------------------------------------------------------------------- 8

TEST_CASE("ids: unique across threads, increasing within each thread, every issued id attaches; blocks of exited "
          "threads are never reissued") {
    ScopedPool scoped(1 << 20, small_options(), "ids");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    const unsigned slot_bits = view.header()->id_slot_bits;
    constexpr int k_threads = 4;
    constexpr int k_rounds = 3;  // each round's threads exit; the next round's reuse their entries
    std::mutex mutex;
    std::set<std::uint64_t> all_ids;
    std::vector<CounterRange> exited_blocks;
    ErrorLog errors;
    for (int round = 0; round < k_rounds; ++round) {
        CAPTURE(round);
        std::vector<std::thread> threads;
        std::barrier start(k_threads);
        for (int t = 0; t < k_threads; ++t)
            threads.emplace_back([&, t] {
                std::vector<std::uint64_t> mine;
                std::vector<Memory> keep;
                std::mt19937 rng(static_cast<unsigned>(round * 100 + t));
                start.arrive_and_wait();
                for (int i = 0; i < 1500; ++i) {
                    Memory m = pool.alloc(32 + rng() % 200);  // two sizes of block: cached and locked paths
                    mine.push_back(m.id());
                    if (i % 100 == 0) {
                        // Every issued id attaches by descriptor (none is mistaken for a reserved one).
                        try {
                            Memory again = Memory::attach(m.serialize());
                            if (again.pointer() != m.pointer()) errors("attach of id " + std::to_string(m.id()) + " gave another block");
                        } catch (const dragonmem::Error& e) {
                            errors("attach of issued id " + std::to_string(m.id()) + ": " + e.what());
                        }
                    }
                    if (rng() % 4 == 0 && keep.size() < 40) keep.push_back(std::move(m));
                    else m.free();
                }
                for (Memory& m : keep) m.free();
                for (std::size_t i = 1; i < mine.size(); ++i)
                    if (mine[i] <= mine[i - 1]) {
                        errors("thread " + std::to_string(t) + ": id " + std::to_string(mine[i]) + " after " +
                               std::to_string(mine[i - 1]));
                        break;
                    }
                std::lock_guard lock(mutex);
                for (std::uint64_t id : mine)
                    if (!all_ids.insert(id).second) errors("id " + std::to_string(id) + " issued twice");
                for (std::uint64_t id : mine)
                    for (const CounterRange& r : exited_blocks)
                        if ((id >> slot_bits) >= r.first && (id >> slot_bits) < r.end)
                            errors("id " + std::to_string(id) + " reissues an exited thread's unissued block");
            });
        for (std::thread& th : threads) th.join();
        // What the exited threads left unissued in their blocks (their entries stay owned
        // by dead threads until a sweep; the next round's threads may take them over).
        for (const CounterRange& r : unissued_id_blocks_of(view, ::getpid())) exited_blocks.push_back(r);
    }
    for (const std::string& e : errors.errors) FAIL_CHECK(e);
    CHECK(all_ids.size() == std::size_t{k_rounds} * k_threads * 1500);
    CHECK_MESSAGE(!exited_blocks.empty(), "no exited thread held an unissued block: the reuse check exercised nothing");
    CHECK(view.header()->id_counter.load() >= (*all_ids.rbegin() >> slot_bits));
    checked(pool, "after the id rounds");
}

TEST_CASE("many threads: more threads than cache entries allocate and free concurrently; all succeed") {
    const int n_threads = static_cast<int>(k_cache_entries) + 16;  // 80
    const int rounds = long_mode() ? 20000 : 2000;
    dragonmem::PoolOptions options;
    options.max_allocations = 65536;
    const std::size_t heap = 8 << 20;
    ScopedPool scoped(heap, options, "mt");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());

    std::latch start(n_threads);
    std::latch all_in(n_threads);  // every thread alive and past its first round
    std::atomic<int> running{n_threads};
    std::atomic<std::uint64_t> ops{0};
    std::atomic<int> with_entry{0};
    ErrorLog error;  // what worker threads saw go wrong (the first 20)
    std::vector<std::thread> threads;
    watchdog().arm(long_mode() ? 900000 : 180000, "80 threads allocating and freeing");
    for (int t = 0; t < n_threads; ++t)
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(static_cast<std::uint64_t>(t) * 7919 + 1);
            std::vector<Memory> held;
            auto one_round = [&](std::size_t min_k) {
                std::size_t k = std::max<std::size_t>(min_k, 1 + rng() % 4);
                for (std::size_t i = 0; i < k; ++i) {
                    std::size_t bytes = 8 + rng() % 4089;
                    Memory m = pool.alloc(bytes, static_cast<std::uint64_t>(t));
                    std::uint64_t id = m.id();
                    auto* p = static_cast<std::uint8_t*>(m.pointer());
                    std::memcpy(p, &id, 8);
                    if (bytes >= 16) std::memcpy(p + bytes - 8, &id, 8);  // head and tail apart
                    held.push_back(std::move(m));
                }
                for (Memory& m : held) {
                    std::uint64_t id = m.id(), head = 0, tail = 0;
                    auto* p = static_cast<std::uint8_t*>(m.pointer());
                    std::memcpy(&head, p, 8);
                    std::memcpy(&tail, m.size() >= 16 ? p + m.size() - 8 : p, 8);
                    if (head != id || tail != id)
                        error("allocation id " + std::to_string(id) + " was overwritten (handed out twice?)");
                    m.free();
                    ops.fetch_add(2, std::memory_order_relaxed);
                }
                held.clear();
            };
            start.arrive_and_wait();
            try {
                // At least two allocations held at once: both take the lock, and the second
                // claims the thread's cache entry (if one is left).
                one_round(2);
            } catch (const std::exception& e) {
                error("thread " + std::to_string(t) + ", first round: " + e.what());
            }
            if (my_entry(view) >= 0) with_entry.fetch_add(1);
            all_in.arrive_and_wait();
            try {
                for (int r = 1; r < rounds; ++r) one_round(1);
            } catch (const std::exception& e) {
                error("thread " + std::to_string(t) + ": " + e.what());
            }
            running.fetch_sub(1);
        });
    // Meanwhile: attributes() without pause from one thread (it takes every cached block
    // back, racing the owners' lock-free pops and pushes), check() from this one.
    std::atomic<int> stats_calls{0};
    std::thread stealer([&] {
        while (running.load() > 0) {
            try {
                (void)pool.attributes();
            } catch (const std::exception& e) {
                error(std::string("attributes() during the run: ") + e.what());
                return;
            }
            stats_calls.fetch_add(1, std::memory_order_relaxed);
        }
    });
    int checks = 0;
    while (running.load() > 0) {
        try {
            auto report = pool.check();
            ++checks;
            if (!report.ok) {
                error("check() during the run: " + joined(report));
                break;
            }
        } catch (const std::exception& e) {
            error(std::string("check() during the run: ") + e.what());
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (auto& th : threads) th.join();
    stealer.join();
    watchdog().disarm();
    for (const auto& e : error.errors) CHECK_MESSAGE(false, e);
    MESSAGE(n_threads << " threads: " << ops.load() << " allocs+frees, " << checks << " concurrent checks, "
                      << stats_calls.load() << " concurrent attributes() calls");
    // All alive at once: every entry taken, none taken from a live thread (the others
    // run uncached).
    CHECK_MESSAGE(with_entry.load() == static_cast<int>(k_cache_entries),
                  with_entry.load() << " of " << n_threads << " live threads own a cache entry; there are "
                                    << k_cache_entries);
    // The exited threads' blocks stay cached (under entries that name dead threads) until
    // a statistics call takes them back; nothing is lost.
    for (unsigned e : owned_entries(view))
        CHECK_MESSAGE(wait_owner_dead(view, e), "entry " << e << " is owned by a live thread after every thread exited");
    auto report = checked(pool, "after every thread finished");
    CHECK(report.live_allocations == 0);
    MESSAGE("after the threads exited: " << report.cached_blocks << " cached blocks, " << owned_entries(view).size()
                                         << " entries owned by exited threads");
    auto attrs = pool.attributes();
    CHECK(attrs.live_allocations == 0);
    CHECK(attrs.free_bytes == heap);
    report = checked(pool, "after attributes()");
    CHECK(report.cached_blocks == 0);
    CHECK(report.live_allocations == 0);
    CHECK(report.free_bytes == heap);
}

// ---------------------------------------------------------------------------- 9

TEST_CASE("blocking: a thread blocked in alloc_blocking gets the block a thread with a warm cache frees") {
    ScopedPool scoped(k_heap, small_options(), "bl");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    std::vector<Memory> held;
    std::uint64_t got_offset = ~0ULL;
    Actor holder, waiter;  // declared last: joined before what their tasks use goes away
    holder.run([&] {
        warm(pool, 10, 8, {64});
        REQUIRE(checked(pool, "after warming the holder").cached_blocks > 0);
        held = fill(pool, k_block);
        bool distinct = false;
        REQUIRE(block_bytes(pool, held, distinct) == k_heap);
    });
    const std::uint64_t freed_offset = held[held.size() / 2].block_offset();
    auto free_one = [&] {
        holder.run([&] {
            held[held.size() / 2].free();
            held.erase(held.begin() + static_cast<std::ptrdiff_t>(held.size() / 2));
        });
    };
    auto blocked_alloc = [&] {
        return waiter.post([&] {
            timespec limit = ms_timespec(20000);  // a failure bound, not a speed requirement
            Memory m = pool.alloc_blocking(64, 0, &limit);
            got_offset = m.block_offset();
            m.free();
        });
    };
    auto wait_until_asleep = [&] {
        double until = now_ms() + 20000;
        while (view.header()->has_waiters.load() == 0 && now_ms() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        REQUIRE_MESSAGE(view.header()->has_waiters.load() != 0, "the waiter never announced itself");
    };
    auto expect_done = [&](std::future<void>& done) {
        watchdog().arm(40000, "a blocked allocation woken by a free");
        REQUIRE_MESSAGE(done.wait_for(std::chrono::seconds(30)) == std::future_status::ready,
                        "the blocked allocation did not get the freed block");
        watchdog().disarm();
        done.get();  // rethrows (TIMEOUT: it was never given the block)
        CHECK(got_offset == freed_offset);
    };

    SUBCASE("the free comes while the waiter sleeps (a free sees the waiter and wakes it)") {
        std::future<void> done = blocked_alloc();
        wait_until_asleep();
        free_one();
        expect_done(done);
    }
    SUBCASE("the free parks the block in the cache first, then the waiter arrives") {
        free_one();
        REQUIRE_MESSAGE(checked(pool, "after the holder's free").cached_blocks == 1, "the free was not cached");
        std::future<void> done = blocked_alloc();
        expect_done(done);
    }
    SUBCASE("the free misses the waiter (has_waiters read before it was set) and parks the block") {
        // The race free_to_cache allows: it reads has_waiters relaxed, so a free racing
        // with a waiter going to sleep may park the block instead of waking it. Made
        // deterministic here by clearing the flag under the sleeping waiter.
        std::future<void> done = blocked_alloc();
        wait_until_asleep();
        view.header()->has_waiters.store(0);
        free_one();
        expect_done(done);
    }
    holder.run([&] { free_each(held); });
    holder.stop();
    waiter.stop();
    checked(pool, "at the end");
    CHECK(pool.attributes().free_bytes == k_heap);
}

// ---------------------------------------------------------------------------- 10

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
    const std::size_t id_at = 58 + live_serial[57];  // lib/descr/descriptor_codec.hpp: the memory fields follow the name

    auto try_all = [&](const std::string& who) {
        for (const auto& entry : bad_ids) {
            const std::uint64_t bad = entry.first;
            const std::string what = who + ", id " + entry.second;
            CAPTURE(what);
            count_bad_inputs(6);
            expect_error([&] { (void)pool.from_id(bad); }, DRAGON_KEY_NOT_FOUND, "Pool::from_id");
            CHECK_FALSE(pool.allocation_exists(bad));
            dragonMemoryDescr_t mem;
            ROBUST_CHECK_RC(dragon_memory_get_alloc_memdescr(&mem, &pd, bad, 0, nullptr), DRAGON_KEY_NOT_FOUND);
            ROBUST_CHECK_RC(dragon_memory_from_id(&pd, bad, &mem), DRAGON_KEY_NOT_FOUND);

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
                ROBUST_CHECK_RC(dragon_memory_get_pointer(&mem, &ptr), DRAGON_KEY_NOT_FOUND);
                ROBUST_CHECK_RC(dragon_memory_free(&mem), DRAGON_KEY_NOT_FOUND);
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
        words.push_back(view.header()->heap.free_bytes);
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

// ---------------------------------------------------------------------------- 11

TEST_CASE("detach: a process's last detach hands its threads' cached blocks back, while the process lives on") {
    ScopedPool scoped(k_heap, small_options(), "dt");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    // Without detaching first: the blocks stay cached while the process lives (the
    // contrast that shows the detach is what hands them back).
    Child keep = Child::spawn({child_program(), "cache-hold", "10", "8", "keep", "64", "256"},
                              {"DMR_POOL=" + pool.serialize_base64()});
    REQUIRE_MESSAGE(keep.wait_line("holding", 20000).has_value(), keep.output());
    auto report = checked(pool, "while a process holds a warm cache");
    REQUIRE(report.cached_blocks > 0);
    CHECK(entries_owned_by_pid(view, keep.pid()) == 1);
    keep.kill_now(SIGKILL);
    keep.wait(5000);
    (void)pool.attributes();  // takes back the dead process's blocks
    REQUIRE(checked(pool, "after the kill").cached_blocks == 0);

    Child detach = Child::spawn({child_program(), "cache-hold", "10", "8", "detach", "64", "256"},
                                {"DMR_POOL=" + pool.serialize_base64()});
    REQUIRE_MESSAGE(detach.wait_line("holding", 20000).has_value(), detach.output());
    report = checked(pool, "after a process detached with a warm cache");
    CHECK(report.cached_blocks == 0);
    CHECK(report.free_bytes == k_heap);
    CHECK(entries_owned_by_pid(view, detach.pid()) == 0);
    CHECK_MESSAGE(!detach.try_reap(), "the detaching process stopped: " << detach.output());
    detach.kill_now(SIGKILL);
    detach.wait(5000);
}


// ---------------------------------------------------------------------------- fork

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
    // the 31, which park in its cache (robust_child.cpp, fork-cache). Before the fix the
    // child released the parent's entry, the statistics call cleared the scan hint (no
    // entry owned, nothing cached), and the 31 frees parked out of every take-back's
    // sight: the whole-heap allocation at the end failed.
    Child parent = Child::spawn({child_program(), "fork-cache", std::to_string(held)},
                                {"DMR_POOL=" + pool.serialize_base64()});
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

// ---------------------------------------------------------------------------- 12

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
