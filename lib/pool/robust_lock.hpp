// The pool lock: a 64-bit word in shared memory holding the owner thread's id and start
// time, 0 when free. Acquire is one CAS and release one exchange (no system call unless
// someone sleeps), which is what keeps an alloc+free pair in the tens of nanoseconds;
// a pthread robust mutex costs three times as much here.
//
// Sleeping: a waiter sets the "waiters" bit (bit 31, in the futex half) in the owner
// word it saw, with a CAS, and sleeps on the futex while the word still holds exactly
// that. The bit belongs to that one ownership: the release that ends it (one exchange)
// sees it and wakes everybody, and a newer ownership starts without it, so a sleeper can
// never be left asleep by a release that cleared a flag meant for an older owner. A
// waiter that dies leaves at most the bit in the word, which costs that owner's release
// one futex wake.
//
// Robustness: a waiter sleeps with a short timeout and, on each timeout, asks /proc
// whether the owner thread still exists (a zombie or a thread id reused by a newer
// thread, told apart by start time, counts as dead). If the owner is dead, the waiter
// takes the lock over with a CAS and is told so (acquired_owner_dead): it must repair
// the guarded state before using it. A live owner is never robbed, however long it holds
// the lock (stopped by SIGSTOP or a debugger, say): waiters give up instead, at their
// deadline or at the lock-wait limit (lock_wait_limit.hpp), and are told who holds it.
//
// Limit: processes sharing a pool must share a PID namespace (thread ids are compared).
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace dragonmem::detail {

struct OwnerLock {
    std::atomic<std::uint64_t> word;  // (start stamp << 32) | waiters bit | tid; low half is the futex
    std::uint32_t reserved[2];        // was a separate "sleepers" flag (layout version 2)
};
static_assert(sizeof(OwnerLock) == 16);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// Bit 31 of the owner word: some thread sleeps waiting for this ownership to end. Thread
// ids stay below it (pid_max is at most 2^22).
inline constexpr std::uint64_t k_lock_waiters_bit = std::uint64_t{1} << 31;
// The owner word without the waiters bit: what the owner wrote.
constexpr std::uint64_t lock_owner_of(std::uint64_t word) noexcept { return word & ~k_lock_waiters_bit; }

enum class LockOutcome {
    acquired,             // normal case
    acquired_owner_dead,  // the previous owner died holding it: repair first
    timed_out,            // the deadline or the lock-wait limit passed; see LockWait's results
    gave_up,              // *give_up became non-zero while waiting (the pool was destroyed)
};

// How long to wait for a held lock, and what the wait saw.
struct LockWait {
    // In: the caller's own deadline (CLOCK_MONOTONIC, absolute), nullptr for none. The
    // lock-wait limit (lock_wait_limit.hpp), counted from when waiting starts, bounds
    // the wait too; the earlier of the two ends it.
    const timespec* deadline = nullptr;
    // In: stop waiting (gave_up) once this word is non-zero; nullptr: never.
    const std::atomic<std::uint32_t>* give_up = nullptr;
    // Out, on timed_out: the owner word that held the lock last, how long this call
    // waited, and whether the lock-wait limit (not the caller's deadline) ended it.
    std::uint64_t holder = 0;
    std::int64_t waited_ns = 0;
    bool ended_by_limit = false;
};

void owner_lock_init(OwnerLock& lock) noexcept;
LockOutcome owner_lock_acquire(OwnerLock& lock, LockWait& wait) noexcept;
inline LockOutcome owner_lock_acquire(OwnerLock& lock) noexcept {
    LockWait forever;
    return owner_lock_acquire(lock, forever);
}
void owner_lock_release(OwnerLock& lock) noexcept;
// One attempt, never waits: true if the lock was free and is now ours.
bool owner_lock_try_acquire(OwnerLock& lock) noexcept;
// Wakes every thread asleep on the lock (destroy --force, which does not take it, uses
// this so waiters look at `give_up` at once).
void owner_lock_wake_waiters(OwnerLock& lock) noexcept;

// For tests: is the thread (tid, start stamp) gone?
bool lock_owner_is_dead(std::uint32_t tid, std::uint32_t stamp) noexcept;
// For tests: sets how often a sleeper wakes to check the owner (default 2 ms); returns
// the previous interval. A long one turns a lost wake-up into a visible stall.
long set_owner_check_interval_for_tests(long interval_ns) noexcept;

// The calling thread's owner word, (start stamp << 32) | tid: what it writes into a lock
// it holds, and into a thread-cache entry it owns (thread_cache.hpp).
std::uint64_t current_owner_word() noexcept;
// The calling process's word, (start stamp << 32) | pid: the owner a process-local pool
// records. The stamp is the start time of the process (its main task), so the word
// outlives the thread that took it; owner_word_is_dead() judges it. Stamp 0 when /proc
// could not be read.
std::uint64_t current_process_word() noexcept;
// Whether the thread an owner word names is gone; 0 (no owner) counts as gone.
bool owner_word_is_dead(std::uint64_t word) noexcept;

// What /proc says about the thread an owner word names, for error messages.
struct OwnerReport {
    std::uint32_t tid = 0;
    std::uint32_t pid = 0;      // its process (thread group); 0 when unknown
    bool alive = false;         // the thread exists and is the one the word names
    char state[32] = {};        // /proc's text, e.g. "T (stopped)"; empty when unknown
    char name[20] = {};         // the thread's command name; empty when unknown
};
OwnerReport report_owner(std::uint64_t word) noexcept;

}  // namespace dragonmem::detail
