// Timeouts near the top of time_t (issue 9, item 10): a relative timeout is turned into an
// absolute CLOCK_MONOTONIC deadline by adding the current time; {INT64_MAX, 0} overflowed
// into the past and every timed call returned TIMEOUT at once. The sum now saturates (a
// deadline beyond time_t is "forever"). Each timed entry point, C and C++, is given huge
// timeouts while the pool is full, and must wait for the free another thread makes.
#include "testing.hpp"
#include "os/deadline.hpp"

#include <climits>
#include <functional>
#include <thread>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;
namespace detail = dragonmem::detail;

TEST_SUITE_BEGIN("deadlines");

namespace {

std::vector<std::pair<std::string, timespec>> huge_timeouts() {
    const time_t now_s = detail::now_monotonic().tv_sec;
    return {
        {"{INT64_MAX, 0}", {INT64_MAX, 0}},
        {"{INT64_MAX, 999999999}", {INT64_MAX, 999'999'999}},
        {"{INT64_MAX - 1, 500000000}", {INT64_MAX - 1, 500'000'000}},
        {"{INT64_MAX - now, 999999999} (sum exactly at the top, carry over)", {INT64_MAX - now_s, 999'999'999}},
        {"{INT64_MAX / 2, 0}", {INT64_MAX / 2, 0}},
    };
}

// Fills the pool with one block, runs `call` (which must wait for memory), and frees the
// block from another thread after a short delay. Returns the call's rc, message and
// whether it returned only after the free.
struct Outcome {
    dragonError_t rc = DRAGON_FAILURE;
    std::string message;
    bool waited_for_free = false;
};

Outcome with_full_pool(Pool& pool, const std::function<dragonError_t(std::string&)>& call) {
    Memory whole = pool.alloc(pool.heap_bytes());
    std::atomic<double> freed_at{0};
    std::thread freer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        freed_at.store(now_ms());
        whole.free();
    });
    watchdog().arm(30000, "a timed call with a huge timeout, woken by a free");
    Outcome out;
    out.rc = call(out.message);
    double returned_at = now_ms();
    watchdog().disarm();
    freer.join();
    out.waited_for_free = freed_at.load() != 0 && returned_at >= freed_at.load();
    return out;
}


void check_waited(const Outcome& o, const std::string& what) {
    CHECK_MESSAGE(o.rc == DRAGON_SUCCESS, what << " returned " << toString(o.rc) << ": " << o.message);
    if (o.rc == DRAGON_SUCCESS) CHECK_MESSAGE(o.waited_for_free, what << " succeeded before the pool had room");
}

}  // namespace

TEST_CASE("deadlines: relative timeouts at the top of time_t saturate to forever") {
    for (const auto& entry : huge_timeouts()) {
        const std::string& what = entry.first;  // not structured bindings: doctest's macros capture
        const timespec& relative = entry.second;
        timespec deadline = detail::deadline_after(relative);
        CHECK_MESSAGE(!detail::deadline_passed(deadline), what << " gave a deadline in the past: {" << deadline.tv_sec
                                                                << ", " << deadline.tv_nsec << "}");
        CHECK_MESSAGE(detail::earlier(detail::deadline_after(timespec{3600, 0}), deadline), what);
        CHECK(deadline.tv_nsec >= 0);
        CHECK(deadline.tv_nsec < 1'000'000'000L);
    }
    // Ordinary ones still add up exactly, carry included.
    timespec now = detail::now_monotonic();
    timespec soon = detail::deadline_after(timespec{2, 999'999'999});
    std::int64_t ns = detail::ns_between(now, soon);
    CHECK(ns >= 2'999'999'999LL);
    CHECK(ns < 4'000'000'000LL);
    CHECK(detail::ns_between(soon, now) == 0);
    CHECK(detail::ns_between(now, timespec{INT64_MAX, 999'999'999}) == INT64_MAX);
}

TEST_CASE("deadlines: every timed entry point waits for memory under a huge timeout (C and C++)") {
    ScopedPool scoped(64 * 1024, {}, "dl");
    Pool& pool = scoped.pool();
    const auto serial = pool.serialize();
    dragonMemoryPoolSerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
    dragonMemoryPoolDescr_t c_pool;
    REQUIRE(dragon_memory_pool_attach(&c_pool, &ser) == DRAGON_SUCCESS);
    const std::size_t heap = pool.heap_bytes();

    for (const auto& entry : huge_timeouts()) {
        const std::string& what = entry.first;
        const timespec& timeout = entry.second;
        count_bad_inputs(5);
        const timespec* t = &timeout;
        check_waited(with_full_pool(pool,
                                    [&](std::string& msg) {
                                        return rc_of(
                                            [&] { pool.alloc_blocking(heap, DRAGON_MEMORY_ALLOC_DATA, t).free(); }, msg);
                                    }),
                     "Pool::alloc_blocking " + what);
        check_waited(with_full_pool(pool,
                                    [&](std::string& msg) {
                                        Memory zero = pool.alloc(0);
                                        return rc_of(
                                            [&] {
                                                zero.modify_size(heap, t);
                                                CHECK(zero.size() == heap);
                                                zero.free();
                                            },
                                            msg);
                                    }),
                     "Memory::modify_size " + what);
        check_waited(with_full_pool(pool,
                                    [&](std::string& msg) {
                                        dragonMemoryDescr_t mem;
                                        dragonError_t rc = dragon_memory_alloc_blocking(&mem, &c_pool, heap, t);
                                        msg = rc == DRAGON_SUCCESS ? "" : last_error();
                                        if (rc == DRAGON_SUCCESS) CHECK(dragon_memory_free(&mem) == DRAGON_SUCCESS);
                                        return rc;
                                    }),
                     "dragon_memory_alloc_blocking " + what);
        check_waited(with_full_pool(pool,
                                    [&](std::string& msg) {
                                        dragonMemoryDescr_t mem;
                                        dragonError_t rc = dragon_memory_alloc_type_blocking(
                                            &mem, &c_pool, heap, DRAGON_MEMORY_ALLOC_CHANNEL, t);
                                        msg = rc == DRAGON_SUCCESS ? "" : last_error();
                                        if (rc == DRAGON_SUCCESS) CHECK(dragon_memory_free(&mem) == DRAGON_SUCCESS);
                                        return rc;
                                    }),
                     "dragon_memory_alloc_type_blocking " + what);
        check_waited(with_full_pool(pool,
                                    [&](std::string& msg) {
                                        dragonMemoryDescr_t mem;
                                        if (dragon_memory_alloc(&mem, &c_pool, 0) != DRAGON_SUCCESS) {
                                            msg = last_error();
                                            return DRAGON_FAILURE;
                                        }
                                        dragonError_t rc = dragon_memory_modify_size(&mem, heap, t);
                                        msg = rc == DRAGON_SUCCESS ? "" : last_error();
                                        if (rc == DRAGON_SUCCESS) CHECK(dragon_memory_free(&mem) == DRAGON_SUCCESS);
                                        return rc;
                                    }),
                     "dragon_memory_modify_size " + what);
    }
    CHECK(pool.attributes().free_bytes == heap);
    REQUIRE(dragon_memory_pool_detach(&c_pool) == DRAGON_SUCCESS);
}

TEST_SUITE_END();
