// fork() while other threads are inside the library (lib/pool/fork_safety.hpp): fork copies
// only the calling thread, so a process-local lock another thread held at that instant
// (the mapping registry, the graveyard of retired mappings, the C descriptor tables)
// would stay held for ever in the child. Threads hammer every one of those locks while
// the main thread forks; each child must use the library (attach, alloc, free, detach)
// and exit, within a failure bound.
#include "testing.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

TEST_SUITE_BEGIN("fork");

namespace {

// What a forked child does: attach the pool by its serialized descriptor (the registry),
// allocate and free through the C API (both descriptor tables) and detach (the last
// release: the graveyard). Exit status 0 on success; only the library and _exit.
[[noreturn]] void child_uses_library(const std::vector<std::uint8_t>& serialized) {
    dragonMemoryPoolSerial_t ser{serialized.size(), const_cast<std::uint8_t*>(serialized.data())};
    dragonMemoryPoolDescr_t pool;
    if (dragon_memory_pool_attach(&pool, &ser) != DRAGON_SUCCESS) ::_exit(10);
    for (int i = 0; i < 4; ++i) {
        dragonMemoryDescr_t mem;
        if (dragon_memory_alloc(&mem, &pool, 64) != DRAGON_SUCCESS) ::_exit(11);
        void* ptr = nullptr;
        if (dragon_memory_get_pointer(&mem, &ptr) != DRAGON_SUCCESS) ::_exit(12);
        std::memset(ptr, 0x5A, 64);
        if (dragon_memory_free(&mem) != DRAGON_SUCCESS) ::_exit(13);
    }
    if (dragon_memory_pool_detach(&pool) != DRAGON_SUCCESS) ::_exit(14);
    ::_exit(0);
}

// Waits for `pid` up to `limit_ms` (a failure bound); SIGKILLs it past that. Returns the
// exit status, or -1 when it had to be killed (hung).
int wait_child(pid_t pid, double limit_ms) {
    const double until = now_ms() + limit_ms;
    for (;;) {
        int status = 0;
        pid_t got = ::waitpid(pid, &status, WNOHANG);
        if (got == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (got < 0 && errno != EINTR) return 255;
        if (now_ms() > until) {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

}  // namespace

TEST_CASE("fork: forks while threads attach, detach, create, destroy, allocate and free; every child uses the "
          "library and exits") {
    if (k_address_sanitizer) {
        // GCC 12's AddressSanitizer does not make its own allocator fork-safe: a child forked
        // while another thread is inside malloc can hang in ASan, before our code runs.
        MESSAGE("SKIP: AddressSanitizer's allocator is not fork-safe with threads allocating");
        return;
    }
    const int forks = long_mode() ? 3000 : 300;
    const double child_limit_ms = 10000;  // a hung child, not a slow one
    ScopedPool scoped(1 << 20, {}, "fk");
    Pool& pool = scoped.pool();
    const std::vector<std::uint8_t> serialized = pool.serialize();

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> thread_ops{0};
    std::vector<std::string> thread_errors(3);
    std::vector<std::thread> threads;
    // C API attach / alloc / free / detach: the registry, both descriptor tables.
    threads.emplace_back([&] {
        dragonMemoryPoolSerial_t ser{serialized.size(), const_cast<std::uint8_t*>(serialized.data())};
        while (!stop.load()) {
            dragonMemoryPoolDescr_t d;
            dragonMemoryDescr_t mem;
            if (dragon_memory_pool_attach(&d, &ser) != DRAGON_SUCCESS ||
                dragon_memory_alloc(&mem, &d, 128) != DRAGON_SUCCESS || dragon_memory_free(&mem) != DRAGON_SUCCESS ||
                dragon_memory_pool_detach(&d) != DRAGON_SUCCESS) {
                thread_errors[0] = "C API thread: " + last_error();
                return;
            }
            thread_ops.fetch_add(1);
        }
    });
    // C++ attach, alloc, free: the registry and the thread caches.
    threads.emplace_back([&] {
        try {
            while (!stop.load()) {
                Pool again = Pool::attach(serialized);
                Memory m = again.alloc(256);
                m.free();
                thread_ops.fetch_add(1);
            }
        } catch (const std::exception& e) {
            thread_errors[1] = std::string("C++ thread: ") + e.what();
        }
    });
    // Pools created and destroyed: the registry and the graveyard (make, release).
    threads.emplace_back([&] {
        try {
            while (!stop.load()) {
                ScopedPool other(64 * 1024, {}, "fko");
                Memory m = other.pool().alloc(1000);
                m.free();
                other.pool().destroy();
                thread_ops.fetch_add(1);
            }
        } catch (const std::exception& e) {
            thread_errors[2] = std::string("create/destroy thread: ") + e.what();
        }
    });

    int hung = 0, failed = 0, done = 0;
    std::string first_failure;
    watchdog().arm(600000, "forking while threads use the library");
    for (int i = 0; i < forks && hung < 3; ++i) {
        pid_t pid = ::fork();
        REQUIRE_MESSAGE(pid >= 0, "fork: " << std::strerror(errno));
        if (pid == 0) child_uses_library(serialized);
        int status = wait_child(pid, child_limit_ms);
        ++done;
        if (status == -1) {
            ++hung;
        } else if (status != 0) {
            ++failed;
            if (first_failure.empty()) first_failure = "fork " + std::to_string(i) + ": exit " + std::to_string(status);
        }
    }
    stop.store(true);
    for (auto& t : threads) t.join();
    watchdog().disarm();
    for (const auto& e : thread_errors) CHECK_MESSAGE(e.empty(), e);
    CHECK_MESSAGE(hung == 0, hung << " of " << done << " forked children hung (killed after " << child_limit_ms
                                  << " ms) while other threads were inside the library");
    CHECK_MESSAGE(failed == 0, failed << " of " << done << " forked children failed; first: " << first_failure);
    CHECK(done == forks);
    MESSAGE(done << " forks, " << thread_ops.load() << " operations by the other threads meanwhile");
    auto report = pool.check();
    CHECK_MESSAGE(report.ok, (report.problems.empty() ? std::string() : report.problems.front()));
    (void)pool.attributes();  // takes back what the children and threads left cached
    CHECK(pool.allocations().empty());
    Memory whole = pool.alloc(pool.heap_bytes());
    whole.free();
}

TEST_SUITE_END();
