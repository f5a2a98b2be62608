// The lock-wait limit: how long a call may wait for a pool lock that another thread
// holds, for calls whose own deadline (if any) is later. A live holder is never robbed
// (robust_lock.hpp), so without a bound a stopped holder (SIGSTOP, a debugger) stalls
// every caller; with one they fail with DRAGON_TIMEOUT naming the holder. Unlimited by
// default, as the C API promises; the dragonmem command sets a few seconds.
//
// A per-thread setting, when made, overrides the process-wide one. Both are read only
// when a lock turns out to be held, never on the uncontended path.
#pragma once

#include <dragon/return_codes.h>

#include <cstdint>
#include <ctime>

namespace dragonmem::detail {

inline constexpr std::int64_t k_no_lock_wait_limit = -1;  // wait as long as it takes
inline constexpr std::int64_t k_inherit_lock_wait_limit = -2;  // a thread's "use the process's"

// The limit in force for the calling thread, in ns; k_no_lock_wait_limit for none.
std::int64_t lock_wait_limit_ns() noexcept;
void set_process_lock_wait_limit_ns(std::int64_t limit_ns) noexcept;
std::int64_t process_lock_wait_limit_ns() noexcept;
// Sets this thread's limit (or k_inherit_lock_wait_limit) and returns the previous one.
std::int64_t exchange_thread_lock_wait_limit_ns(std::int64_t limit_ns) noexcept;

// A limit given as a timespec (the C API): nullptr is no limit; a negative or
// non-normalised value is INVALID_ARGUMENT naming it; one beyond what 64-bit
// nanoseconds hold (~292 years) is no limit.
dragonError_t lock_wait_limit_from_timespec(const timespec* limit, const char* op, std::int64_t& out_ns);

}  // namespace dragonmem::detail
