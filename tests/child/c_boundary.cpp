// dm_child command of tests/robust's c_boundary suite: proves that no C++ exception
// crosses the C API (BAD_INPUTS.md rows X1-X2). dm_child replaces the global operator new
// (below), so that allocation number N of a scenario that makes every kind of C call
// throws std::bad_alloc (the library's own allocations included: containers, strings,
// fmt). For every N it runs the scenario in a forked child, then checks what the failure
// left behind. The replacement is a plain malloc until this command arms it, so the other
// commands see an ordinary operator new (under AddressSanitizer they lose only its
// new/delete mismatch reports, which dm_unit and dm_robust keep). Where a sanitizer's
// runtime is linked statically and defines operator new itself (clang's ASan and TSan),
// two definitions cannot link: there meson defines DM_CHILD_NO_NEW_REPLACEMENT, the
// replacement is left out and this command exits 77 ("boundary unavailable"), which the
// test reports as a skip.
//
//   c-boundary NAME once|from
//        once: only allocation N fails; from: allocation N and every one after it.
//        Counts the scenario's allocations A (a run with no failure), then runs N = 0..A.
//        Each run must end normally (no abort from an escaping exception, no hang on a
//        pool lock left held), every failed call must set a message, and after the run
//        (allocations back on) the pool must pass check, hold no allocation the scenario
//        did not get a descriptor for, and be destroyable; a failed create must leave no
//        shm object. Prints one line per bad run ("bad n= why=") and a last line
//        "boundary runs= aborted= hung= inconsistent= leftovers= calls= failed_calls=".
//        With DM_C_BOUNDARY_TRACE=N only run N is made, and the stack of the allocation
//        that failed is printed (resolve the offsets with addr2line -f -C -i -e PROGRAM).
#include "commands.hpp"

#include <dragon/managed_memory.h>

#include "shm_names.hpp"

#include <execinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#ifndef DM_CHILD_NO_NEW_REPLACEMENT
namespace {

// ---- the failing operator new
std::atomic<bool> g_armed{false};
std::atomic<long> g_count{0};
long g_fail_at = -1;
bool g_fail_from = false;
long g_only = -1;     // DM_C_BOUNDARY_TRACE=N: run only N ...
bool g_trace = false;  // ... and print the failing allocation's stack

void maybe_fail() {
    if (!g_armed.load(std::memory_order_relaxed)) return;
    long n = g_count.fetch_add(1, std::memory_order_relaxed);
    if (n == g_fail_at || (g_fail_from && n >= g_fail_at)) {
        if (g_trace) {  // where it failed, for a bad run's diagnosis (addr2line the offsets)
            void* frames[32];
            backtrace_symbols_fd(frames, backtrace(frames, 32), 1);
        }
        throw std::bad_alloc();
    }
}

void* checked(void* p) {
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

}  // namespace

void* operator new(std::size_t bytes) {
    maybe_fail();
    return checked(std::malloc(bytes == 0 ? 1 : bytes));
}
void* operator new(std::size_t bytes, std::align_val_t align) {
    maybe_fail();
    std::size_t a = static_cast<std::size_t>(align);
    return checked(std::aligned_alloc(a, (bytes + a - 1) / a * a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
// new[] / nothrow forms: the standard library's defaults call the ones above.

namespace {

struct Tally {
    int calls = 0;
    int failed = 0;
    int silent = 0;  // failed without a message
    int unexpected_success = 0;
};
Tally g_tally;

// Records one call's result; a failure must come with a message.
bool ok(dragonError_t rc) {
    ++g_tally.calls;
    if (rc == DRAGON_SUCCESS) return true;
    ++g_tally.failed;
    char* msg = dragon_getlasterrstr();
    if (msg == nullptr || *msg == '\0') ++g_tally.silent;
    std::free(msg);
    return false;
}

// A call that must fail (bad input, to exercise message formatting): counted as a call.
void expect_error(dragonError_t rc) {
    ++g_tally.calls;
    if (rc == DRAGON_SUCCESS) ++g_tally.unexpected_success;
    char* msg = dragon_getlasterrstr();
    if (msg == nullptr || *msg == '\0') ++g_tally.silent;
    std::free(msg);
}

// Every kind of C call, on a pool of its own; each step uses only what earlier steps got.
// Returns the descriptors of the allocations still held.
void scenario(const char* name, dragonMemoryPoolDescr_t& pool, bool& have_pool,
              std::vector<dragonMemoryDescr_t>& held) {
    dragonMemoryPoolAttr_t attr;
    if (!ok(dragon_memory_attr_init(&attr))) return;
    size_t pre[2] = {2, 1};
    attr.pre_allocs = pre;
    attr.npre_allocs = 2;
    have_pool = ok(dragon_memory_pool_create(&pool, 1 << 20, name, 7, &attr));
    if (!have_pool) return;

    dragonMemoryPoolSerial_t pser{};
    if (ok(dragon_memory_pool_serialize(&pser, &pool))) {
        dragonMemoryPoolDescr_t again;
        if (ok(dragon_memory_pool_attach(&again, &pser))) ok(dragon_memory_pool_detach(&again));
        dragonULInt uid = 0;
        char* fname = nullptr;
        if (ok(dragon_memory_pool_get_uid_fname(&pser, &uid, &fname))) std::free(fname);
        ok(dragon_memory_pool_serial_free(&pser));
    }
    dragonMemoryPoolDescr_t clone;
    if (ok(dragon_memory_pool_descr_clone(&clone, &pool))) ok(dragon_memory_pool_detach(&clone));
    dragonMemoryPoolAttr_t got;
    std::memset(&got, 0, sizeof got);
    if (ok(dragon_memory_get_attr(&pool, &got))) ok(dragon_memory_attr_destroy(&got));
    uint64_t free_size = 0;
    ok(dragon_memory_pool_get_free_size(&pool, &free_size));
    size_t sizes = 0;
    if (ok(dragon_memory_pool_get_num_block_sizes(&pool, &sizes)) && sizes <= 64) {
        dragonHeapStatsAllocationItem_t blocks[64];  // not a vector: this code's own allocations must not fail
        ok(dragon_memory_pool_get_free_blocks(&pool, blocks));
    }
    ok(dragonmem_pool_check(&pool));
    (void)dragon_memory_pool_is_local(&pool);

    for (size_t bytes : {size_t{100}, size_t{5000}, size_t{32}}) {
        dragonMemoryDescr_t m;
        timespec_t wait{0, 1000000};
        if (ok(dragon_memory_alloc_type_blocking(&m, &pool, bytes, DRAGON_MEMORY_ALLOC_DATA, &wait))) held.push_back(m);
    }
    dragonMemoryDescr_t too_big;
    expect_error(dragon_memory_alloc(&too_big, &pool, size_t{1} << 40));
    dragonMemoryPoolAllocations_t list{};
    if (ok(dragon_memory_pool_get_allocations(&pool, &list))) ok(dragon_memory_pool_allocations_free(&list));
    if (ok(dragon_memory_pool_get_type_allocations(&pool, DRAGON_MEMORY_ALLOC_DATA, &list)))
        ok(dragon_memory_pool_allocations_destroy(&list));

    if (held.empty()) return;
    dragonMemoryDescr_t& m = held.front();
    void* ptr = nullptr;
    ok(dragon_memory_get_pointer(&m, &ptr));
    size_t size = 0;
    ok(dragon_memory_get_size(&m, &size));
    uint64_t id = 0;
    ok(dragon_memory_id(&m, &id));
    int exists = 0;
    ok(dragon_memory_pool_allocation_exists(&m, &exists));
    dragonMemorySerial_t mser{};
    if (ok(dragon_memory_serialize(&mser, &m))) {
        dragonMemoryDescr_t attached;
        if (ok(dragon_memory_attach(&attached, &mser))) ok(dragon_memory_detach(&attached));
        ok(dragon_memory_serial_free(&mser));
    }
    dragonMemoryDescr_t view;
    size_t len = 10;
    if (ok(dragon_memory_descr_clone(&view, &m, 5, &len))) {
        ok(dragon_memory_modify_size(&view, 4, nullptr));
        ok(dragon_memory_detach(&view));
    }
    dragonMemoryDescr_t by_id;
    if (ok(dragon_memory_from_id(&pool, id, &by_id))) ok(dragon_memory_detach(&by_id));
    dragonULInt part = 8;
    if (ok(dragon_memory_get_alloc_memdescr(&by_id, &pool, id, 2, &part))) ok(dragon_memory_detach(&by_id));
    expect_error(dragon_memory_from_id(&pool, id + 12345, &by_id));  // not live
    dragonMemoryPoolDescr_t of_mem;
    if (ok(dragon_memory_get_pool(&m, &of_mem))) ok(dragon_memory_pool_detach(&of_mem));
    if (ok(dragon_memory_free(&held.back()))) held.pop_back();
}

// After a run (allocations back on): the pool must be whole and hold exactly `held`.
std::string verify(dragonMemoryPoolDescr_t& pool, std::vector<dragonMemoryDescr_t>& held) {
    if (dragonmem_pool_check(&pool) != DRAGON_SUCCESS) {
        char* msg = dragon_getlasterrstr();
        std::string out = std::string("check failed: ") + (msg ? msg : "");
        std::free(msg);
        return out;
    }
    for (dragonMemoryDescr_t& m : held)
        if (dragon_memory_free(&m) != DRAGON_SUCCESS) return "a held allocation could not be freed";
    dragonMemoryPoolAllocations_t list{};
    if (dragon_memory_pool_get_allocations(&pool, &list) != DRAGON_SUCCESS) return "listing failed";
    std::string out = list.nallocs == 0 ? "" : std::to_string(list.nallocs) + " allocations leaked by failed calls";
    (void)dragon_memory_pool_allocations_free(&list);
    if (!out.empty()) return out;
    if (dragon_memory_pool_destroy(&pool) != DRAGON_SUCCESS) return "destroy failed";
    return "";
}

// One forked run; returns its exit status. Exit 0: consistent; 3: inconsistent (the
// reason on stdout); a signal: aborted or hung (SIGALRM).
int run_once(const char* name, long fail_at, bool from, int& calls, int& failed) {
    int fds[2];
    if (::pipe(fds) != 0) return -1;
    std::fflush(stdout);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        ::alarm(20);  // a pool lock left held by a throw would hang the next call
        if (g_only >= 0 && fail_at >= 0 && fail_at != g_only) std::_Exit(0);
        g_fail_at = fail_at;
        g_fail_from = from;
        dragonMemoryPoolDescr_t pool;
        bool have_pool = false;
        std::vector<dragonMemoryDescr_t> held;
        held.reserve(8);
        g_count = 0;
        g_armed = true;
        scenario(name, pool, have_pool, held);
        g_armed = false;
        std::string why = have_pool ? verify(pool, held) : std::string();
        if (g_tally.silent != 0) why += " " + std::to_string(g_tally.silent) + " failed calls without a message";
        if (g_tally.unexpected_success != 0) why += " a call meant to fail succeeded";
        char report[64];
        int n = std::snprintf(report, sizeof report, "%d %d %ld\n", g_tally.calls, g_tally.failed, g_count.load());
        (void)!::write(fds[1], report, static_cast<size_t>(n));
        if (!why.empty()) std::printf("why=%s\n", why.c_str());
        std::fflush(stdout);
        std::_Exit(why.empty() ? 0 : 3);
    }
    ::close(fds[1]);
    char buf[64] = {};
    ssize_t got = ::read(fds[0], buf, sizeof buf - 1);
    ::close(fds[0]);
    long counted = 0;
    if (got > 0) std::sscanf(buf, "%d %d %ld", &calls, &failed, &counted);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (fail_at < 0) return static_cast<int>(counted);  // the counting run: how many allocations
    return status;
}

}  // namespace
#endif  // DM_CHILD_NO_NEW_REPLACEMENT

namespace dmchild {

int cmd_c_boundary(int, char** argv) {
#ifdef DM_CHILD_NO_NEW_REPLACEMENT
    (void)argv;
    std::printf("boundary unavailable: built with a sanitizer whose runtime defines operator new\n");
    return 77;
#else
    const char* name = argv[2];
    if (const char* only = std::getenv("DM_C_BOUNDARY_TRACE"); only != nullptr) {
        g_only = std::atol(only);
        g_trace = true;
    }
    const bool from = std::strcmp(argv[3], "from") == 0;
    const std::string shm = dmtest::shm_path(name);
    int calls = 0, failed = 0;
    long total = run_once(name, -1, false, calls, failed);
    if (total <= 0 || failed != 0) {
        std::printf("boundary FAIL the scenario without failures made %d calls, %d failed, %ld allocations\n", calls,
                    failed, total);
        return 3;
    }
    int aborted = 0, hung = 0, inconsistent = 0, leftovers = 0;
    long all_calls = 0, all_failed = 0;
    for (long n = 0; n <= total; ++n) {
        calls = failed = 0;
        int status = run_once(name, n, from, calls, failed);
        all_calls += calls;
        all_failed += failed;
        const char* why = nullptr;
        if (WIFSIGNALED(status)) {
            bool alarm = WTERMSIG(status) == SIGALRM;
            ++(alarm ? hung : aborted);
            why = alarm ? "hung (a pool lock left held?)" : "killed by a signal (an exception crossed the C API?)";
        } else if (WEXITSTATUS(status) != 0) {
            ++inconsistent;
            why = "inconsistent afterwards (see why=)";
        }
        if (::access(shm.c_str(), F_OK) == 0) {
            ++leftovers;
            if (why == nullptr) why = "left the pool's shm object behind";
            ::unlink(shm.c_str());
        }
        if (why != nullptr)
            std::printf("bad n=%ld signal=%d why=%s\n", n, WIFSIGNALED(status) ? WTERMSIG(status) : 0, why);
    }
    std::printf("boundary runs=%ld aborted=%d hung=%d inconsistent=%d leftovers=%d calls=%ld failed_calls=%ld\n",
                total + 1, aborted, hung, inconsistent, leftovers, all_calls, all_failed);
    return 0;
#endif
}

}  // namespace dmchild
