// Return-code names (dragon_getrcstr) and the thread-local last-error message
// (dragon_getlasterrstr): present after every failure, naming the values involved.
#include "testing.hpp"

#include <cerrno>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

using namespace dmtest;

TEST_SUITE_BEGIN("errors");

TEST_CASE("return codes keep Dragon's numeric values and names") {
    struct Row {
        dragonError_t rc;
        int value;
        const char* name;
    };
    const Row rows[] = {
        {DRAGON_SUCCESS, 0, "DRAGON_SUCCESS"},
        {DRAGON_INVALID_ARGUMENT, 1, "DRAGON_INVALID_ARGUMENT"},
        {DRAGON_FAILURE, 8, "DRAGON_FAILURE"},
        {DRAGON_TIMEOUT, 9, "DRAGON_TIMEOUT"},
        {DRAGON_OUT_OF_SPACE, 19, "DRAGON_OUT_OF_SPACE"},
        {DRAGON_KEY_NOT_FOUND, 20, "DRAGON_KEY_NOT_FOUND"},
        {DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE, 58, "DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE"},
        {DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE, 59, "DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE"},
        {DRAGON_DYNHEAP_INVALID_POINTER, 63, "DRAGON_DYNHEAP_INVALID_POINTER"},
        {DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL, 70, "DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL"},
        {DRAGON_MEMORY_ERRNO, 71, "DRAGON_MEMORY_ERRNO"},
        {DRAGON_MEMORY_FILENAME_ERROR, 72, "DRAGON_MEMORY_FILENAME_ERROR"},
        {DRAGON_MAP_KEY_NOT_FOUND, 83, "DRAGON_MAP_KEY_NOT_FOUND"},
        {DRAGON_OBJECT_DESTROYED, 115, "DRAGON_OBJECT_DESTROYED"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.name);
        CHECK(static_cast<int>(row.rc) == row.value);
        REQUIRE(dragon_getrcstr(row.rc) != nullptr);
        CHECK(std::string(dragon_getrcstr(row.rc)) == row.name);
        REQUIRE(dragon_get_rc_string(row.rc) != nullptr);
        CHECK(std::string(dragon_get_rc_string(row.rc)) == row.name);
    }
}

TEST_CASE("dragon_getrcstr gives a distinct name to every known code and a fallback to others") {
    // Every value the enum can hold (0..127) gets a non-empty static string.
    std::set<std::string> known_names;
    int known = 0;
    for (int v = 0; v <= 127; ++v) {
        const char* name = dragon_getrcstr(static_cast<dragonError_t>(v));
        CAPTURE(v);
        REQUIRE(name != nullptr);
        CHECK(std::string(name).rfind("DRAGON_", 0) == 0);
        if (std::string(name) != "DRAGON_UNKNOWN_RETURN_CODE") {
            ++known;
            CHECK_MESSAGE(known_names.insert(name).second, "two codes share the name " << name);
        }
    }
    CHECK(known >= 100);  // Dragon's table has well over 100 named codes
    CHECK(std::string(dragon_getrcstr(static_cast<dragonError_t>(114))) == "DRAGON_UNKNOWN_RETURN_CODE");
    CHECK(std::string(dragon_getrcstr(static_cast<dragonError_t>(127))) == "DRAGON_UNKNOWN_RETURN_CODE");
}

TEST_CASE("dragon_getlasterrstr is empty in a thread that never failed") {
    std::string message = "not run";
    bool was_null = true;
    std::thread([&] {
        char* s = dragon_getlasterrstr();
        was_null = s == nullptr;
        message = s ? s : "";
        std::free(s);
    }).join();
    CHECK_FALSE(was_null);
    CHECK(message.empty());
}

TEST_CASE("the last error names the offending pool name") {
    const std::string bad = unique_pool_name() + "/sub";
    DM_CHECK_CREATE_FAILS(bad, 65536, nullptr, DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), bad);
}

TEST_CASE("the last error of a too-large request names the requested size") {
    TestPool pool(4096);
    dragonMemoryDescr_t mem{};
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), 5000), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    const std::string message = last_error();
    DM_CHECK_CONTAINS(message, "5000");
    DM_CHECK_CONTAINS(message, "4096");  // the largest block the pool can ever give
}

TEST_CASE("the last error of an unavailable request names the requested size") {
    TestPool pool(4096);
    dragonMemoryDescr_t a{}, b{};
    DM_REQUIRE_OK(dragon_memory_alloc(&a, pool.pd(), 2048));
    DM_REQUIRE_OK(dragon_memory_alloc(&b, pool.pd(), 2048));
    dragonMemoryDescr_t mem{};
    DM_CHECK_RC(dragon_memory_alloc(&mem, pool.pd(), 777), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE);
    DM_CHECK_CONTAINS(last_error(), "777");
}

TEST_CASE("the last error of a too-small pool names the size") {
    ShmGuard guard(unique_pool_name());
    DM_CHECK_CREATE_FAILS(guard.name(), 96, nullptr, DRAGON_INVALID_ARGUMENT);
    // 96 B rounds up to 128 B = 4 blocks of 32 B; either figure names the cause.
    const std::string message = last_error();
    CHECK_MESSAGE((message.find("96") != std::string::npos || message.find("128") != std::string::npos),
                  "'" << message << "' names neither the requested 96 B nor the rounded 128 B");
}

TEST_CASE("the last error is per thread") {
    const std::string main_bad = unique_pool_name() + "/main";
    const std::string thread_bad = unique_pool_name() + "/thread";
    dragonMemoryPoolDescr_t pool{};
    DM_REQUIRE_RC(dragon_memory_pool_create(&pool, 65536, main_bad.c_str(), 1, nullptr), DRAGON_INVALID_ARGUMENT);

    std::string thread_message;
    dragonError_t thread_rc = DRAGON_SUCCESS;
    std::thread([&] {
        dragonMemoryPoolDescr_t p{};
        thread_rc = dragon_memory_pool_create(&p, 65536, thread_bad.c_str(), 1, nullptr);
        thread_message = last_error();
    }).join();
    CHECK(thread_rc == DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(thread_message, thread_bad);

    const std::string main_message = last_error();
    DM_CHECK_CONTAINS(main_message, main_bad);
    CHECK(main_message.find(thread_bad) == std::string::npos);
}

TEST_CASE("a failed system call's message carries the errno and its text, in every thread") {
    // Attaching a pool that does not exist fails in shm_open with ENOENT; the message
    // names the errno and its text (errno_text: strerror_r, no buffer shared between
    // threads), however many threads fail at once.
    const std::string absent = unique_pool_name();
    const std::string expected = std::string(std::strerror(ENOENT)) + " (errno " + std::to_string(ENOENT) + ")";
    std::vector<std::string> messages(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < messages.size(); ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 50; ++round) {
                try {
                    (void)dragonmem::Pool::attach_local(absent);
                    messages[t] = "attach_local of an absent pool succeeded";
                    return;
                } catch (const dragonmem::Error& e) {
                    if (e.code() != DRAGON_MEMORY_ERRNO || std::string(e.what()).find(expected) == std::string::npos) {
                        messages[t] = e.what();
                        return;
                    }
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (const std::string& message : messages) CHECK_MESSAGE(message.empty(), message);
}

TEST_CASE("dragon_getlasterrstr returns a fresh copy each call") {
    ShmGuard guard(unique_pool_name());
    dragonMemoryPoolDescr_t pool{};
    DM_REQUIRE_RC(dragon_memory_pool_create(&pool, 0, guard.name().c_str(), 1, nullptr), DRAGON_INVALID_ARGUMENT);
    char* first = dragon_getlasterrstr();
    char* second = dragon_getlasterrstr();
    REQUIRE(first != nullptr);
    REQUIRE(second != nullptr);
    CHECK(first != second);  // each call hands out a malloc'd copy the caller frees
    CHECK(std::string(first) == std::string(second));
    CHECK(std::string(first).size() > 0);
    std::free(first);
    std::free(second);
}

TEST_SUITE_END();
