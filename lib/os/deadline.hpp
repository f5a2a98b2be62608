// Deadlines: absolute CLOCK_MONOTONIC times, for every bounded wait in the library (a
// blocking allocation's timeout, the lock-wait limit). Arithmetic saturates instead of
// overflowing: a timeout too long for the clock means forever.
#pragma once

#include <cstdint>
#include <ctime>

namespace dragonmem::detail {

timespec now_monotonic() noexcept;
// `relative` (a valid timespec) from now. Saturates: a deadline beyond what time_t holds
// is the latest time_t, which never passes (a {INT64_MAX, 0} timeout means forever).
timespec deadline_after(const timespec& relative) noexcept;
timespec deadline_after_ns(std::int64_t relative_ns) noexcept;
bool deadline_passed(const timespec& deadline) noexcept;
constexpr bool earlier(const timespec& a, const timespec& b) noexcept {
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}
// b - a in ns, clamped to [0, INT64_MAX].
std::int64_t ns_between(const timespec& a, const timespec& b) noexcept;

}  // namespace dragonmem::detail
