// The pool lock: a 64-bit word in shared memory holding the owner thread's id and start
// time, 0 when free. Acquire is one CAS and release one exchange (no system call unless
// someone sleeps), which is what keeps an alloc+free pair in the tens of nanoseconds;
// a pthread robust mutex costs three times as much here.
//
// Robustness: a waiter that cannot get the lock sleeps on a futex with a short timeout
// and, on each timeout, asks /proc whether the owner thread still exists (a zombie or a
// thread id reused by a newer thread, told apart by start time, counts as dead). If the
// owner is dead, the waiter takes the lock over with a CAS and is told so
// (acquired_owner_dead): it must repair the guarded state before using it. A waiter that
// dies leaves at most a stale "sleepers" flag, which costs the next release one futex
// wake and then clears itself.
//
// Limit: processes sharing a pool must share a PID namespace (thread ids are compared).
#pragma once

#include <atomic>
#include <cstdint>

namespace dragonmem::detail {

struct OwnerLock {
    std::atomic<std::uint64_t> word;       // (start stamp << 32) | tid; low half is the futex
    std::atomic<std::uint32_t> sleepers;   // a waiter may be asleep: release must wake
    std::uint32_t reserved;
};
static_assert(sizeof(OwnerLock) == 16);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

enum class LockOutcome {
    acquired,             // normal case
    acquired_owner_dead,  // the previous owner died holding it: repair first
};

void owner_lock_init(OwnerLock& lock) noexcept;
LockOutcome owner_lock_acquire(OwnerLock& lock) noexcept;
void owner_lock_release(OwnerLock& lock) noexcept;
// One attempt, never waits: true if the lock was free and is now ours.
bool owner_lock_try_acquire(OwnerLock& lock) noexcept;

// For tests: is the thread (tid, start stamp) gone?
bool lock_owner_is_dead(std::uint32_t tid, std::uint32_t stamp) noexcept;

// The calling thread's owner word, (start stamp << 32) | tid: what it writes into a lock
// it holds, and into a thread-cache entry it owns (thread_cache.hpp).
std::uint64_t current_owner_word() noexcept;
// Whether the thread an owner word names is gone; 0 (no owner) counts as gone.
bool owner_word_is_dead(std::uint64_t word) noexcept;

}  // namespace dragonmem::detail
