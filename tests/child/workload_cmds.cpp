// dm_child commands of tests/robust's crash, stress and blocking suites: the random
// workload (workload.hpp) and blocking allocations.
// The pool descriptor's base64 comes in environment variable DMR_POOL. Output is one line
// per event, "key=value ..." with a free-text "msg=" last.
//
//   hammer SEED TYPE_BASE MAX_LIVE COUNTER_FILE SLOT
//        the crash test's victim: the random workload (workload.hpp) forever, in types
//        TYPE_BASE..+3; prints "ready" once working; its op count goes to 8-byte slot
//        SLOT of COUNTER_FILE. Exit 3 with "FAIL ..." on any unexpected result.
//   stress THREADS OPS SEED
//        THREADS threads sharing one pool descriptor run OPS operations each (with
//        hand-offs between them), then free what they hold; prints "stress ok ..." or
//        "stress FAIL ..." (exit 3).
//   waiter BYTES TIMEOUT_MS [TYPE]
//        prints "ready", then alloc_type_blocking (TIMEOUT_MS < 0: no timeout); prints
//        "done rc= t0= t1= cpu_ms= id= msg=" (times: CLOCK_MONOTONIC ms; cpu: this
//        process's user+sys time spent in the call).
//   pingpong BYTES ITERATIONS TIMEOUT_MS
//        ITERATIONS times: alloc_blocking BYTES (timeout TIMEOUT_MS), hold it ~50 us,
//        free; contenders doing the same must wake each other every time. Prints
//        "pingpong iterations= timeouts= other_errors= max_wait_ms= msg=".
#include "commands.hpp"

#include "child_process.hpp"
#include "workload.hpp"

#include <dragon/managed_memory.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace dmchild {

using namespace dmtest;

int cmd_hammer(int argc, char** argv) {
    if (argc < 7) return 2;
    std::uint64_t seed = std::strtoull(argv[2], nullptr, 10);
    std::uint64_t type_base = std::strtoull(argv[3], nullptr, 10);
    std::size_t max_live = std::strtoull(argv[4], nullptr, 10);
    const char* counter_file = argv[5];
    std::size_t slot = std::strtoull(argv[6], nullptr, 10);

    auto* counters_page = static_cast<std::atomic<std::uint64_t>*>(MAP_FAILED);
    int fd = ::open(counter_file, O_RDWR);
    if (fd >= 0) {
        void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        if (m != MAP_FAILED) counters_page = static_cast<std::atomic<std::uint64_t>*>(m);
    }
    std::atomic<std::uint64_t>* progress = counters_page != MAP_FAILED && slot < 512 ? &counters_page[slot] : nullptr;

    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    WorkloadConfig config;
    config.type_base = type_base;
    config.max_live = max_live;
    config.max_bytes = 4096;
    config.check_every = 64;
    WorkloadCounters counters;
    HandoffQueue handoffs;  // single-threaded: gives and takes in the same thread
    Worker worker(&pool, config, seed, counters, &handoffs, progress);
    if (!worker.run(16)) {
        say("FAIL " + worker.failure());
        return 3;
    }
    say("ready");
    if (!worker.run(0)) {
        say("FAIL " + worker.failure());
        return 3;
    }
    return 0;
}

int cmd_stress(int argc, char** argv) {
    if (argc < 5) return 2;
    int threads = std::atoi(argv[2]);
    std::uint64_t ops = std::strtoull(argv[3], nullptr, 10);
    std::uint64_t seed = std::strtoull(argv[4], nullptr, 10);
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    WorkloadCounters counters;
    HandoffQueue handoffs;
    std::vector<std::string> failures(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool_threads;
    std::atomic<int> started{0};
    for (int t = 0; t < threads; ++t)
        pool_threads.emplace_back([&, t] {
            WorkloadConfig config;
            config.max_live = 24;
            config.max_bytes = 4096;
            Worker worker(&pool, config, seed * 1000 + static_cast<std::uint64_t>(t), counters, &handoffs);
            started.fetch_add(1);
            while (started.load() < threads) std::this_thread::yield();
            if (!worker.run(ops) || !worker.drain()) failures[static_cast<std::size_t>(t)] = worker.failure();
        });
    for (auto& th : pool_threads) th.join();
    // Whatever is left in the hand-off queue is freed by a last worker.
    {
        WorkloadConfig config;
        Worker last(&pool, config, seed, counters, &handoffs);
        if (!last.drain()) failures.push_back(last.failure());
    }
    std::string all;
    for (const auto& f : failures)
        if (!f.empty()) all += f + "; ";
    std::string figures = "ops=" + std::to_string(counters.ops.load()) + " allocs=" + std::to_string(counters.allocs.load()) +
                          " frees=" + std::to_string(counters.frees.load()) +
                          " handoffs=" + std::to_string(counters.handoffs.load()) +
                          " clones=" + std::to_string(counters.clones.load()) +
                          " serials=" + std::to_string(counters.serial_round_trips.load()) +
                          " attaches=" + std::to_string(counters.pool_attaches.load()) +
                          " refusals=" + std::to_string(counters.refusals.load());
    (void)dragon_memory_pool_detach(&pool);
    if (!all.empty()) {
        say("stress FAIL " + figures + " msg=" + all);
        return 3;
    }
    say("stress ok " + figures);
    return 0;
}

int cmd_waiter(int argc, char** argv) {
    if (argc < 4) return 2;
    std::size_t bytes = std::strtoull(argv[2], nullptr, 10);
    long timeout_ms = std::strtol(argv[3], nullptr, 10);
    long type = argc > 4 ? std::strtol(argv[4], nullptr, 10) : 0;
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    timespec timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    say("ready");
    double cpu0 = cpu_ms();
    double t0 = dmtest::now_ms();
    dragonMemoryDescr_t mem;
    dragonError_t rc = dragon_memory_alloc_type_blocking(&mem, &pool, bytes, static_cast<dragonMemoryAllocationType_t>(type),
                                                         timeout_ms < 0 ? nullptr : &timeout);
    double t1 = dmtest::now_ms();
    double cpu1 = cpu_ms();
    std::string msg = rc != DRAGON_SUCCESS ? last_error_line() : "";
    std::uint64_t id = 0;
    if (rc == DRAGON_SUCCESS) (void)dragon_memory_id(&mem, &id);
    char line[512];
    std::snprintf(line, sizeof line, "done rc=%d t0=%.3f t1=%.3f cpu_ms=%.3f id=%llu msg=", static_cast<int>(rc), t0, t1,
                  cpu1 - cpu0, static_cast<unsigned long long>(id));
    say(line + msg);
    return 0;
}

int cmd_pingpong(int argc, char** argv) {
    if (argc < 5) return 2;
    std::size_t bytes = std::strtoull(argv[2], nullptr, 10);
    long iterations = std::strtol(argv[3], nullptr, 10);
    long timeout_ms = std::strtol(argv[4], nullptr, 10);
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    say("ready");
    long timeouts = 0, other_errors = 0;
    double max_wait = 0;
    std::string msg;
    for (long i = 0; i < iterations; ++i) {
        timespec timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
        dragonMemoryDescr_t mem;
        double t0 = dmtest::now_ms();
        dragonError_t rc = dragon_memory_alloc_blocking(&mem, &pool, bytes, &timeout);
        double waited = dmtest::now_ms() - t0;
        if (waited > max_wait) max_wait = waited;
        if (rc == DRAGON_TIMEOUT) {
            ++timeouts;
            continue;
        }
        if (rc != DRAGON_SUCCESS) {
            ++other_errors;
            msg = last_error_line();
            continue;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (dragon_memory_free(&mem) != DRAGON_SUCCESS) {
            ++other_errors;
            msg = last_error_line();
        }
    }
    char line[256];
    std::snprintf(line, sizeof line, "pingpong iterations=%ld timeouts=%ld other_errors=%ld max_wait_ms=%.3f msg=",
                  iterations, timeouts, other_errors, max_wait);
    say(line + msg);
    return 0;
}

}  // namespace dmchild
