// Deadline arithmetic on CLOCK_MONOTONIC (deadline.hpp).
#include "os/deadline.hpp"

#include <limits>

namespace dragonmem::detail {

namespace {

constexpr long k_ns_per_s = 1000000000L;

}  // namespace

timespec now_monotonic() noexcept {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now;
}

timespec deadline_after(const timespec& relative) noexcept {
    constexpr time_t latest = std::numeric_limits<time_t>::max();
    timespec deadline = now_monotonic();
    // now.tv_sec + relative.tv_sec (+ 1 for the carry) must stay within time_t: the
    // check is written so that nothing in it can overflow.
    if (relative.tv_sec >= latest - deadline.tv_sec) return timespec{latest, k_ns_per_s - 1};
    deadline.tv_sec += relative.tv_sec;
    deadline.tv_nsec += relative.tv_nsec;
    if (deadline.tv_nsec >= k_ns_per_s) {
        deadline.tv_nsec -= k_ns_per_s;
        deadline.tv_sec += 1;
    }
    return deadline;
}

timespec deadline_after_ns(std::int64_t relative_ns) noexcept {
    if (relative_ns < 0) relative_ns = 0;
    return deadline_after(
        timespec{static_cast<time_t>(relative_ns / k_ns_per_s), static_cast<long>(relative_ns % k_ns_per_s)});
}

bool deadline_passed(const timespec& deadline) noexcept { return !earlier(now_monotonic(), deadline); }

std::int64_t ns_between(const timespec& a, const timespec& b) noexcept {
    if (!earlier(a, b)) return 0;
    constexpr std::int64_t max_ns = std::numeric_limits<std::int64_t>::max();
    // b > a: the difference in seconds is non-negative; it can still exceed int64 ns.
    auto seconds = static_cast<std::uint64_t>(b.tv_sec) - static_cast<std::uint64_t>(a.tv_sec);
    if (seconds > static_cast<std::uint64_t>(max_ns / k_ns_per_s) - 1) return max_ns;
    return static_cast<std::int64_t>(seconds) * k_ns_per_s + (b.tv_nsec - a.tv_nsec);
}

}  // namespace dragonmem::detail
