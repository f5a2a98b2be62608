// A pool's mapping in this process while threads race its end (suite "threads": in
// process, also run under ThreadSanitizer):
//   - a memory descriptor borrows its pool's mapping without a count; get_pool() on it
//     while another thread drops the pool's last descriptor must either count a mapping
//     that is still there or fail cleanly, never revive one being unmapped;
//   - destroying a pool through one descriptor while other threads allocate, write and
//     free through their own descriptors: each of them ends with MAP_KEY_NOT_FOUND or
//     OBJECT_DESTROYED, never a crash (the mapping stays until their descriptors go).
// No timing assertions: the threads meet through atomics, not sleeps. The get_pool race
// needs both threads on a CPU at once to be hit; on an idle 2-core machine the old
// code failed it within a few hundred rounds every time, with both cores busy about
// half the time.
#include "testing.hpp"

#include <atomic>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

TEST_SUITE_BEGIN("threads");

TEST_CASE("threads: get_pool racing the last detach of its pool never revives the mapping") {
    // Two pools: P, whose only descriptor a second thread detaches each round while this
    // thread calls get_pool on a descriptor of an allocation in P; and Q, attached with P
    // after each round to see whether the two share one mapping object (the trace a
    // revived count leaves: a mapping released twice is recycled twice).
    ScopedPool scoped_p(1 << 16, {}, "gp");
    ScopedPool scoped_q(1 << 16, {}, "gq");
    std::vector<std::uint8_t> ser_p = scoped_p.pool().serialize();
    std::vector<std::uint8_t> ser_q = scoped_q.pool().serialize();
    dragonMemoryPoolSerial_t serial_p{ser_p.size(), ser_p.data()};
    dragonMemoryPoolSerial_t serial_q{ser_q.size(), ser_q.data()};
    scoped_p.pool().detach();  // from here the descriptors below are the process's only ones
    scoped_q.pool().detach();
    const int rounds = long_mode() ? 50000 : 10000;
    watchdog().arm(120000, "get_pool racing the last detach");

    dragonMemoryPoolDescr_t handed;  // the round's only descriptor of P, detached by `detacher`
    std::atomic<int> go{0};          // round r may detach
    std::atomic<int> detached{0};    // round r's detach returned
    std::thread detacher([&] {
        for (int round = 1; round <= rounds; ++round) {
            // Spinning, so the detach follows the go at once; yielding now and then, so a
            // loaded machine still runs the other thread.
            for (unsigned spins = 0; go.load(std::memory_order_acquire) < round; ++spins)
                if (spins % 64 == 63) std::this_thread::yield();
            dragon_memory_pool_detach(&handed);  // the last count, unless get_pool holds one
            detached.store(round, std::memory_order_release);
        }
    });

    std::string failure;
    std::uint64_t counted = 0;  // get_pool calls that counted the mapping
    std::uint64_t refused = 0;  // get_pool calls refused (the mapping was going or gone)
    auto fail = [&](int round, const std::string& what) {
        if (failure.empty()) failure = "round " + std::to_string(round) + ": " + what;
    };
    int round = 1;
    for (; round <= rounds && failure.empty(); ++round) {
        REQUIRE(dragon_memory_pool_attach(&handed, &serial_p) == DRAGON_SUCCESS);
        void* base = nullptr;
        REQUIRE(dragon_memory_pool_get_pointer(&handed, &base) == DRAGON_SUCCESS);
        // A C API allocation descriptor borrows the pool's mapping without a count; a
        // zero-byte one uses no block.
        dragonMemoryDescr_t borrowed;
        REQUIRE(dragon_memory_alloc(&borrowed, &handed, 0) == DRAGON_SUCCESS);
        go.store(round, std::memory_order_release);
        // get_pool over and over while the other thread detaches; each descriptor it
        // gives must be usable and at the same place, then it is dropped at once (a count
        // kept across the detach would make the detach not the last).
        unsigned calls = 0;
        do {
            if (++calls % 1024 == 0) std::this_thread::yield();  // a loaded machine: let the detacher run
            dragonMemoryPoolDescr_t got;
            dragonError_t rc = dragon_memory_get_pool(&borrowed, &got);
            if (rc == DRAGON_SUCCESS) {
                ++counted;
                void* again = nullptr;
                dragonError_t usable = dragon_memory_pool_get_pointer(&got, &again);
                if (usable != DRAGON_SUCCESS || again != base) {
                    // Detaching it would release the mapping a second time: leave it.
                    fail(round, "get_pool gave a descriptor whose mapping was being unmapped (a revived count): "
                                "get_pointer on it returned " + std::string(dragon_getrcstr(usable)) + ": " +
                                    last_error());
                    break;
                }
                dragon_memory_pool_detach(&got);
            } else {
                ++refused;
                if (rc != DRAGON_MAP_KEY_NOT_FOUND)
                    fail(round, "get_pool failed with " + std::string(dragon_getrcstr(rc)) + ": " + last_error());
            }
        } while (detached.load(std::memory_order_acquire) < round && failure.empty());
        while (detached.load(std::memory_order_acquire) < round) std::this_thread::yield();
        dragonMemoryPoolDescr_t got;
        dragonError_t rc = dragon_memory_get_pool(&borrowed, &got);
        if (rc == DRAGON_SUCCESS)
            fail(round, "get_pool succeeded after every descriptor of the pool was gone");
        else if (rc != DRAGON_MAP_KEY_NOT_FOUND)
            fail(round, "get_pool after the detach failed with " + std::string(dragon_getrcstr(rc)));
        dragon_memory_detach(&borrowed);
        // Two pools attached at once must have two mappings.
        dragonMemoryPoolDescr_t p, q;
        REQUIRE(dragon_memory_pool_attach(&p, &serial_p) == DRAGON_SUCCESS);
        REQUIRE(dragon_memory_pool_attach(&q, &serial_q) == DRAGON_SUCCESS);
        void* base_p = nullptr;
        void* base_q = nullptr;
        dragonError_t rc_p = dragon_memory_pool_get_pointer(&p, &base_p);
        dragonError_t rc_q = dragon_memory_pool_get_pointer(&q, &base_q);
        if (rc_p != DRAGON_SUCCESS || rc_q != DRAGON_SUCCESS || base_p == base_q) {
            // Leave both: they share a mapping object, detaching would release it twice.
            fail(round, "after get_pool raced the detach, two pools attached at once share one mapping (it was "
                        "released twice)");
        } else {
            dragon_memory_pool_detach(&q);
            dragon_memory_pool_detach(&p);
        }
    }
    // On a failure, let the detacher finish its remaining rounds.
    for (; round <= rounds; ++round) {
        REQUIRE(dragon_memory_pool_attach(&handed, &serial_p) == DRAGON_SUCCESS);
        go.store(round, std::memory_order_release);
        while (detached.load(std::memory_order_acquire) < round) std::this_thread::yield();
    }
    detacher.join();
    watchdog().disarm();
    CHECK_MESSAGE(failure.empty(), failure);
    MESSAGE("get_pool during " << rounds << " last detaches: counted the mapping " << counted << " times, refused "
                               << refused << " times");
}

namespace {

// What a worker thread saw: its operations, and the error that ended them.
struct WorkerEnd {
    std::uint64_t ops = 0;
    dragonError_t code = DRAGON_SUCCESS;
    std::string message;
};

bool destroyed_code(dragonError_t code) {
    return code == DRAGON_MAP_KEY_NOT_FOUND || code == DRAGON_OBJECT_DESTROYED;
}

}  // namespace

TEST_CASE("threads: destroy while other threads allocate, write and free through their own descriptors") {
    const int rounds = long_mode() ? 300 : 30;
    const int workers = 3;
    const std::uint64_t warm_ops = 300;  // each worker is busy (and caching) before the destroy
    watchdog().arm(180000, "destroy while other threads allocate");
    std::set<dragonError_t> seen;
    for (int round = 0; round < rounds; ++round) {
        ScopedPool scoped(1 << 20, {}, "dd");
        std::vector<std::unique_ptr<Pool>> mine;
        for (int w = 0; w < workers; ++w) mine.push_back(std::make_unique<Pool>(scoped.pool().clone()));
        std::vector<WorkerEnd> ends(workers);
        std::atomic<int> warm{0};
        std::vector<std::thread> threads;
        for (int w = 0; w < workers; ++w)
            threads.emplace_back([&, w] {
                WorkerEnd& end = ends[static_cast<std::size_t>(w)];
                Pool& pool = *mine[static_cast<std::size_t>(w)];
                std::size_t bytes = 64u << w;
                if (w == workers - 1) {
                    // Through the C API, with a descriptor of its own.
                    std::vector<std::uint8_t> ser = pool.serialize();
                    dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
                    dragonMemoryPoolDescr_t descr;
                    end.code = dragon_memory_pool_attach(&descr, &s);
                    if (end.code != DRAGON_SUCCESS) {
                        end.message = last_error();
                        warm.fetch_add(1);
                        return;
                    }
                    for (;;) {
                        dragonMemoryDescr_t mem;
                        void* ptr = nullptr;
                        dragonError_t rc = dragon_memory_alloc(&mem, &descr, bytes);
                        if (rc == DRAGON_SUCCESS) {
                            rc = dragon_memory_get_pointer(&mem, &ptr);
                            if (rc == DRAGON_SUCCESS) std::memset(ptr, w, bytes);
                            dragonError_t freed = dragon_memory_free(&mem);
                            if (rc == DRAGON_SUCCESS) rc = freed;
                        }
                        if (rc != DRAGON_SUCCESS) {
                            end.code = rc;
                            end.message = last_error();
                            break;
                        }
                        if (++end.ops == warm_ops) warm.fetch_add(1);
                    }
                    if (end.ops < warm_ops) warm.fetch_add(1);
                    dragon_memory_pool_detach(&descr);
                    return;
                }
                try {
                    for (;;) {
                        Memory a = pool.alloc(bytes);
                        Memory b = pool.alloc(bytes / 2);
                        std::memset(a.pointer(), w, bytes);
                        std::memset(b.pointer(), w, bytes / 2);
                        b.free();
                        a.free();
                        if (++end.ops == warm_ops) warm.fetch_add(1);
                    }
                } catch (const dragonmem::Error& e) {
                    end.code = e.code();
                    end.message = e.what();
                }
                if (end.ops < warm_ops) warm.fetch_add(1);
            });
        while (warm.load() < workers) std::this_thread::yield();
        scoped.pool().destroy();
        for (auto& t : threads) t.join();
        CHECK_FALSE(shm_exists(scoped.name()));
        for (int w = 0; w < workers; ++w) {
            const WorkerEnd& end = ends[static_cast<std::size_t>(w)];
            seen.insert(end.code);
            CHECK_MESSAGE(destroyed_code(end.code), "round " << round << " worker " << w << " ended after "
                                                             << end.ops << " ops with " << toString(end.code)
                                                             << ": " << end.message);
        }
        // The last descriptors go now: the mapping is unmapped with them.
        mine.clear();
    }
    watchdog().disarm();
    std::string codes;
    for (dragonError_t code : seen) codes += std::string(" ") + dragon_getrcstr(code);
    MESSAGE("workers ended with:" << codes);
}

TEST_SUITE_END();
