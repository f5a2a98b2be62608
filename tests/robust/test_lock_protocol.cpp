// The pool lock's sleep/wake protocol and the process's mapping registry (issue 9, item
// 12): a sleeper is never left asleep by a release (lib/pool/robust_lock.hpp: the waiters bit
// belongs to one ownership), and attaching a pool whose creator is still formatting it
// (open() waits up to ~200 ms) does not hold up attaches of other pools in the process,
// while two threads attaching one pool still share one mapping.
//
// The owner-check interval (how often a sleeper wakes on its own, 2 ms by default) is
// set to 20 s here, so a lost wake-up shows as a stall of seconds instead of a hiccup.
// Bounds below are failure limits only, well above any honest wait and well below the
// owner check.
#include "os/cpu_relax.hpp"
#include "pool/robust_lock.hpp"
#include "testing.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

using dragonmem::Pool;
using namespace dmtest;
namespace detail = dragonmem::detail;

TEST_SUITE_BEGIN("lock_protocol");

namespace {

// Sets the owner-check interval for the scope of a test.
struct OwnerCheckInterval {
    long previous;
    explicit OwnerCheckInterval(long ns) : previous(detail::set_owner_check_interval_for_tests(ns)) {}
    ~OwnerCheckInterval() { detail::set_owner_check_interval_for_tests(previous); }
    OwnerCheckInterval(const OwnerCheckInterval&) = delete;
    OwnerCheckInterval& operator=(const OwnerCheckInterval&) = delete;
};

constexpr long k_long_check_ns = 20'000'000'000L;

}  // namespace

TEST_CASE("lock: a waiter is woken by every release, even when the owner re-takes the lock at once") {
    // One thread takes and releases the lock in a tight loop (as a thread allocating and
    // freeing does); another wants it now and then. The waiter announces itself on the
    // owner word it saw and sleeps while the word is unchanged. If the owner releases and
    // re-takes the lock between the announcement and the sleep, the word looks the same
    // again: with a separate "sleepers" flag that the release consumed, nobody would
    // wake the waiter until its owner check, 20 s here.
    OwnerCheckInterval interval(k_long_check_ns);
    auto* lock = new detail::OwnerLock;  // heap: a futex word like the pool's
    detail::owner_lock_init(*lock);
    const int acquisitions = long_mode() ? 2000 : 300;
    std::atomic<bool> waiter_done{false};
    std::atomic<long> owner_rounds{0};
    std::thread owner([&] {
        while (!waiter_done.load(std::memory_order_relaxed)) {
            // Bursts with short pauses: the lock is unfair, and on a loaded machine a
            // waiter could otherwise lose every race for seconds.
            for (int burst = 0; burst < 2000; ++burst) {
                detail::owner_lock_acquire(*lock);
                for (int i = 0; i < 16; ++i) detail::cpu_relax();
                detail::owner_lock_release(*lock);
            }
            owner_rounds.fetch_add(2000, std::memory_order_relaxed);
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    });
    double longest_ms = 0;
    double started = now_ms();
    std::thread waiter([&] {
        for (int i = 0; i < acquisitions; ++i) {
            double t0 = now_ms();
            detail::owner_lock_acquire(*lock);
            double waited = now_ms() - t0;
            if (waited > longest_ms) longest_ms = waited;
            detail::owner_lock_release(*lock);
            if (longest_ms >= 10000) break;  // one lost wake-up is enough to fail
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        waiter_done.store(true);
    });
    waiter.join();
    owner.join();
    double took = now_ms() - started;
    MESSAGE(acquisitions << " contended acquisitions against " << owner_rounds.load() << " owner rounds in " << took
                         << " ms; longest wait " << longest_ms << " ms");
    // A lost wake-up costs a 20 s owner check; an honest wait, even on a loaded machine,
    // is a few scheduling delays (about 1 s measured at a load average of 22 on 2 cores).
    CHECK_MESSAGE(longest_ms < 10000, "a waiter slept " << longest_ms << " ms: a release did not wake it");
    CHECK(lock->word.load() == 0);
    delete lock;
}

TEST_CASE("lock: many threads contending never lose a wake-up, and the lock ends free") {
    OwnerCheckInterval interval(k_long_check_ns);
    auto* lock = new detail::OwnerLock;
    detail::owner_lock_init(*lock);
    const int threads = 4;
    const int rounds = long_mode() ? 20000 : 3000;
    std::atomic<double> longest_ms{0};
    std::uint64_t counter = 0;  // guarded by the lock: a lost mutual exclusion shows here
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int r = 0; r < rounds; ++r) {
                double t0 = now_ms();
                detail::owner_lock_acquire(*lock);
                double waited = now_ms() - t0;
                counter += 1;
                if (r % 64 == 0) std::this_thread::yield();  // sometimes hold it across a reschedule
                detail::owner_lock_release(*lock);
                double seen = longest_ms.load();
                while (waited > seen && !longest_ms.compare_exchange_weak(seen, waited)) {}
            }
        });
    for (auto& th : pool) th.join();
    MESSAGE("longest wait for the lock among " << threads << " threads: " << longest_ms.load() << " ms");
    CHECK(counter == static_cast<std::uint64_t>(threads) * static_cast<std::uint64_t>(rounds));
    CHECK_MESSAGE(longest_ms.load() < 10000,
                  "a thread slept " << longest_ms.load() << " ms: a release did not wake it");
    CHECK(lock->word.load() == 0);
    delete lock;
}

TEST_CASE("registry: attaching a pool still being created does not hold up attaching another pool") {
    // A shm object of a pool's name that is all zeros looks like a pool whose creator is
    // still formatting it: open() waits while it is young (its mtime an hour ahead here,
    // so that it stays young however long a loaded machine stalls this test; the object's
    // grace is 1 s otherwise), up to k_creator_wait_ms.
    ShmGuard unfinished(unique_pool_name("unf"));
    {
        int fd = ::open(shm_path(unfinished.name()).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, 1 << 20) == 0);
        ::close(fd);
    }
    REQUIRE(set_shm_mtime(unfinished.name(), 3600));
    ScopedPool other(64 * 1024, {}, "oth");
    const std::string other_serial = other.pool().serialize_base64();
    other.pool().detach();  // so the attach below must map it, not share this handle's mapping

    // One thread attaches the unfinished pool over and over, so that it is nearly
    // always inside open(), counting the attaches that ended.
    std::atomic<bool> stop{false};
    std::atomic<bool> started{false};
    std::atomic<long> slow_ended{0};
    std::atomic<double> slow_shortest_ms{1e9};
    std::thread slow([&] {
        started.store(true);
        while (!stop.load()) {
            double t0 = now_ms();
            try {
                Pool::attach_local(unfinished.name());
            } catch (const dragonmem::Error&) {
                // Expected: it never becomes a pool.
            }
            if (!stop.load()) slow_shortest_ms.store(std::min(slow_shortest_ms.load(), now_ms() - t0));
            slow_ended.fetch_add(1);
        }
    });
    while (!started.load()) std::this_thread::yield();
    // Should an attach of the other pool wait on the unfinished one (the bug this test is
    // for), it would wait up to k_creator_wait_ms: after 3 s the object is aged, the slow
    // attach gives up within the grace period, and the test fails in seconds.
    std::atomic<double> fast_since_ms{0};  // when the attach of the other pool in progress began; 0: none
    std::thread watcher([&] {
        while (!stop.load()) {
            const double since = fast_since_ms.load();
            if (since != 0 && now_ms() - since > 3000) {
                set_shm_mtime(unfinished.name(), -3600);
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    // Attach the other pool a few times. Had the registry mutex been held across the
    // unfinished pool's open(), each attach would wait for one of its waits to end.
    const int tries = 6;
    int unhindered = 0;
    double slowest_ms = 0;
    for (int i = 0; i < tries; ++i) {
        // Time for the other thread to get (back) into its wait: between two of its
        // attaches there are only microseconds.
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        long before = slow_ended.load();
        double t0 = now_ms();
        fast_since_ms.store(t0);
        Pool fast = Pool::attach_base64(other_serial);
        fast_since_ms.store(0);
        double took = now_ms() - t0;
        long after = slow_ended.load();
        CHECK(fast.valid());
        if (after == before) ++unhindered;
        slowest_ms = std::max(slowest_ms, took);
        if (took > 3000) break;  // hindered (the watcher aged the object): the check below fails
    }  // each handle is the only one: detaching unmaps, so the next attach maps again
    stop.store(true);
    // Aged again (ctime now, mtime past): the slow attach in progress gives up within
    // the grace period.
    const bool aged = set_shm_mtime(unfinished.name(), -3600);
    watcher.join();
    slow.join();
    REQUIRE(aged);
    MESSAGE(unhindered << " of " << tries << " attaches of another pool ended while the unfinished pool's attach was "
                       << "still waiting; slowest " << slowest_ms << " ms; " << slow_ended.load()
                       << " attaches of the unfinished pool ended");
    // The premise: attaching the unfinished pool does wait (for a creator to finish).
    REQUIRE_MESSAGE(slow_shortest_ms.load() >= 50,
                    "attaching a blank pool object no longer waits (shortest " << slow_shortest_ms.load()
                    << " ms): this test needs another way to keep open() waiting");
    // Honestly unhindered, no attach of the unfinished pool ends while the tries run (each
    // waits while the object is young); hindered, every try waits for one to end.
    CHECK_MESSAGE(unhindered >= tries - 2,
                  "attaches of another pool waited for an attach of the unfinished pool to end (the registry mutex "
                  "is held while open() sleeps)");
}

TEST_CASE("registry: threads attaching one pool at once all share one mapping") {
    ScopedPool scoped(64 * 1024, {}, "shr");
    const std::string serial = scoped.pool().serialize_base64();
    scoped.pool().detach();
    for (int round = 0; round < 20; ++round) {
        const int threads = 6;
        std::vector<Pool> pools(threads);
        std::atomic<int> ready{0};
        std::vector<std::thread> attachers;
        for (int t = 0; t < threads; ++t)
            attachers.emplace_back([&, t] {
                ready.fetch_add(1);
                while (ready.load() < threads) std::this_thread::yield();
                pools[static_cast<std::size_t>(t)] = t % 2 == 0 ? Pool::attach_base64(serial)
                                                                 : Pool::attach_local(scoped.name());
            });
        for (auto& th : attachers) th.join();
        for (const Pool& p : pools) {
            REQUIRE(p.valid());
            CHECK(p.base_pointer() == pools[0].base_pointer());
        }
    }
    Pool again = Pool::attach_local(scoped.name());
    again.destroy();
}

TEST_SUITE_END();
