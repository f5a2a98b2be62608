// What every doctest file of the suite includes: doctest, the C and C++ APIs, the
// support pieces, rc-checking macros that print the library's last error message, and
// a TestPool fixture that always leaves /dev/shm clean.
#pragma once

#include <doctest/doctest.h>

#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include "child_process.hpp"
#include "codec.hpp"
#include "shm_names.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// doctest prints enums as integers; show return codes by name (found through ADL).
inline doctest::String toString(dragonError_t rc) {
    std::string s = std::string(dragon_getrcstr(rc)) + " (" + std::to_string(static_cast<int>(rc)) + ")";
    return doctest::String(s.c_str());
}

namespace dmtest {

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

inline dragonMemoryPoolAttr_t default_attr() {
    dragonMemoryPoolAttr_t attr;
    dragon_memory_attr_init(&attr);
    return attr;
}

}  // namespace dmtest

// Checks `expr` returns `expected`; on a mismatch shows the last error message. When a
// failure is expected, also checks that the failure left a non-empty message.
#define DM_RC_CHECK_IMPL_(KIND, expr, expected)                                                                   \
    do {                                                                                                          \
        const dragonError_t dm_rc_ = (expr);                                                                      \
        const dragonError_t dm_expected_ = (expected);                                                            \
        const std::string dm_err_ = dm_rc_ != DRAGON_SUCCESS ? ::dmtest::last_error() : std::string();            \
        KIND##_MESSAGE(dm_rc_ == dm_expected_, #expr " returned " << toString(dm_rc_) << "; last error: '"         \
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
        : guard_(unique_pool_name(pad_name_to)) {
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

// Everything observable about a pool's occupancy, to assert "the pool is unchanged".
struct PoolState {
    std::uint64_t free_bytes = 0;
    std::vector<std::uint64_t> ids;  // live allocation ids, sorted
    std::vector<std::uint64_t> types;
    std::vector<std::size_t> free_block_counts;  // per block size, smallest first
    std::size_t manifest_entries = 0;

    bool operator==(const PoolState&) const = default;
};

PoolState pool_state(dragonMemoryPoolDescr_t* pool);
std::string describe(const PoolState& state);

std::vector<std::uint64_t> live_ids(const dragonMemoryPoolDescr_t* pool);
std::uint64_t free_bytes(dragonMemoryPoolDescr_t* pool);
std::vector<dragonHeapStatsAllocationItem_t> free_blocks(dragonMemoryPoolDescr_t* pool);
// True when the only free block is one block of `heap_bytes` (the pool is whole).
bool is_one_maximal_block(dragonMemoryPoolDescr_t* pool, std::size_t heap_bytes);

std::vector<std::uint8_t> serialize_pool(const dragonMemoryPoolDescr_t* pool);
std::vector<std::uint8_t> serialize_mem(const dragonMemoryDescr_t* mem);

void* mem_pointer(const dragonMemoryDescr_t* mem);
std::size_t mem_size(const dragonMemoryDescr_t* mem);
std::uint64_t mem_id(dragonMemoryDescr_t* mem);

// doctest finds this through ADL when a PoolState comparison fails.
inline doctest::String toString(const PoolState& s) { return doctest::String(describe(s).c_str()); }

}  // namespace dmtest
