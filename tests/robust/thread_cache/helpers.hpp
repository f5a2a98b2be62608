// Helpers shared by the thread_cache suite's files (tests/robust/thread_cache/test_*.cpp):
// small pools, check() with a watchdog, threads that keep or drop their cache, cache
// warming, filling the pool, and reading cache entries and records through a ShmView.
//
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
#pragma once

#include "pool/manifest.hpp"
#include "pool/robust_lock.hpp"
#include "shm_view.hpp"
#include "testing.hpp"

#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace tcache {

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;
using dragonmem::detail::cached_word;
using dragonmem::detail::claimed_word;
using dragonmem::detail::k_cache_entries;
using dragonmem::detail::k_cached_bit;
using dragonmem::detail::k_claimed_bit;

// Collects the errors worker threads report (callable from any thread), keeping the first 20.
struct ErrorLog {
    std::mutex mutex;
    std::vector<std::string> errors;
    void operator()(const std::string& e) {
        std::lock_guard lock(mutex);
        if (errors.size() < 20) errors.push_back(e);
    }
};


inline constexpr std::size_t k_heap = 64 * 1024;  // 1024 blocks of 64 B
inline constexpr std::size_t k_block = 64;

inline dragonmem::PoolOptions small_options(std::size_t max_allocations = 0) {
    dragonmem::PoolOptions options;
    options.min_block_bytes = k_block;
    options.max_allocations = max_allocations;
    return options;
}

inline std::string joined(const dragonmem::CheckReport& r) {
    std::string out;
    for (const auto& p : r.problems) out += p + " | ";
    return out;
}

inline dragonmem::CheckReport checked(const Pool& pool, const std::string& when) {
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
inline void in_new_thread(Fn&& fn) {
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
inline void warm(const Pool& pool, int rounds, std::size_t count, const std::vector<std::size_t>& sizes) {
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
inline void first_locked_pair(const Pool& pool) {
    Memory m = pool.alloc(k_block);
    m.free();
}

// Allocates `bytes` blocks until the pool refuses one (which must be a plain refusal).
inline std::vector<Memory> fill(const Pool& pool, std::size_t bytes, std::uint64_t type = 0) {
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
inline std::uint64_t block_bytes(const Pool& pool, const std::vector<Memory>& blocks, bool& distinct) {
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

inline void free_each(std::vector<Memory>& blocks) {
    for (Memory& m : blocks) m.free();
    blocks.clear();
}

// Cache entries with an owner, and the one the calling thread owns (-1: none).
inline std::vector<unsigned> owned_entries(const ShmView& view) {
    std::vector<unsigned> out;
    for (unsigned e = 0; e < k_cache_entries; ++e)
        if (view.header()->cache_entries[e].owner.load() != 0) out.push_back(e);
    return out;
}
inline int my_entry(const ShmView& view) {
    const std::uint64_t me = dragonmem::detail::current_owner_word();
    for (unsigned e = 0; e < k_cache_entries; ++e)
        if (view.header()->cache_entries[e].owner.load() == me) return static_cast<int>(e);
    return -1;
}
// Whether entry `e`'s owner (thread) is gone.
inline bool entry_owner_dead(const ShmView& view, unsigned e) {
    return dragonmem::detail::owner_word_is_dead(view.header()->cache_entries[e].owner.load());
}
// Waits (a failure bound, not a speed requirement) until entry `e`'s owner reads as
// gone: a joined thread's task may still be finishing its exit for a moment.
inline bool wait_owner_dead(const ShmView& view, unsigned e) {
    for (int i = 0; i < 10000; ++i) {
        if (entry_owner_dead(view, e)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return entry_owner_dead(view, e);
}
// Records that name cache entry `e` (cached or claimed).
inline std::size_t records_of_entry(const ShmView& view, unsigned e) {
    std::size_t n = 0;
    for (std::uint64_t slot = 0; slot < view.header()->slot_hwm; ++slot) {
        std::uint64_t word = view.records()[slot].id.load();
        if ((word & k_cached_bit) != 0 && (word & dragonmem::detail::k_cache_entry_mask) == e) ++n;
    }
    return n;
}
// The unissued part [next, end) of the id block of every entry that process `pid`
// claimed (pool_layout.hpp, IdBlock).
struct CounterRange {
    std::uint64_t first;
    std::uint64_t end;
};
inline std::vector<CounterRange> unissued_id_blocks_of(const ShmView& view, pid_t pid) {
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
// Entries still owned by (a thread of) process `pid`.
inline int entries_owned_by_pid(const ShmView& view, pid_t pid) {
    int n = 0;
    for (unsigned e = 0; e < k_cache_entries; ++e)
        if (view.header()->cache_entries[e].owner.load() != 0 &&
            view.header()->cache_entries[e].pid.load() == static_cast<std::uint32_t>(pid))
            ++n;
    return n;
}

// The C API's listing of every allocation: its ids.
inline std::vector<std::uint64_t> c_listing(const Pool& pool) {
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
inline void expect_error(Fn&& fn, dragonError_t code, const std::string& what) {
    try {
        fn();
        CHECK_MESSAGE(false, what << ": succeeded (expected " << toString(code) << ")");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == code, what << ": threw " << e.code_name() << " (expected " << toString(code)
                                              << "): " << e.what());
        CHECK_MESSAGE(std::strlen(e.what()) > 0, what << ": no message");
    }
}

}  // namespace tcache
