// Sleeping until memory is freed: a futex on a 32-bit word in shared memory.
//
// Protocol (no lost wake-ups): a waiter reads `seq` while holding the pool lock, sets
// `has_waiters`, unlocks, then sleeps only while `seq` is unchanged. Every free bumps
// `seq` under the lock and, if `has_waiters` was set, clears it and wakes everybody
// after unlocking. A waiter killed while asleep leaves at most a stale `has_waiters`,
// which costs the next free one futex call and then clears itself.
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

// Absolute CLOCK_MONOTONIC deadline `relative` from now.
timespec deadline_after(const timespec& relative);
bool deadline_passed(const timespec& deadline);

}  // namespace dragonmem::detail
