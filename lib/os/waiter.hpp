// Sleeping until memory is freed: a futex on a 32-bit word in shared memory.
//
// Protocol (no lost wake-ups): a waiter reads `seq` while holding the pool lock, sets
// `has_waiters`, unlocks, then sleeps only while `seq` is unchanged. Every free bumps
// `seq` under the lock and, if `has_waiters` was set, clears it (both under the lock, so
// no announcement can slip between the test and the clear) and wakes everybody. The wake
// comes after unlocking on the common paths (free, statistics, detach), so that woken
// sleepers do not find the lock still held; the rare paths (a repair, the sweep of dead
// threads' caches, the take-back inside a failing alloc) wake while still holding it,
// which costs the sleepers a short wait for the lock and nothing else: a woken sleeper
// always re-checks under the lock. A waiter killed while asleep leaves at most a stale
// `has_waiters`, which costs the next free one futex call and then clears itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace dragonmem::detail {

// Sleeps while *word == expected, until woken or `deadline` (CLOCK_MONOTONIC, nullptr:
// forever). Returns false when the deadline passed.
bool futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* deadline);

// Wakes every process sleeping on *word.
void futex_wake_all(std::atomic<std::uint32_t>* word);

// ---- deadlines: absolute CLOCK_MONOTONIC times

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
