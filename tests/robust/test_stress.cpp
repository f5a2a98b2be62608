// Multi-process and multi-thread stress: N processes x M threads share
// pool handles doing alloc / free / clone / serialize / attach / hand-offs with data
// patterns verified before every free; the parent checks the invariants while they run
// and after. Suite "threads" is the in-process part, meant to run under TSan too
// (build-tsan): threads of one process share one C descriptor and C++ handles.
#include "testing.hpp"
#include "workload.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

namespace {

std::string joined(const dragonmem::CheckReport& r) {
    std::string out;
    for (const auto& p : r.problems) out += p + " | ";
    return out;
}

}  // namespace

TEST_SUITE_BEGIN("stress");

TEST_CASE("stress: N processes x M threads on one pool, checked while running and after") {
    const int n_processes = 3;
    const int m_threads = 4;
    const int ops = long_mode() ? 400000 : 30000;
    dragonmem::PoolOptions options;
    options.max_allocations = 4096;
    ScopedPool scoped(2 << 20, options, "st");
    Pool& pool = scoped.pool();
    const std::string b64 = pool.serialize_base64();
    std::vector<Child> children;
    for (int i = 0; i < n_processes; ++i)
        children.push_back(Child::spawn({child_program(), "stress", std::to_string(m_threads), std::to_string(ops),
                                         std::to_string(100 + i)},
                                        {{"DMR_POOL", b64}}));
    // The parent checks and lists while they run.
    int checks = 0;
    watchdog().arm(long_mode() ? 1500000 : 200000, "multi-process stress");
    bool all_done = false;
    while (!all_done) {
        auto report = pool.check();
        ++checks;
        CHECK_MESSAGE(report.ok, "check() during the stress: " << joined(report));
        (void)pool.allocations();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        all_done = true;
        for (auto& c : children) all_done = all_done && c.try_reap();
    }
    watchdog().disarm();
    std::uint64_t total_ops = 0, handoffs = 0;
    for (auto& c : children) {
        ChildResult e = c.wait(1000);
        CHECK_MESSAGE(e.exited_with(0), "stress child " << e.describe());
        auto line = c.wait_line("stress", 100);
        REQUIRE_MESSAGE(line.has_value(), c.output());
        CHECK_MESSAGE(line->rfind("stress ok", 0) == 0, *line);
        total_ops += std::stoull(field(*line, "ops"));
        handoffs += std::stoull(field(*line, "handoffs"));
    }
    auto report = pool.check();
    CHECK_MESSAGE(report.ok, joined(report));
    auto attrs = pool.attributes();
    CHECK(attrs.live_allocations == 0);
    CHECK(attrs.free_bytes == pool.heap_bytes());
    Memory whole = pool.alloc(pool.heap_bytes());
    whole.free();
    std::printf("stress: %d processes x %d threads: %llu ops (%llu cross-thread hand-offs), %d concurrent checks, "
                "pool whole afterwards\n",
                n_processes, m_threads, static_cast<unsigned long long>(total_ops),
                static_cast<unsigned long long>(handoffs), checks);
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("threads");

TEST_CASE("threads: M threads share one C descriptor and C++ handles, with checks, attaches and other pools") {
    const int m_threads = 6;
    const std::uint64_t ops = long_mode() ? 500000 : 30000;
    dragonmem::PoolOptions options;
    options.max_allocations = 2048;
    ScopedPool scoped(1 << 20, options, "th");
    Pool& pool = scoped.pool();
    std::vector<std::uint8_t> ser = pool.serialize();
    dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
    dragonMemoryPoolDescr_t shared;
    REQUIRE(dragon_memory_pool_attach(&shared, &s) == DRAGON_SUCCESS);

    WorkloadCounters counters;
    HandoffQueue handoffs;
    std::vector<std::string> failures(static_cast<std::size_t>(m_threads) + 3);
    std::atomic<int> workers_left{m_threads};
    std::vector<std::thread> threads;
    watchdog().arm(long_mode() ? 1500000 : 200000, "threaded stress");
    for (int t = 0; t < m_threads; ++t)
        threads.emplace_back([&, t] {
            WorkloadConfig config;
            config.max_live = 24;
            config.max_bytes = 4096;
            Worker worker(&shared, config, 500 + static_cast<std::uint64_t>(t), counters, &handoffs);
            if (!worker.run(ops) || !worker.drain()) failures[static_cast<std::size_t>(t)] = worker.failure();
            workers_left.fetch_sub(1);
        });
    // A checker thread through a C++ clone of the pool handle.
    std::atomic<int> checks{0};
    threads.emplace_back([&] {
        Pool mine = pool.clone();
        while (workers_left.load() > 0) {
            auto report = mine.check();
            checks.fetch_add(1);
            if (!report.ok) {
                failures[static_cast<std::size_t>(m_threads)] = "check() during the run: " + joined(report);
                return;
            }
            (void)mine.attributes();
            (void)mine.free_blocks();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    // A thread attaching and detaching the same pool (shared mapping, reference counts)
    // and allocating through each new handle.
    std::atomic<int> attaches{0};
    threads.emplace_back([&] {
        while (workers_left.load() > 0) {
            try {
                Pool again = Pool::attach(ser);
                Memory m = again.alloc(128, 77);
                std::memset(m.pointer(), 0x77, 128);
                Memory view = m.clone(64);
                if (view.size() != 64) throw std::runtime_error("clone size");
                m.free();
                attaches.fetch_add(1);
            } catch (const dragonmem::Error& e) {
                if (e.code() != DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE && e.code() != DRAGON_OUT_OF_SPACE) {
                    failures[static_cast<std::size_t>(m_threads) + 1] = std::string("attach thread: ") + e.what();
                    return;
                }
            }
        }
    });
    // A thread creating, using and destroying pools of its own meanwhile (registry).
    std::atomic<int> other_pools{0};
    threads.emplace_back([&] {
        while (workers_left.load() > 0) {
            try {
                ScopedPool other(64 * 1024, {}, "tho");
                Memory m = other.pool().alloc(1000);
                m.free();
                other.pool().destroy();
                other_pools.fetch_add(1);
            } catch (const dragonmem::Error& e) {
                failures[static_cast<std::size_t>(m_threads) + 2] = std::string("other pools: ") + e.what();
                return;
            }
        }
    });
    for (auto& th : threads) th.join();
    watchdog().disarm();
    {
        WorkloadConfig config;
        Worker last(&shared, config, 1, counters, &handoffs);
        CHECK_MESSAGE(last.drain(), last.failure());
    }
    for (const auto& f : failures) CHECK_MESSAGE(f.empty(), f);
    auto report = pool.check();
    CHECK_MESSAGE(report.ok, joined(report));
    auto attrs = pool.attributes();
    CHECK(attrs.live_allocations == 0);
    CHECK(attrs.free_bytes == pool.heap_bytes());
    (void)dragon_memory_pool_detach(&shared);
    std::printf("threads: %d threads: %llu ops (%llu allocs, %llu frees, %llu hand-offs, %llu clones, %llu serial round "
                "trips, %llu pool attaches), %d concurrent checks, %d attach cycles, %d other pools created\n",
                m_threads, static_cast<unsigned long long>(counters.ops.load()),
                static_cast<unsigned long long>(counters.allocs.load()),
                static_cast<unsigned long long>(counters.frees.load()),
                static_cast<unsigned long long>(counters.handoffs.load()),
                static_cast<unsigned long long>(counters.clones.load()),
                static_cast<unsigned long long>(counters.serial_round_trips.load()),
                static_cast<unsigned long long>(counters.pool_attaches.load()), checks.load(), attaches.load(),
                other_pools.load());
}

TEST_SUITE_END();
