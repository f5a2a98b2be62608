// The library's wait slice (pool/pool_mapping.hpp: how long a blocking allocation sleeps
// before it looks at the pool again, 100 ms), made long for the tests of the wake-up
// itself. A waiter that a free never wakes then sleeps until its own timeout, and the
// tests' bounds (1-5 s) tell it from one the free woke; with 100 ms slices it would find
// the block within 100 ms and pass. Children (dm_child) take it from the environment.
#pragma once

#include "pool/pool_mapping.hpp"

namespace dmtest {

inline constexpr const char* k_wait_slice_env = "DMTEST_WAIT_SLICE_MS";  // read by dm_child
inline constexpr long k_long_wait_slice_ms = 60'000;

// The long slice in this process while it lives.
class LongWaitSlice {
public:
    LongWaitSlice() : previous_(dragonmem::detail::set_wait_slice_for_tests(k_long_wait_slice_ms)) {}
    LongWaitSlice(const LongWaitSlice&) = delete;
    LongWaitSlice& operator=(const LongWaitSlice&) = delete;
    ~LongWaitSlice() { dragonmem::detail::set_wait_slice_for_tests(previous_); }

private:
    long previous_;
};

}  // namespace dmtest
