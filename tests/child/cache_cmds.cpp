// dm_child commands of tests/robust's thread_cache suites: warming, holding and filling
// per-thread block caches (lib/pool/thread_cache.hpp).
// The pool descriptor's base64 comes in environment variable DMR_POOL. Output is one line
// per event, "key=value ..." with a free-text "msg=" last.
//
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
//   fork-cache COUNT
//        warms this thread's block cache (4 rounds of COUNT 64 B allocations, then their
//        frees), allocates COUNT 64 B blocks and keeps them, forks a child that detaches
//        the inherited pool (its last handle there) and exits; prints "forked
//        child_exit=", calls get_free_size (a take-back) and frees the COUNT blocks (they
//        park in its cache); prints "holding" and sleeps, still alive (the test kills it).
#include "commands.hpp"

#include <dragon/managed_memory.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace dmchild {

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
                        " msg=" + last_error_line());
                    return 3;
                }
            for (std::size_t i = 0; i < count; ++i)
                if (dragonError_t rc = dragon_memory_free(&held[i]); rc != DRAGON_SUCCESS) {
                    say("FAIL free rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
                    return 3;
                }
        }
    if (detach)
        if (dragonError_t rc = dragon_memory_pool_detach(&pool); rc != DRAGON_SUCCESS) {
            say("FAIL detach rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
            return 3;
        }
    say("holding");
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}

namespace {

// `rounds` times: `count` allocations of `size` B, then their frees. False (after saying
// why) on an error.
bool alloc_free_rounds(dragonMemoryPoolDescr_t& pool, int rounds, std::size_t count, std::size_t size) {
    std::vector<dragonMemoryDescr_t> held(count);
    for (int r = 0; r < rounds; ++r) {
        for (std::size_t i = 0; i < count; ++i)
            if (dragonError_t rc = dragon_memory_alloc(&held[i], &pool, size); rc != DRAGON_SUCCESS) {
                say("FAIL alloc rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
                return false;
            }
        for (std::size_t i = 0; i < count; ++i)
            if (dragonError_t rc = dragon_memory_free(&held[i]); rc != DRAGON_SUCCESS) {
                say("FAIL free rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
                return false;
            }
    }
    return true;
}

}  // namespace

int cmd_fork_cache(int argc, char** argv) {
    if (argc < 3) return 2;
    std::size_t count = std::strtoull(argv[2], nullptr, 10);
    dragonMemoryPoolDescr_t pool;
    if (!attach_pool(pool)) return 3;
    if (!alloc_free_rounds(pool, 4, count, 64)) return 3;
    std::vector<dragonMemoryDescr_t> held(count);
    for (auto& mem : held)
        if (dragonError_t rc = dragon_memory_alloc(&mem, &pool, 64); rc != DRAGON_SUCCESS) {
            say("FAIL alloc rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
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
        say("FAIL get_free_size rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
        return 3;
    }
    for (auto& mem : held)
        if (dragonError_t rc = dragon_memory_free(&mem); rc != DRAGON_SUCCESS) {
            say("FAIL free rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
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
            msg = last_error_line();
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
        say("FAIL " + what + " rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
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

}  // namespace dmchild
