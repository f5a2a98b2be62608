// A lock holder that is alive but not running (issue 9, item 5): a child takes the pool
// lock and stops itself (SIGSTOP). It is never taken over (it is not dead), so:
//   - calls with a timeout honour it while waiting for the lock and fail with
//     DRAGON_TIMEOUT naming the holder (process, state "T (stopped)");
//   - calls without one wait as long as the lock-wait limit allows (process-wide or per
//     thread, C++ and C), unlimited by default;
//   - destroy --force (Pool::force_remove) removes the pool without the lock, and
//     threads waiting for the lock then fail with OBJECT_DESTROYED;
//   - nothing of it changes the pool, and once continued the holder finishes normally.
// Every call that could hang runs in a thread with a failure limit far above any honest
// wait; past it the test fails and kills the holder, which releases the caller.
#include "testing.hpp"

#include <dragonmem/lock_wait.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <iterator>
#include <thread>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;
using namespace std::chrono_literals;

TEST_SUITE_BEGIN("stopped_holder");

namespace {

char task_state(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::size_t close = text.rfind(')');
    return close == std::string::npos || close + 2 >= text.size() ? '?' : text[close + 2];
}

// A child holding the pool lock, stopped.
Child stop_holding_lock(const std::string& pool_name) {
    Child holder = Child::spawn({child_program(), "crash-point", pool_name, "stop"});
    REQUIRE_MESSAGE(holder.wait_line("holding", 10000).has_value(), holder.output());
    double until = now_ms() + 10000;
    while (task_state(holder.pid()) != 'T' && now_ms() < until) std::this_thread::sleep_for(1ms);
    REQUIRE_MESSAGE(task_state(holder.pid()) == 'T', "the holder did not stop");
    return holder;
}

// Continues the holder: it releases the lock and exits 0.
void continue_holder(Child& holder) {
    holder.kill_now(SIGCONT);
    CHECK_MESSAGE(holder.wait_line("released", 10000).has_value(), holder.output());
    ChildResult exit = holder.wait(10000);
    CHECK_MESSAGE(exit.exited_with(0), exit.describe());
}

struct CallResult {
    bool finished = false;
    dragonError_t rc = DRAGON_SUCCESS;
    std::string message;
    double took_ms = 0;
};

// Runs `call` (which returns its rc and leaves a message) in a thread; waits for it at
// most `limit_ms`. Past that, SIGKILLs the holder so the call can finish (a dead holder
// is taken over) and reports it unfinished.
CallResult bounded_call(Child& holder, const std::function<dragonError_t(std::string&)>& call, int limit_ms = 15000) {
    std::atomic<bool> done{false};
    CallResult result;
    std::thread worker([&] {
        double t0 = now_ms();
        result.rc = call(result.message);
        result.took_ms = now_ms() - t0;
        done.store(true);
    });
    double until = now_ms() + limit_ms;
    while (!done.load() && now_ms() < until) std::this_thread::sleep_for(2ms);
    result.finished = done.load();
    if (!result.finished) holder.kill_now(SIGKILL);
    worker.join();
    return result;
}


// The call failed with TIMEOUT and its message names the stopped holder.
void check_names_holder(const CallResult& r, const Child& holder, const std::string& what) {
    REQUIRE_MESSAGE(r.finished, what << " still waited after 15 s: a stopped lock holder hangs it");
    CHECK_MESSAGE(r.rc == DRAGON_TIMEOUT, what << " returned " << toString(r.rc) << ": " << r.message);
    CHECK_MESSAGE(r.message.find("process " + std::to_string(holder.pid())) != std::string::npos,
                  what << ": the message does not name the holder's pid: " << r.message);
    CHECK_MESSAGE(r.message.find("T (stopped)") != std::string::npos,
                  what << ": the message does not give the holder's state: " << r.message);
}

struct ProcessLimit {
    explicit ProcessLimit(std::optional<std::chrono::nanoseconds> limit) { dragonmem::set_lock_wait_limit(limit); }
    ~ProcessLimit() { dragonmem::set_lock_wait_limit(std::nullopt); }
    ProcessLimit(const ProcessLimit&) = delete;
    ProcessLimit& operator=(const ProcessLimit&) = delete;
};

}  // namespace

TEST_CASE("stopped holder: calls with a timeout honour it while waiting for the lock, naming the holder") {
    ScopedPool scoped(64 * 1024, {}, "stp");
    Pool& pool = scoped.pool();
    Memory zero = pool.alloc(0);  // a zero-byte descriptor: modify_size allocates
    const auto serial = pool.serialize();
    auto before = snapshot(pool);
    Child holder = stop_holding_lock(scoped.name());

    const timespec one_second{1, 0};
    CallResult cxx = bounded_call(holder, [&](std::string& msg) {
        return rc_of([&] { pool.alloc_blocking(64, DRAGON_MEMORY_ALLOC_DATA, &one_second); }, msg);
    });
    check_names_holder(cxx, holder, "Pool::alloc_blocking(1 s)");
    CHECK_MESSAGE(cxx.took_ms >= 990, "returned before its timeout: " << cxx.took_ms << " ms");
    CHECK_MESSAGE(cxx.message.find("the call's timeout") != std::string::npos, cxx.message);
    MESSAGE("alloc_blocking(1 s) with a stopped holder returned after " << cxx.took_ms << " ms: " << cxx.message);

    // The C API, from a descriptor of its own.
    dragonMemoryPoolSerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
    dragonMemoryPoolDescr_t c_pool;
    REQUIRE(dragon_memory_pool_attach(&c_pool, &ser) == DRAGON_SUCCESS);
    const timespec half_second{0, 500'000'000};
    CallResult c_alloc = bounded_call(holder, [&](std::string& msg) {
        dragonMemoryDescr_t mem;
        dragonError_t rc = dragon_memory_alloc_blocking(&mem, &c_pool, 64, &half_second);
        msg = last_error();
        return rc;
    });
    check_names_holder(c_alloc, holder, "dragon_memory_alloc_blocking(0.5 s)");
    CallResult c_typed = bounded_call(holder, [&](std::string& msg) {
        dragonMemoryDescr_t mem;
        dragonError_t rc =
            dragon_memory_alloc_type_blocking(&mem, &c_pool, 64, DRAGON_MEMORY_ALLOC_CHANNEL, &half_second);
        msg = last_error();
        return rc;
    });
    check_names_holder(c_typed, holder, "dragon_memory_alloc_type_blocking(0.5 s)");
    CallResult modify = bounded_call(holder, [&](std::string& msg) {
        return rc_of([&] { zero.modify_size(64, &half_second); }, msg);
    });
    check_names_holder(modify, holder, "Memory::modify_size(0.5 s) of a zero-byte allocation");
    CHECK(zero.size() == 0);  // unchanged by the failure
    // A timeout shorter than the 10 ms floor still ends (at the floor).
    const timespec zero_timeout{0, 0};
    CallResult instant = bounded_call(holder, [&](std::string& msg) {
        return rc_of([&] { pool.alloc_blocking(64, DRAGON_MEMORY_ALLOC_DATA, &zero_timeout); }, msg);
    });
    check_names_holder(instant, holder, "Pool::alloc_blocking(0 s)");
    REQUIRE(dragon_memory_pool_detach(&c_pool) == DRAGON_SUCCESS);

    continue_holder(holder);
    auto after = snapshot(pool);
    CHECK_MESSAGE(after == before, "before " << before.describe() << "\nafter  " << after.describe());
}

TEST_CASE("stopped holder: calls without a timeout give up at the lock-wait limit (thread, process, C), naming the "
          "holder") {
    ScopedPool scoped(64 * 1024, {}, "stl");
    Pool& pool = scoped.pool();
    Memory kept = pool.alloc(1000, 5);
    const std::uint64_t kept_id = kept.id();
    Memory kept_view = kept.clone();
    const auto serial = pool.serialize();
    auto before = snapshot(pool);
    Child holder = stop_holding_lock(scoped.name());

    // Per thread (C++): every call that takes the lock.
    const std::vector<std::pair<std::string, std::function<void()>>> calls{
        {"allocations", [&] { (void)pool.allocations(); }},
        {"attributes", [&] { (void)pool.attributes(); }},
        {"free_blocks", [&] { (void)pool.free_blocks(); }},
        {"check", [&] { (void)pool.check(); }},
        {"alloc", [&] { (void)pool.alloc(64); }},
        {"from_id", [&] { (void)pool.from_id(kept_id); }},
        {"free", [&] { kept_view.free(); }},
        {"alloc_blocking(no timeout)", [&] { (void)pool.alloc_blocking(64, DRAGON_MEMORY_ALLOC_DATA, nullptr); }},
        {"alloc_blocking(60 s)", [&] {
             const timespec minute{60, 0};
             (void)pool.alloc_blocking(64, DRAGON_MEMORY_ALLOC_DATA, &minute);
         }},
    };
    for (const auto& entry : calls) {
        const std::string& what = entry.first;
        const std::function<void()>& call = entry.second;
        CallResult r = bounded_call(holder, [&](std::string& msg) {
            dragonmem::ThreadLockWaitLimit limit(300ms);
            return rc_of(call, msg);
        });
        check_names_holder(r, holder, what + " under a 0.3 s thread limit");
        CHECK_MESSAGE(r.message.find("the lock-wait limit") != std::string::npos, what << ": " << r.message);
    }
    // The thread limit ended with its scope: the process-wide one (none) is back.
    CHECK_FALSE(dragonmem::lock_wait_limit().has_value());

    // Process-wide, from a thread that set nothing of its own.
    {
        ProcessLimit limit(250ms);
        CHECK(dragonmem::lock_wait_limit() == std::chrono::nanoseconds(250ms));
        CallResult r =
            bounded_call(holder, [&](std::string& msg) { return rc_of([&] { (void)pool.allocations(); }, msg); });
        check_names_holder(r, holder, "allocations under a 0.25 s process limit");
        // A thread's own limit overrides it, an unlimited one too: that thread waits.
        std::atomic<bool> unlimited_returned{false};
        std::thread unlimited([&] {
            dragonmem::ThreadLockWaitLimit none(std::nullopt);
            try {
                (void)pool.attributes();
            } catch (const dragonmem::Error&) {
            }
            unlimited_returned.store(true);
        });
        std::this_thread::sleep_for(1s);
        CHECK_MESSAGE(!unlimited_returned.load(), "a thread without a limit of its own gave up at the process's");
        // It is released below, when the holder continues.
        continue_holder(holder);
        unlimited.join();
    }

    // The C extension, per thread and per process.
    holder = stop_holding_lock(scoped.name());
    dragonMemoryPoolSerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
    dragonMemoryPoolDescr_t c_pool;
    REQUIRE(dragon_memory_pool_attach(&c_pool, &ser) == DRAGON_SUCCESS);
    CallResult c_thread = bounded_call(holder, [&](std::string& msg) {
        const timespec limit{0, 300'000'000};
        CHECK(dragonmem_set_thread_lock_wait_limit(&limit) == DRAGON_SUCCESS);
        dragonMemoryPoolAllocations_t allocs{};
        dragonError_t rc = dragon_memory_pool_get_allocations(&c_pool, &allocs);
        msg = last_error();
        dragonmem_clear_thread_lock_wait_limit();
        return rc;
    });
    check_names_holder(c_thread, holder, "dragon_memory_pool_get_allocations under a C thread limit");
    CallResult c_process = bounded_call(holder, [&](std::string& msg) {
        const timespec limit{0, 300'000'000};
        CHECK(dragonmem_set_lock_wait_limit(&limit) == DRAGON_SUCCESS);
        dragonMemoryDescr_t mem;
        dragonError_t rc = dragon_memory_alloc(&mem, &c_pool, 64);
        msg = last_error();
        CHECK(dragonmem_set_lock_wait_limit(nullptr) == DRAGON_SUCCESS);
        return rc;
    });
    check_names_holder(c_process, holder, "dragon_memory_alloc under a C process limit");
    CHECK_FALSE(dragonmem::lock_wait_limit().has_value());
    REQUIRE(dragon_memory_pool_detach(&c_pool) == DRAGON_SUCCESS);

    continue_holder(holder);
    auto after = snapshot(pool);
    CHECK_MESSAGE(after == before, "before " << before.describe() << "\nafter  " << after.describe());
    CHECK(kept.exists());
    kept.free();
}

TEST_CASE("lock-wait limit: invalid limits are refused and change nothing") {
    {
        ProcessLimit limit(2s);
        CHECK_THROWS_AS(dragonmem::set_lock_wait_limit(std::chrono::nanoseconds(-1)), dragonmem::Error);
        CHECK_THROWS_AS(dragonmem::ThreadLockWaitLimit(std::chrono::nanoseconds(-5)), dragonmem::Error);
        CHECK(dragonmem::lock_wait_limit() == std::chrono::nanoseconds(2s));
        for (timespec bad :
             {timespec{-1, 0}, timespec{0, -1}, timespec{0, 1'000'000'000}, timespec{5, 2'000'000'000}}) {
            count_bad_inputs();
            DM_CHECK_RC(dragonmem_set_lock_wait_limit(&bad), DRAGON_INVALID_ARGUMENT);
            DM_CHECK_RC(dragonmem_set_thread_lock_wait_limit(&bad), DRAGON_INVALID_ARGUMENT);
            CHECK(last_error().find(std::to_string(bad.tv_sec)) != std::string::npos);
        }
        CHECK(dragonmem::lock_wait_limit() == std::chrono::nanoseconds(2s));
        // Longer than 64-bit nanoseconds hold: no limit, not an overflow into a short one.
        const timespec huge{INT64_MAX, 999'999'999};
        CHECK(dragonmem_set_lock_wait_limit(&huge) == DRAGON_SUCCESS);
        CHECK_FALSE(dragonmem::lock_wait_limit().has_value());
    }
    CHECK_FALSE(dragonmem::lock_wait_limit().has_value());
}

TEST_CASE("stopped holder: destroy --force removes the pool without the lock; waiters for the lock fail with "
          "OBJECT_DESTROYED") {
    ScopedPool scoped(64 * 1024, {}, "stf");
    Pool& pool = scoped.pool();
    Child holder = stop_holding_lock(scoped.name());

    // Two threads of this process wait for the lock without any limit.
    std::atomic<int> returned{0};
    dragonError_t listing_rc = DRAGON_SUCCESS, blocking_rc = DRAGON_SUCCESS;
    std::string listing_msg, blocking_msg;
    std::thread listing([&] {
        listing_rc = rc_of([&] { (void)pool.allocations(); }, listing_msg);
        returned.fetch_add(1);
    });
    std::thread blocking([&] {
        blocking_rc = rc_of([&] { (void)pool.alloc_blocking(64, DRAGON_MEMORY_ALLOC_DATA, nullptr); }, blocking_msg);
        returned.fetch_add(1);
    });
    std::this_thread::sleep_for(300ms);
    CHECK(returned.load() == 0);

    // Another process removes it (destroying it in this process would unmap it under
    // the waiting threads).
    Child remover = Child::spawn({child_program(), "force-remove", scoped.name()});
    auto removed = remover.wait_line("removed", 15000);
    const bool remover_hung = remover.wait(5000).timed_out;
    CHECK_MESSAGE(removed.has_value(), "destroy --force hung behind the stopped holder: " << remover.output());
    if (removed) CHECK_MESSAGE(field(*removed, "rc") == "0", *removed);
    CHECK_FALSE(remover_hung);
    CHECK_FALSE(shm_exists(scoped.name()));
    if (!removed) holder.kill_now(SIGKILL);  // lets the waiting threads finish, to fail cleanly

    double until = now_ms() + 15000;
    while (returned.load() < 2 && now_ms() < until) std::this_thread::sleep_for(2ms);
    bool released = returned.load() == 2;
    if (!released) holder.kill_now(SIGKILL);  // lets them finish, to fail cleanly
    listing.join();
    blocking.join();
    CHECK_MESSAGE(released, "threads waiting for the lock of a pool destroyed by force kept waiting");
    CHECK_MESSAGE(listing_rc == DRAGON_OBJECT_DESTROYED, toString(listing_rc) << ": " << listing_msg);
    CHECK_MESSAGE(blocking_rc == DRAGON_OBJECT_DESTROYED, toString(blocking_rc) << ": " << blocking_msg);

    // The holder finishes its (now pointless) critical section in its own mapping.
    if (released) continue_holder(holder);
    CHECK_FALSE(shm_exists(scoped.name()));
}

TEST_CASE("stopped holder: Pool::force_remove in a process that has the pool attached removes it without the lock") {
    std::string name;
    {
        ScopedPool scoped(64 * 1024, {}, "sfr");
        name = scoped.name();
        Child holder = stop_holding_lock(name);
        CallResult r = bounded_call(holder, [&](std::string& msg) {
            return rc_of([&] { Pool::force_remove(name); }, msg);
        });
        REQUIRE_MESSAGE(r.finished, "Pool::force_remove hung behind the stopped holder");
        CHECK_MESSAGE(r.rc == DRAGON_SUCCESS, toString(r.rc) << ": " << r.message);
        CHECK_FALSE(shm_exists(name));
        // This process's handle now refers to a pool destroyed here.
        CHECK_THROWS_AS((void)scoped.pool().allocations(), dragonmem::Error);
        continue_holder(holder);
    }
    CHECK_FALSE(shm_exists(name));
}

TEST_SUITE_END();
