// Owner-recording lock with dead-owner takeover (see robust_lock.hpp).
#include "pool/robust_lock.hpp"

#include "os/cpu_relax.hpp"
#include "os/deadline.hpp"
#include "os/futex.hpp"
#include "os/proc.hpp"
#include "pool/fork_safety.hpp"
#include "pool/lock_wait_limit.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <ctime>

namespace dragonmem::detail {

namespace {

constexpr int k_spins_before_sleep = 256;
// How long a waiter spins (in rounds of k_spins_before_sleep, reading the clock between
// them) before it sleeps. Longer than the pool's longer critical sections, such as a
// thread-cache refill that backs fresh heap pages (about 10-20 us for 64 KiB in a VM),
// and far shorter than the scheduler's slices. A sleep costs more than the wait it
// saves: the sleeper is woken onto a CPU the scheduler picks, and two threads of a
// process woken onto one CPU ran at half speed until the balancer moved one away (a
// driver of the mixed benchmark's loop, 8 reps of two new threads: 560-880 voluntary
// context switches with the 256-spin wait alone, 300-450 with this, its own barrier
// waits included; docs/design.md §4.3).
constexpr std::int64_t k_spin_before_sleep_ns = 50'000;
// How often a sleeper wakes to check that the owner is alive (and its deadline). Tests
// lengthen it so that a lost wake-up shows as a stall instead of a 2 ms hiccup.
std::atomic<long> g_owner_check_ns{2'000'000};
constexpr std::int64_t k_min_lock_wait_ns = 10'000'000;  // a bounded wait for a held lock lasts at least this

struct ThreadIdentity {
    std::uint64_t word = 0;  // what this thread writes into a lock it holds
};

thread_local ThreadIdentity t_identity;  // default TLS model: lib/meson.build

std::uint64_t compute_identity() noexcept {
    auto tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
    char state = 0;
    std::uint64_t start_ticks = 0;
    std::uint32_t stamp = read_task_stat(tid, state, start_ticks) ? static_cast<std::uint32_t>(start_ticks) : 0;
    return (static_cast<std::uint64_t>(stamp) << 32) | tid;
}

inline std::uint64_t my_word() noexcept {
    std::uint64_t word = t_identity.word;
    if (__builtin_expect(word == 0, 0)) {
        word = compute_identity();
        // Stamp 0: /proc could not be read (out of fds?); do not remember that, so the
        // next call tries again. Such a word cannot own a cache entry (pool_caches.cpp).
        if ((word >> 32) != 0) t_identity.word = word;
    }
    return word;
}

// The futex half of the owner word: its low 32 bits (tid and waiters bit), first in
// memory on a little-endian machine. Only the kernel reads through this address (futex
// compares it atomically); this code reads the word only through the atomic.
std::uint32_t* futex_half(OwnerLock& lock) noexcept {
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the lock's futex half assumes little-endian");
    return reinterpret_cast<std::uint32_t*>(&lock.word);
}

// When a wait for a held lock must end: the caller's deadline or the lock-wait limit,
// whichever comes first, but not before k_min_lock_wait_ns from now (a holder that is
// merely preempted must not turn a short timeout into a lock failure).
struct WaitEnd {
    bool bounded = false;
    bool by_limit = false;
    timespec at{};
};

WaitEnd wait_end(const LockWait& wait) noexcept {
    WaitEnd end;
    if (wait.deadline != nullptr) {
        end.bounded = true;
        end.at = *wait.deadline;
    }
    if (std::int64_t limit_ns = lock_wait_limit_ns(); limit_ns >= 0) {
        timespec by_limit = deadline_after_ns(limit_ns);
        if (!end.bounded || earlier(by_limit, end.at)) {
            end.bounded = true;
            end.by_limit = true;
            end.at = by_limit;
        }
    }
    if (end.bounded) {
        timespec floor = deadline_after_ns(k_min_lock_wait_ns);
        if (earlier(end.at, floor)) end.at = floor;
    }
    return end;
}

// Everything after a failed first CAS: spin, then sleep in short naps, checking that the
// owner lives, that the wait may go on, and that the pool still exists.
LockOutcome acquire_contended(OwnerLock& lock, LockWait& wait, std::uint64_t mine) noexcept {
    bool started = false;
    timespec started_at{};
    WaitEnd end;
    for (;;) {
        std::uint64_t seen = 0;
        for (int spin = 0; spin < k_spins_before_sleep; ++spin) {
            seen = lock.word.load(std::memory_order_relaxed);
            if (seen == 0 &&
                lock.word.compare_exchange_weak(seen, mine, std::memory_order_acquire, std::memory_order_relaxed))
                return LockOutcome::acquired;
            cpu_relax();
        }
        seen = lock.word.load(std::memory_order_relaxed);
        if (seen == 0) continue;
        if (wait.give_up != nullptr && wait.give_up->load(std::memory_order_acquire) != 0) return LockOutcome::gave_up;
        // The clock is read only once the lock has proved busy for a while.
        timespec now = now_monotonic();
        if (!started) {
            started = true;
            started_at = now;
            end = wait_end(wait);
        }
        if (end.bounded && !earlier(now, end.at)) {
            wait.holder = lock_owner_of(seen);
            wait.waited_ns = ns_between(started_at, now);
            wait.ended_by_limit = end.by_limit;
            return LockOutcome::timed_out;
        }
        if (ns_between(started_at, now) < k_spin_before_sleep_ns) continue;  // spin on
        // Announce a sleeper on this very ownership (see robust_lock.hpp); if the word
        // changed meanwhile, look again instead.
        if ((seen & k_lock_waiters_bit) == 0) {
            std::uint64_t announced = seen | k_lock_waiters_bit;
            if (!lock.word.compare_exchange_strong(seen, announced, std::memory_order_relaxed,
                                                   std::memory_order_relaxed))
                continue;
            seen = announced;
        }
        // Sleep while the same owner holds it, waking now and then to check the owner is
        // alive and the deadline.
        std::int64_t nap_ns = g_owner_check_ns.load(std::memory_order_relaxed);
        if (end.bounded) nap_ns = std::min(nap_ns, std::max<std::int64_t>(ns_between(now, end.at), 1));
        timespec nap{static_cast<time_t>(nap_ns / 1000000000L), static_cast<long>(nap_ns % 1000000000L)};
        bool timed_out = !futex_wait_for(futex_half(lock), static_cast<std::uint32_t>(seen), nap);
        if (timed_out && owner_word_is_dead(lock_owner_of(seen))) {
            // Keep the waiters bit: others may sleep on this word, and our release must
            // wake them.
            if (lock.word.compare_exchange_strong(seen, mine | (seen & k_lock_waiters_bit), std::memory_order_acquire,
                                                  std::memory_order_relaxed))
                return LockOutcome::acquired_owner_dead;
        }
    }
}

}  // namespace

// A forked child's thread has another id and start time (fork_safety.cpp calls this).
void owner_identity_forget_after_fork() noexcept { t_identity.word = 0; }

std::uint64_t current_owner_word() noexcept { return my_word(); }

std::uint64_t current_process_word() noexcept {
    auto pid = static_cast<std::uint32_t>(::getpid());
    char state = 0;
    std::uint64_t start_ticks = 0;
    std::uint32_t stamp = read_task_stat(pid, state, start_ticks) ? static_cast<std::uint32_t>(start_ticks) : 0;
    return (static_cast<std::uint64_t>(stamp) << 32) | pid;
}

long set_owner_check_interval_for_tests(long interval_ns) noexcept {
    return g_owner_check_ns.exchange(interval_ns, std::memory_order_relaxed);
}

bool owner_word_is_dead(std::uint64_t word) noexcept {
    return word == 0 || task_is_gone(static_cast<std::uint32_t>(word), static_cast<std::uint32_t>(word >> 32));
}

OwnerReport report_owner(std::uint64_t word) noexcept {
    OwnerReport report;
    report.tid = static_cast<std::uint32_t>(lock_owner_of(word));
    report.alive = !owner_word_is_dead(lock_owner_of(word));
    if (report.tid == 0 || report.tid > static_cast<std::uint32_t>(INT_MAX)) return report;
    TaskStatus status;
    if (!read_task_status(report.tid, status)) return report;
    static_assert(sizeof report.name == sizeof status.name && sizeof report.state == sizeof status.state);
    std::memcpy(report.name, status.name, sizeof report.name);
    std::memcpy(report.state, status.state, sizeof report.state);
    report.pid = status.tgid;
    return report;
}

void owner_lock_init(OwnerLock& lock) noexcept {
    lock.word.store(0, std::memory_order_relaxed);
    lock.reserved[0] = 0;
    lock.reserved[1] = 0;
}

LockOutcome owner_lock_acquire(OwnerLock& lock, LockWait& wait) noexcept {
    const std::uint64_t mine = my_word();
    std::uint64_t seen = 0;
    if (lock.word.compare_exchange_strong(seen, mine, std::memory_order_acquire, std::memory_order_relaxed))
        return LockOutcome::acquired;
    return acquire_contended(lock, wait, mine);
}

bool owner_lock_try_acquire(OwnerLock& lock) noexcept {
    std::uint64_t seen = 0;
    return lock.word.compare_exchange_strong(seen, my_word(), std::memory_order_acquire, std::memory_order_relaxed);
}

void owner_lock_release(OwnerLock& lock) noexcept {
    // One exchange both frees the lock and tells whether anyone announced a sleep on this
    // ownership: the bit cannot be set after it (a waiter's CAS expects the old word).
    if ((lock.word.exchange(0, std::memory_order_release) & k_lock_waiters_bit) != 0) owner_lock_wake_waiters(lock);
}

void owner_lock_wake_waiters(OwnerLock& lock) noexcept { futex_wake_all(futex_half(lock)); }

}  // namespace dragonmem::detail
