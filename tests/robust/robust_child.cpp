// dm_robust_child: the separate program (fork+exec) the robustness tests run, kill and
// watch. The pool descriptor's base64 comes in environment variable DMR_POOL. Output is
// one line per event, "key=value ..." with a free-text "msg=" last.
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
//   attach
//        attach the pool, then alloc+free 64 B: "attach rc= alloc_rc= msg=".
//   create-and-wait NAME BYTES MODE
//        create pool NAME with permission bits MODE (octal), print "created b64=...",
//        then sleep (the test kills it; the pool stays behind for it to attach).
//   force-remove NAME
//        dragonmem::Pool::force_remove(NAME) (destroy --force): "removed rc= msg=".
//   open-shm PATH
//        open(2) PATH read-only and read-write: "open rdonly_errno= rdwr_errno=".
//   cache-hold ROUNDS COUNT keep|detach SIZE...
//        warms this thread's block cache (thread_cache.hpp): ROUNDS times, for each
//        SIZE, allocates COUNT blocks and then frees them all (the frees park in the
//        cache); with "detach", then detaches the pool (its last handle in this process);
//        prints "holding" and sleeps, still alive (the test kills it).
//   cache-fill BYTES [TYPE]
//        allocates BYTES-sized blocks (non-blocking) until the pool refuses one; prints
//        "fill count= distinct= rc= msg=" (distinct=1: no two blocks at one address),
//        then frees them all: "freed failures=".
//   cache-crash TYPE SEED
//        keeps 4 live allocations of type TYPE (replacing one every 16 loops) while, in
//        a loop, allocating a burst of 1-8 blocks of 1..2048 B of type TYPE+1, writing
//        and verifying their first bytes, and freeing them, so its thread cache is always
//        warm; prints "ready" after 100 loops; runs until killed. Exit 3 with "FAIL ..."
//        on any unexpected result.
//   keys-exhausted
//        takes every pthread key the process has left, then, in a new thread, attaches
//        the pool for the first time in this process (the C API's descriptor tables are
//        made then), allocates, writes and frees 64 B and detaches; prints
//        "keys taken= clobbered= rc= msg=" (clobbered: keys, all owned by someone else,
//        whose value in that thread the library changed).
//   fork-cache COUNT
//        warms this thread's block cache (4 rounds of COUNT 64 B allocations, then their
//        frees), allocates COUNT 64 B blocks and keeps them, forks a child that detaches
//        the inherited pool (its last handle there) and exits; prints "forked
//        child_exit=", calls get_free_size (a take-back) and frees the COUNT blocks (they
//        park in its cache); prints "holding" and sleeps, still alive (the test kills it).
//   crash-point NAME MODE [ID]
//        maps /dev/shm/dragonmem.NAME itself, takes the pool lock with the library's own
//        lock code (lib/pool/robust_lock.hpp) and dies by SIGKILL at a chosen point:
//          hold       right after taking the lock
//          retire ID  after the commit point of a free (record id stored 0), before the
//                     heap, slot stack, counters and wake-up are updated
//          scribble   after writing garbage over the heap's lists and counters
//          take-block after unlinking a free block from its list (a half-done alloc)
//          sleep      prints "holding" and sleeps holding the lock (killed by the test)
//          stop       prints "holding" and stops itself (SIGSTOP) holding the lock: alive,
//                     never taken over; once continued (SIGCONT) it releases the lock,
//                     prints "released" and exits 0
#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include "pool/pool_layout.hpp"
#include "pool/robust_lock.hpp"
#include "workload.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace robust;

double now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double cpu_ms() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (static_cast<double>(u.ru_utime.tv_sec) + static_cast<double>(u.ru_stime.tv_sec)) * 1e3 +
           (static_cast<double>(u.ru_utime.tv_usec) + static_cast<double>(u.ru_stime.tv_usec)) / 1e3;
}

std::string last_error() {
    char* s = dragon_getlasterrstr();
    std::string out = s != nullptr ? std::string(s) : std::string();
    std::free(s);
    for (char& c : out)
        if (c == '\n') c = ' ';
    return out;
}

void say(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

bool attach_pool(dragonMemoryPoolDescr_t& pool) {
    dragonError_t rc = dragon_memory_pool_attach_from_env(&pool, "DMR_POOL");
    if (rc != DRAGON_SUCCESS) {
        say("FAIL attach rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
        return false;
    }
    return true;
}

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
    double t0 = now_ms();
    dragonMemoryDescr_t mem;
    dragonError_t rc = dragon_memory_alloc_type_blocking(&mem, &pool, bytes, static_cast<dragonMemoryAllocationType_t>(type),
                                                         timeout_ms < 0 ? nullptr : &timeout);
    double t1 = now_ms();
    double cpu1 = cpu_ms();
    std::string msg = rc != DRAGON_SUCCESS ? last_error() : "";
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
        double t0 = now_ms();
        dragonError_t rc = dragon_memory_alloc_blocking(&mem, &pool, bytes, &timeout);
        double waited = now_ms() - t0;
        if (waited > max_wait) max_wait = waited;
        if (rc == DRAGON_TIMEOUT) {
            ++timeouts;
            continue;
        }
        if (rc != DRAGON_SUCCESS) {
            ++other_errors;
            msg = last_error();
            continue;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (dragon_memory_free(&mem) != DRAGON_SUCCESS) {
            ++other_errors;
            msg = last_error();
        }
    }
    char line[256];
    std::snprintf(line, sizeof line, "pingpong iterations=%ld timeouts=%ld other_errors=%ld max_wait_ms=%.3f msg=",
                  iterations, timeouts, other_errors, max_wait);
    say(line + msg);
    return 0;
}

int cmd_attach(int, char**) {
    dragonMemoryPoolDescr_t pool;
    dragonError_t rc = dragon_memory_pool_attach_from_env(&pool, "DMR_POOL");
    std::string msg = rc != DRAGON_SUCCESS ? last_error() : "";
    dragonError_t alloc_rc = DRAGON_FAILURE;
    if (rc == DRAGON_SUCCESS) {
        dragonMemoryDescr_t mem;
        alloc_rc = dragon_memory_alloc(&mem, &pool, 64);
        if (alloc_rc == DRAGON_SUCCESS) {
            void* ptr = nullptr;
            (void)dragon_memory_get_pointer(&mem, &ptr);
            std::memset(ptr, 0x5A, 64);
            alloc_rc = dragon_memory_free(&mem);
        } else {
            msg = last_error();
        }
        (void)dragon_memory_pool_detach(&pool);
    }
    say("attach rc=" + std::to_string(static_cast<int>(rc)) + " alloc_rc=" + std::to_string(static_cast<int>(alloc_rc)) +
        " msg=" + msg);
    return 0;
}

int cmd_keys_exhausted(int, char**) {
    std::vector<pthread_key_t> taken;
    for (;;) {
        pthread_key_t key;
        if (pthread_key_create(&key, nullptr) != 0) break;
        taken.push_back(key);
    }
    dragonError_t rc = DRAGON_FAILURE;
    std::string msg;
    int clobbered = 0;
    std::thread([&] {
        // A fresh thread: every key's value starts NULL here.
        std::vector<void*> before;
        for (pthread_key_t key = 0; key < PTHREAD_KEYS_MAX; ++key) before.push_back(pthread_getspecific(key));
        dragonMemoryPoolDescr_t pool;
        rc = dragon_memory_pool_attach_from_env(&pool, "DMR_POOL");
        if (rc == DRAGON_SUCCESS) {
            dragonMemoryDescr_t mem;
            rc = dragon_memory_alloc(&mem, &pool, 64);
            void* ptr = nullptr;
            if (rc == DRAGON_SUCCESS) rc = dragon_memory_get_pointer(&mem, &ptr);
            if (rc == DRAGON_SUCCESS) {
                std::memset(ptr, 0x5A, 64);
                rc = dragon_memory_free(&mem);
            }
            if (rc != DRAGON_SUCCESS) msg = last_error();
            dragonError_t detached = dragon_memory_pool_detach(&pool);
            if (rc == DRAGON_SUCCESS && detached != DRAGON_SUCCESS) {
                rc = detached;
                msg = last_error();
            }
        } else {
            msg = last_error();
        }
        for (pthread_key_t key = 0; key < PTHREAD_KEYS_MAX; ++key)
            if (pthread_getspecific(key) != before[key]) ++clobbered;
    }).join();
    say("keys taken=" + std::to_string(taken.size()) + " clobbered=" + std::to_string(clobbered) +
        " rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + msg);
    return 0;
}

int cmd_create_and_wait(int argc, char** argv) {
    if (argc < 5) return 2;
    dragonMemoryPoolAttr_t attr;
    dragon_memory_attr_init(&attr);
    attr.mode = static_cast<mode_t>(std::strtoul(argv[4], nullptr, 8));
    dragonMemoryPoolDescr_t pool;
    dragonError_t rc = dragon_memory_pool_create(&pool, std::strtoull(argv[3], nullptr, 10), argv[2], 1, &attr);
    if (rc != DRAGON_SUCCESS) {
        say("FAIL create rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
        return 3;
    }
    dragonMemoryPoolSerial_t ser{};
    (void)dragon_memory_pool_serialize(&ser, &pool);
    static const char* k_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string b64;
    for (std::size_t i = 0; i < ser.len; i += 3) {
        std::uint32_t v = static_cast<std::uint32_t>(ser.data[i]) << 16;
        if (i + 1 < ser.len) v |= static_cast<std::uint32_t>(ser.data[i + 1]) << 8;
        if (i + 2 < ser.len) v |= ser.data[i + 2];
        b64 += k_alphabet[(v >> 18) & 63];
        b64 += k_alphabet[(v >> 12) & 63];
        b64 += i + 1 < ser.len ? k_alphabet[(v >> 6) & 63] : '=';
        b64 += i + 2 < ser.len ? k_alphabet[v & 63] : '=';
    }
    say("created b64=" + b64);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}

int cmd_force_remove(int argc, char** argv) {
    if (argc < 3) return 2;
    int rc = 0;
    std::string msg;
    try {
        dragonmem::Pool::force_remove(argv[2]);
    } catch (const dragonmem::Error& e) {
        rc = static_cast<int>(e.code());
        msg = e.what();
    }
    say("removed rc=" + std::to_string(rc) + " msg=" + msg);
    return 0;
}

int cmd_open_shm(int argc, char** argv) {
    if (argc < 3) return 2;
    int ro = ::open(argv[2], O_RDONLY);
    int ro_errno = ro < 0 ? errno : 0;
    if (ro >= 0) ::close(ro);
    int rw = ::open(argv[2], O_RDWR);
    int rw_errno = rw < 0 ? errno : 0;
    if (rw >= 0) ::close(rw);
    say("open rdonly_errno=" + std::to_string(ro_errno) + " rdwr_errno=" + std::to_string(rw_errno));
    return 0;
}

int cmd_cache_hold(int argc, char** argv) {
    if (argc < 6) return 2;
    long rounds = std::strtol(argv[2], nullptr, 10);
    std::size_t count = std::strtoull(argv[3], nullptr, 10);
    bool detach = std::strcmp(argv[4], "detach") == 0;
    std::vector<std::size_t> sizes;
    for (int i = 5; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    std::vector<dragonMemoryDescr_t> held(count);
    for (long r = 0; r < rounds; ++r)
        for (std::size_t size : sizes) {
            for (std::size_t i = 0; i < count; ++i)
                if (dragonError_t rc = dragon_memory_alloc(&held[i], &pool, size); rc != DRAGON_SUCCESS) {
                    say("FAIL alloc " + std::to_string(size) + " rc=" + std::to_string(static_cast<int>(rc)) +
                        " msg=" + last_error());
                    return 3;
                }
            for (std::size_t i = 0; i < count; ++i)
                if (dragonError_t rc = dragon_memory_free(&held[i]); rc != DRAGON_SUCCESS) {
                    say("FAIL free rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
                    return 3;
                }
        }
    if (detach)
        if (dragonError_t rc = dragon_memory_pool_detach(&pool); rc != DRAGON_SUCCESS) {
            say("FAIL detach rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
            return 3;
        }
    say("holding");
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}

// `rounds` times: `count` allocations of `size` B, then their frees. False (after saying
// why) on an error.
bool alloc_free_rounds(dragonMemoryPoolDescr_t& pool, int rounds, std::size_t count, std::size_t size) {
    std::vector<dragonMemoryDescr_t> held(count);
    for (int r = 0; r < rounds; ++r) {
        for (std::size_t i = 0; i < count; ++i)
            if (dragonError_t rc = dragon_memory_alloc(&held[i], &pool, size); rc != DRAGON_SUCCESS) {
                say("FAIL alloc rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
                return false;
            }
        for (std::size_t i = 0; i < count; ++i)
            if (dragonError_t rc = dragon_memory_free(&held[i]); rc != DRAGON_SUCCESS) {
                say("FAIL free rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
                return false;
            }
    }
    return true;
}

int cmd_fork_cache(int argc, char** argv) {
    if (argc < 3) return 2;
    std::size_t count = std::strtoull(argv[2], nullptr, 10);
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    if (!alloc_free_rounds(pool, 4, count, 64)) return 3;
    std::vector<dragonMemoryDescr_t> held(count);
    for (auto& mem : held)
        if (dragonError_t rc = dragon_memory_alloc(&mem, &pool, 64); rc != DRAGON_SUCCESS) {
            say("FAIL alloc rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
            return 3;
        }
    pid_t child = ::fork();
    if (child < 0) {
        say("FAIL fork errno=" + std::to_string(errno));
        return 3;
    }
    if (child == 0) {
        // The child's only handle on the pool is the inherited one: this is its last detach.
        dragonError_t rc = dragon_memory_pool_detach(&pool);
        ::_exit(rc == DRAGON_SUCCESS ? 0 : 3);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    say("forked child_exit=" + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)));
    std::uint64_t free_size = 0;
    if (dragonError_t rc = dragon_memory_pool_get_free_size(&pool, &free_size); rc != DRAGON_SUCCESS) {
        say("FAIL get_free_size rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
        return 3;
    }
    for (auto& mem : held)
        if (dragonError_t rc = dragon_memory_free(&mem); rc != DRAGON_SUCCESS) {
            say("FAIL free rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
            return 3;
        }
    say("holding");
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}

int cmd_cache_fill(int argc, char** argv) {
    if (argc < 3) return 2;
    std::size_t bytes = std::strtoull(argv[2], nullptr, 10);
    long type = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 0;
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    std::vector<dragonMemoryDescr_t> blocks;
    std::vector<std::uintptr_t> addresses;
    dragonError_t rc = DRAGON_SUCCESS;
    std::string msg;
    for (;;) {
        dragonMemoryDescr_t mem;
        rc = dragon_memory_alloc_type(&mem, &pool, bytes, static_cast<dragonMemoryAllocationType_t>(type));
        if (rc != DRAGON_SUCCESS) {
            msg = last_error();
            break;
        }
        void* ptr = nullptr;
        (void)dragon_memory_get_pointer(&mem, &ptr);
        blocks.push_back(mem);
        addresses.push_back(reinterpret_cast<std::uintptr_t>(ptr));
    }
    std::sort(addresses.begin(), addresses.end());
    bool distinct = std::adjacent_find(addresses.begin(), addresses.end()) == addresses.end();
    say("fill count=" + std::to_string(blocks.size()) + " distinct=" + (distinct ? "1" : "0") +
        " rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + msg);
    int failures = 0;
    for (dragonMemoryDescr_t& mem : blocks)
        if (dragon_memory_free(&mem) != DRAGON_SUCCESS) ++failures;
    (void)dragon_memory_pool_detach(&pool);
    say("freed failures=" + std::to_string(failures));
    return 0;
}

int cmd_cache_crash(int argc, char** argv) {
    if (argc < 4) return 2;
    std::uint64_t type = std::strtoull(argv[2], nullptr, 10);
    std::mt19937_64 rng(std::strtoull(argv[3], nullptr, 10));
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    auto fail = [](const std::string& what, dragonError_t rc) {
        say("FAIL " + what + " rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error());
        return 3;
    };
    auto size_of = [&rng] { return static_cast<std::size_t>(1 + rng() % 2048); };
    std::vector<dragonMemoryDescr_t> kept(4);
    for (auto& mem : kept)
        if (dragonError_t rc = dragon_memory_alloc_type(&mem, &pool, size_of(),
                                                        static_cast<dragonMemoryAllocationType_t>(type));
            rc != DRAGON_SUCCESS)
            return fail("alloc kept", rc);
    struct Block {
        dragonMemoryDescr_t mem;
        std::uint64_t id;
        std::size_t bytes;
    };
    std::vector<Block> burst;
    for (std::uint64_t loop = 0;; ++loop) {
        std::size_t n = 1 + rng() % 8;
        for (std::size_t i = 0; i < n; ++i) {
            Block b{};
            b.bytes = size_of();
            if (dragonError_t rc = dragon_memory_alloc_type(&b.mem, &pool, b.bytes,
                                                            static_cast<dragonMemoryAllocationType_t>(type + 1));
                rc != DRAGON_SUCCESS)
                return fail("alloc burst", rc);
            void* ptr = nullptr;
            (void)dragon_memory_id(&b.mem, &b.id);
            if (dragonError_t rc = dragon_memory_get_pointer(&b.mem, &ptr); rc != DRAGON_SUCCESS)
                return fail("get_pointer", rc);
            std::memcpy(ptr, &b.id, std::min(b.bytes, sizeof b.id));
            burst.push_back(b);
        }
        std::shuffle(burst.begin(), burst.end(), rng);
        for (Block& b : burst) {
            void* ptr = nullptr;
            if (dragonError_t rc = dragon_memory_get_pointer(&b.mem, &ptr); rc != DRAGON_SUCCESS)
                return fail("get_pointer", rc);
            std::uint64_t seen = 0;
            std::memcpy(&seen, ptr, std::min(b.bytes, sizeof seen));
            std::uint64_t expected = 0;
            std::memcpy(&expected, &b.id, std::min(b.bytes, sizeof expected));
            if (seen != expected) {
                say("FAIL allocation " + std::to_string(b.id) + " was overwritten (handed out twice?)");
                return 3;
            }
            if (dragonError_t rc = dragon_memory_free(&b.mem); rc != DRAGON_SUCCESS) return fail("free burst", rc);
        }
        burst.clear();
        if (loop % 16 == 15) {
            auto& mem = kept[rng() % kept.size()];
            if (dragonError_t rc = dragon_memory_free(&mem); rc != DRAGON_SUCCESS) return fail("free kept", rc);
            if (dragonError_t rc = dragon_memory_alloc_type(&mem, &pool, size_of(),
                                                            static_cast<dragonMemoryAllocationType_t>(type));
                rc != DRAGON_SUCCESS)
                return fail("alloc kept", rc);
        }
        if (loop == 100) say("ready");
    }
}

int cmd_crash_point(int argc, char** argv) {
    using namespace dragonmem::detail;
    if (argc < 4) return 2;
    std::string path = std::string("/dev/shm/dragonmem.") + argv[2];
    std::string mode = argv[3];
    int fd = ::open(path.c_str(), O_RDWR);
    if (fd < 0) {
        say("FAIL open " + path + ": " + std::strerror(errno));
        return 3;
    }
    struct stat st {};
    ::fstat(fd, &st);
    void* base = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) {
        say("FAIL mmap");
        return 3;
    }
    auto* header = static_cast<PoolHeader*>(base);
    auto* records = reinterpret_cast<ManifestRecord*>(static_cast<std::uint8_t*>(base) + header->manifest_offset);
    auto* heap = static_cast<std::uint8_t*>(base) + header->heap_offset;
    owner_lock_acquire(header->lock);
    if (mode == "hold") {
        // nothing more
    } else if (mode == "retire" && argc > 4) {
        std::uint64_t id = std::strtoull(argv[4], nullptr, 10);
        std::uint64_t slot = id & ((std::uint64_t{1} << header->id_slot_bits) - 1);
        if (records[slot].id.load() != id) {
            say("FAIL id " + std::to_string(id) + " is not live");
            owner_lock_release(header->lock);
            return 3;
        }
        records[slot].id.store(0, std::memory_order_release);  // the free's commit point
    } else if (mode == "scribble") {
        std::uint64_t junk = 0x0123456789ABCDEFULL;
        auto* state = reinterpret_cast<std::uint64_t*>(&header->heap);
        std::size_t words = offsetof(HeapState, tag_secret) / sizeof(std::uint64_t);
        for (std::size_t i = 0; i < words; ++i) {
            junk = junk * 6364136223846793005ULL + 1442695040888963407ULL;
            state[i] = junk;
        }
        header->live_count = 12345;
        header->slot_free_head = 777777;
    } else if (mode == "take-block") {
        // Unlink the head of the largest non-empty free list, as an alloc does before it
        // splits and publishes; die before anything else.
        std::uint64_t mask = header->heap.free_mask;
        if (mask == 0) {
            say("FAIL no free block to take");
            owner_lock_release(header->lock);
            return 3;
        }
        unsigned order = 63 - static_cast<unsigned>(__builtin_clzll(mask));
        std::uint64_t offset = header->heap.free_head[order];
        auto* block = reinterpret_cast<FreeBlockHeader*>(heap + offset);
        header->heap.free_head[order] = block->next;
        block->tag = 0;
    } else if (mode == "stop") {
        say("holding");
        ::raise(SIGSTOP);
        owner_lock_release(header->lock);
        say("released");
        return 0;
    } else if (mode == "sleep") {
        say("holding");
        std::this_thread::sleep_for(std::chrono::seconds(60));
        owner_lock_release(header->lock);
        return 0;
    } else {
        owner_lock_release(header->lock);
        return 2;
    }
    say("dying");
    ::raise(SIGKILL);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: dm_robust_child COMMAND ... (see the source)\n");
        return 2;
    }
    std::string cmd = argv[1];
    if (cmd == "hammer") return cmd_hammer(argc, argv);
    if (cmd == "stress") return cmd_stress(argc, argv);
    if (cmd == "waiter") return cmd_waiter(argc, argv);
    if (cmd == "attach") return cmd_attach(argc, argv);
    if (cmd == "pingpong") return cmd_pingpong(argc, argv);
    if (cmd == "open-shm") return cmd_open_shm(argc, argv);
    if (cmd == "force-remove") return cmd_force_remove(argc, argv);
    if (cmd == "create-and-wait") return cmd_create_and_wait(argc, argv);
    if (cmd == "cache-hold") return cmd_cache_hold(argc, argv);
    if (cmd == "cache-fill") return cmd_cache_fill(argc, argv);
    if (cmd == "fork-cache") return cmd_fork_cache(argc, argv);
    if (cmd == "cache-crash") return cmd_cache_crash(argc, argv);
    if (cmd == "crash-point") return cmd_crash_point(argc, argv);
    if (cmd == "keys-exhausted") return cmd_keys_exhausted(argc, argv);
    std::fprintf(stderr, "dm_robust_child: unknown command '%s'\n", cmd.c_str());
    return 2;
}
