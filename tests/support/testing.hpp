// What every doctest file of the suites (tests/unit, tests/robust) includes: doctest, the
// C and C++ APIs, the support pieces, rc-checking macros that print the library's last
// error message, and pool fixtures (C API: TestPool, C++ API: ScopedPool) that always
// leave /dev/shm clean.
#pragma once

#include <doctest/doctest.h>

#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include "child_process.hpp"
#include "codec.hpp"
#include "descriptor_seal.hpp"
#include "isolated.hpp"
#include "pool_state.hpp"
#include "shm_names.hpp"
#include "watchdog.hpp"

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

// doctest prints enums as integers; show return codes by name (found through ADL).
inline doctest::String toString(dragonError_t rc) {
    std::string s = std::string(dragon_getrcstr(rc)) + " (" + std::to_string(static_cast<int>(rc)) + ")";
    return doctest::String(s.c_str());
}

namespace dmtest {

// One mebibyte, for pool and /dev/shm sizes in the tests (one definition: unity builds put
// several test files in one translation unit).
inline constexpr std::size_t MiB = std::size_t{1024} * 1024;

std::string child_program();  // child_process.hpp

// The dm_child program's path, failing the test when the suite was not run by meson test.
inline std::string child_or_fail() {
    const std::string child = child_program();
    REQUIRE_MESSAGE(!child.empty(), "DM_CHILD_PATH is not set (run the suite through meson test)");
    return child;
}

// dragon_getlasterrstr() as a std::string (the C string is freed).
inline std::string last_error() {
    char* s = dragon_getlasterrstr();
    std::string out = s ? std::string(s) : std::string();
    std::free(s);
    return out;
}

inline timespec ms_timespec(long ms) {
    timespec ts{};
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    return ts;
}

inline std::size_t next_pow2(std::size_t n) {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

// The block a request of `bytes` (>= 1) takes in a pool of 64 B granules, by the rule
// man 3 libdragonmem states: whole granules, rounded up to a size class (one granule
// apart up to 32 granules, then 16 classes per power of two). Written from the rule,
// not from the library's code, so that the tests check the library against it.
inline std::size_t block_for(std::size_t bytes) {
    std::size_t granules = (bytes + 63) / 64;
    if (granules >= 32) {
        std::size_t top = 1;
        while (top * 2 <= granules) top *= 2;
        const std::size_t step = top / 16;
        granules = (granules + step - 1) / step * step;
    }
    return granules * 64;
}
// The alignment of such a block: its size when that is a power of two up to 4 KiB, else 64.
inline std::size_t alignment_for(std::size_t block) {
    return block <= 4096 && (block & (block - 1)) == 0 ? block : 64;
}

inline dragonMemoryPoolAttr_t default_attr() {
    dragonMemoryPoolAttr_t attr;
    dragon_memory_attr_init(&attr);
    return attr;
}

// A C++ call as rc + message: DRAGON_SUCCESS, or the code and message of the
// dragonmem::Error it threw.
dragonError_t rc_of(const std::function<void()>& fn, std::string& message);

// Built with AddressSanitizer? Its allocator takes memory in big mmapped chunks and treats
// a refusal as fatal, so tests that starve a process of memory (RLIMIT_DATA) run only in
// the other builds.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_address_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool k_address_sanitizer = true;
#else
inline constexpr bool k_address_sanitizer = false;
#endif
#else
inline constexpr bool k_address_sanitizer = false;
#endif

// The long forms of the tests (hundreds of kill rounds, longer stress): DRAGONMEM_LONG_TESTS=1
// or --long on the runner's command line.
bool long_mode();
void set_long_mode(bool on);

// Counts the bad inputs the tests tried (the runner prints the total after the run).
void count_bad_inputs(std::uint64_t n = 1);
std::uint64_t bad_inputs_tried();

}  // namespace dmtest

// Checks `expr` returns `expected`; on a mismatch shows the last error message. When a
// failure is expected, also checks that the failure left a non-empty message.
#define DM_RC_CHECK_IMPL_(KIND, expr, expected)                                                                   \
    do {                                                                                                          \
        const dragonError_t dm_rc_ = (expr);                                                                      \
        const dragonError_t dm_expected_ = (expected);                                                            \
        const std::string dm_err_ = dm_rc_ != DRAGON_SUCCESS ? ::dmtest::last_error() : std::string();            \
        KIND##_MESSAGE(dm_rc_ == dm_expected_, #expr " returned " << toString(dm_rc_) << " (expected "            \
                                                         << toString(dm_expected_) << "); last error: '"        \
                                                         << dm_err_ << "'");                                     \
        if (dm_expected_ != DRAGON_SUCCESS && dm_rc_ == dm_expected_)                                             \
            KIND##_MESSAGE(!dm_err_.empty(), #expr " failed without a message (dragon_getlasterrstr is empty)"); \
    } while (0)
#define DM_CHECK_RC(expr, expected) DM_RC_CHECK_IMPL_(CHECK, expr, expected)
#define DM_REQUIRE_RC(expr, expected) DM_RC_CHECK_IMPL_(REQUIRE, expr, expected)
#define DM_CHECK_OK(expr) DM_CHECK_RC(expr, DRAGON_SUCCESS)
#define DM_REQUIRE_OK(expr) DM_REQUIRE_RC(expr, DRAGON_SUCCESS)

// pool_create must fail with `expected`. Should it succeed, the pool is destroyed at
// once (the check still fails), so a wrongly accepted name leaves nothing behind.
#define DM_CHECK_CREATE_FAILS(name, bytes, attr, expected)                                                    \
    do {                                                                                                      \
        dragonMemoryPoolDescr_t dm_pool_{};                                                                   \
        const std::string dm_name_ = (name);                                                                  \
        const dragonError_t dm_rc_ = dragon_memory_pool_create(&dm_pool_, (bytes), dm_name_.c_str(), 1, (attr)); \
        const std::string dm_err_ = dm_rc_ != DRAGON_SUCCESS ? ::dmtest::last_error() : std::string();        \
        if (dm_rc_ == DRAGON_SUCCESS) (void)dragon_memory_pool_destroy(&dm_pool_);                            \
        CHECK_MESSAGE(dm_rc_ == (expected), "pool_create('" << dm_name_ << "', " << (bytes) << ") returned "     \
                                                             << toString(dm_rc_) << "; last error: '" << dm_err_ \
                                                             << "'");                                        \
        if (dm_rc_ == (expected)) CHECK_MESSAGE(!dm_err_.empty(), "pool_create failed without a message");  \
    } while (0)

// `haystack` (a std::string) contains `needle`.
#define DM_CHECK_CONTAINS(haystack, needle)                                                                   \
    do {                                                                                                      \
        const std::string dm_hay_ = (haystack);                                                               \
        const std::string dm_needle_ = (needle);                                                              \
        CHECK_MESSAGE(dm_hay_.find(dm_needle_) != std::string::npos,                                          \
                      "'" << dm_hay_ << "' does not contain '" << dm_needle_ << "'");                         \
    } while (0)

// Runs `stmt`, which must throw dragonmem::Error with code `expected_code`; binds the
// caught error's message to the std::string named `msg_var` for further checks.
#define DM_CHECK_THROWS_CODE(stmt, expected_code, msg_var)                                                   \
    std::string msg_var;                                                                                      \
    do {                                                                                                      \
        bool dm_thrown_ = false;                                                                              \
        try {                                                                                                 \
            stmt;                                                                                             \
        } catch (const dragonmem::Error& dm_e_) {                                                             \
            dm_thrown_ = true;                                                                                \
            msg_var = dm_e_.what();                                                                           \
            CHECK_MESSAGE(dm_e_.code() == (expected_code),                                                    \
                          #stmt " threw " << toString(dm_e_.code()) << ": " << dm_e_.what());                 \
            CHECK_MESSAGE(!msg_var.empty(), #stmt " threw an Error with an empty message");                   \
        } catch (const std::exception& dm_e_) {                                                               \
            dm_thrown_ = true;                                                                                \
            FAIL_CHECK(#stmt " threw a non-dragonmem exception: " << dm_e_.what());                           \
        }                                                                                                     \
        CHECK_MESSAGE(dm_thrown_, #stmt " did not throw");                                                    \
    } while (0)

namespace dmtest {

// A pool created with the C API under a unique name; destroyed (if still live) and its
// shm objects unlinked at scope exit, whatever happened in between.
class TestPool {
public:
    explicit TestPool(std::size_t bytes, const dragonMemoryPoolAttr_t* attr = nullptr, dragonM_UID_t m_uid = 7,
                      std::size_t pad_name_to = 0)
        : guard_(pad_name_to > 0 ? padded_pool_name(pad_name_to) : unique_pool_name()) {
        const dragonError_t rc = dragon_memory_pool_create(&descr_, bytes, guard_.name().c_str(), m_uid, attr);
        const std::string err = rc != DRAGON_SUCCESS ? last_error() : std::string();
        REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "pool_create(" << bytes << ", '" << guard_.name() << "') returned "
                                                               << toString(rc) << ": " << err);
        live_ = true;
    }
    TestPool(const TestPool&) = delete;
    TestPool& operator=(const TestPool&) = delete;
    ~TestPool() {
        if (live_) (void)dragon_memory_pool_destroy(&descr_);
    }

    dragonMemoryPoolDescr_t* pd() { return &descr_; }
    const std::string& name() const { return guard_.name(); }
    // Destroys through the fixture's descriptor; the fixture will not destroy again.
    dragonError_t destroy() {
        live_ = false;
        return dragon_memory_pool_destroy(&descr_);
    }
    void forget() { live_ = false; }  // someone else destroyed it

private:
    ShmGuard guard_;
    dragonMemoryPoolDescr_t descr_{};
    bool live_ = false;
};

// A C++ pool with a unique name; destroyed (if still usable) and its shm objects
// unlinked at scope exit, whatever happened in between.
class ScopedPool {
public:
    explicit ScopedPool(std::size_t bytes, dragonmem::PoolOptions options = {}, std::string_view suffix = "");
    ~ScopedPool();
    ScopedPool(const ScopedPool&) = delete;
    ScopedPool& operator=(const ScopedPool&) = delete;
    dragonmem::Pool& pool() { return pool_; }
    const std::string& name() const { return guard_.name(); }

private:
    ShmGuard guard_;
    dragonmem::Pool pool_;
};

}  // namespace dmtest
