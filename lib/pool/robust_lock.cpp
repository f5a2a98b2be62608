// Owner-recording lock with dead-owner takeover (see robust_lock.hpp).
#include "pool/robust_lock.hpp"

#include "pool/fork_safety.hpp"
#include "api/handle_table.hpp"  // cpu_relax
#include "pool/lock_wait_limit.hpp"
#include "os/waiter.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace dragonmem::detail {

namespace {

constexpr int k_spins_before_sleep = 256;
// How often a sleeper wakes to check that the owner is alive (and its deadline). Tests
// lengthen it so that a lost wake-up shows as a stall instead of a 2 ms hiccup.
std::atomic<long> g_owner_check_ns{2'000'000};
constexpr std::int64_t k_min_lock_wait_ns = 10'000'000;  // a bounded wait for a held lock lasts at least this

// Reads /proc/<tid>/<file> into `buffer` (NUL-terminated, at most `size` - 1 bytes):
// one read, no allocation (it runs in lock waits and thread-identity set-up).
bool read_proc_file(std::uint32_t tid, const char* file, char* buffer, std::size_t size) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%u/%s", tid, file);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t got = ::read(fd, buffer, size - 1);
    ::close(fd);
    if (got <= 0) return false;
    buffer[got] = '\0';
    return true;
}

// Start time (clock ticks since boot, field 22 of /proc/<tid>/stat) and state of a task.
bool read_task_stat(std::uint32_t tid, char& state, std::uint64_t& start_ticks) noexcept {
    char buffer[1024];
    if (!read_proc_file(tid, "stat", buffer, sizeof buffer)) return false;
    const char* after_name = std::strrchr(buffer, ')');  // the name may contain spaces
    if (after_name == nullptr) return false;
    const char* cursor = after_name + 2;
    state = *cursor;
    for (int field = 3; field < 22 && cursor != nullptr; ++field) {
        cursor = std::strchr(cursor, ' ');
        if (cursor != nullptr) ++cursor;
    }
    if (cursor == nullptr) return false;
    start_ticks = std::strtoull(cursor, nullptr, 10);
    return true;
}

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
        // next call tries again. Such a word cannot own a cache entry (pool_cache.cpp).
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

long futex_wait(OwnerLock& lock, std::uint64_t expected, const timespec* relative) noexcept {
    return ::syscall(SYS_futex, futex_half(lock), FUTEX_WAIT, static_cast<std::uint32_t>(expected), relative, nullptr,
                     0);
}

void read_status_line(const char* text, const char* key, char* out, std::size_t capacity) noexcept {
    const char* line = std::strstr(text, key);
    if (line == nullptr || capacity == 0) return;
    line += std::strlen(key);
    while (*line == ' ' || *line == '\t') ++line;
    std::size_t n = 0;
    while (line[n] != '\0' && line[n] != '\n' && n + 1 < capacity) {
        out[n] = line[n];
        ++n;
    }
    out[n] = '\0';
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
        long rc = futex_wait(lock, seen, &nap);
        if (rc == -1 && errno == ETIMEDOUT && owner_word_is_dead(lock_owner_of(seen))) {
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

bool lock_owner_is_dead(std::uint32_t tid, std::uint32_t stamp) noexcept {
    // tid 0 or one beyond pid_t is no thread: a garbage word must not wedge the pool.
    if (tid == 0 || tid > static_cast<std::uint32_t>(INT_MAX)) return true;
    char state = 0;
    std::uint64_t start_ticks = 0;
    if (read_task_stat(tid, state, start_ticks))
        return state == 'Z' || state == 'X' || static_cast<std::uint32_t>(start_ticks) != stamp;
    // No /proc: only existence can be checked.
    return ::kill(static_cast<pid_t>(tid), 0) == -1 && errno == ESRCH;
}

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
    return word == 0 || lock_owner_is_dead(static_cast<std::uint32_t>(word), static_cast<std::uint32_t>(word >> 32));
}

OwnerReport report_owner(std::uint64_t word) noexcept {
    OwnerReport report;
    report.tid = static_cast<std::uint32_t>(lock_owner_of(word));
    report.alive = !owner_word_is_dead(lock_owner_of(word));
    if (report.tid == 0 || report.tid > static_cast<std::uint32_t>(INT_MAX)) return report;
    char text[2048];
    if (!read_proc_file(report.tid, "status", text, sizeof text)) return report;
    read_status_line(text, "Name:", report.name, sizeof report.name);
    read_status_line(text, "\nState:", report.state, sizeof report.state);
    char tgid[16] = {};
    read_status_line(text, "\nTgid:", tgid, sizeof tgid);
    report.pid = static_cast<std::uint32_t>(std::strtoul(tgid, nullptr, 10));
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

void owner_lock_wake_waiters(OwnerLock& lock) noexcept {
    ::syscall(SYS_futex, futex_half(lock), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace dragonmem::detail
