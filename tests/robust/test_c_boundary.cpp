// No C++ exception crosses the C API (issue 9, item 6; BAD_INPUTS.md rows X1-X2): an
// allocation failure inside any C call is an error code with a message, never an abort,
// and leaves no half-made pool, leaked allocation or pool lock held.
#include "testing.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

using namespace dmtest;

TEST_SUITE_BEGIN("c_boundary");

namespace {

// This process's private writable memory (what RLIMIT_DATA counts), in bytes.
std::uint64_t data_bytes_in_use() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmData:", 0) == 0) return std::stoull(line.substr(7)) * 1024;  // "VmData:  1234 kB"
    return 0;
}

}  // namespace

TEST_CASE("X1: pool_create with huge pre_allocs under RLIMIT_DATA: an error, no abort, no pool left") {
    if (k_address_sanitizer) {
        MESSAGE("SKIP: under AddressSanitizer a memory limit aborts its allocator before the library sees std::bad_alloc");
        return;
    }
    ShmGuard guard(unique_pool_name("oom"));
    count_bad_inputs();
    Isolated r = run_isolated([&]() -> std::string {
        // 16 MiB of private memory to spare: the pool itself is shared memory (not
        // counted), but the list of 4M preallocated blocks the creator keeps is not.
        rlimit limit{};
        limit.rlim_cur = limit.rlim_max = data_bytes_in_use() + (16u << 20);
        if (::setrlimit(RLIMIT_DATA, &limit) != 0) return "setrlimit failed";
        dragonMemoryPoolAttr_t attr;
        dragon_memory_attr_init(&attr);
        size_t pre[1] = {size_t{1} << 22};  // every 32 B block of a 128 MiB heap
        attr.pre_allocs = pre;
        attr.npre_allocs = 1;
        dragonMemoryPoolDescr_t pool;
        dragonError_t rc = dragon_memory_pool_create(&pool, size_t{128} << 20, guard.name().c_str(), 1, &attr);
        if (rc == DRAGON_SUCCESS) {
            (void)dragon_memory_pool_destroy(&pool);
            return "created (the limit did not bite)";
        }
        return "rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error();
    }, 60000);
    REQUIRE_MESSAGE(r.completed, "pool_create under RLIMIT_DATA did not return: " << r.text);
    CHECK_MESSAGE(r.text.rfind("rc=" + std::to_string(static_cast<int>(DRAGON_INTERNAL_MALLOC_FAIL)) + " msg=", 0) == 0,
                  r.text);
    CHECK_MESSAGE(r.text.size() > std::string("rc=11 msg=").size(), "no message: " << r.text);
    CHECK_MESSAGE(!shm_exists(guard.name()), "the failed create left /dev/shm/dragonmem." << guard.name() << " behind");
}

TEST_CASE("X2: std::bad_alloc at every allocation of every kind of C call: an error code, the pool intact") {
    for (const char* mode : {"once", "from"}) {
        ShmGuard guard(unique_pool_name("cb"));
        Child child = Child::spawn({child_program(), "c-boundary", guard.name(), mode});
        ChildResult exit = child.wait(100000);
        const std::string& out = child.output();
        INFO("dm_child c-boundary " << std::string(mode) << ":\n" << out);
        // Built with a sanitizer whose runtime owns operator new (tests/child/c_boundary.cpp).
        if (exit.exited_with(77) && out.rfind("boundary unavailable", 0) == 0) {
            MESSAGE("SKIP: " << out);
            return;
        }
        REQUIRE_MESSAGE(exit.exited_with(0), exit.describe());
        std::string summary = out.substr(out.rfind("boundary "));
        MESSAGE("X2 " << std::string(mode) << ": " << summary);
        count_bad_inputs(std::stoull(field(summary, "runs")));
        CHECK(std::stoull(field(summary, "runs")) > 50);
        CHECK(std::stoull(field(summary, "failed_calls")) > 0);
        CHECK(field(summary, "aborted") == "0");
        CHECK(field(summary, "hung") == "0");
        CHECK(field(summary, "inconsistent") == "0");
        CHECK(field(summary, "leftovers") == "0");
    }
}

TEST_SUITE_END();
