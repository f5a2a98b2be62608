// Owner-recording lock with dead-owner takeover (see robust_lock.hpp).
#include "robust_lock.hpp"

#include "fork_safety.hpp"
#include "handle_table.hpp"  // cpu_relax

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace dragonmem::detail {

namespace {

constexpr int k_spins_before_sleep = 256;
constexpr long k_owner_check_ns = 2'000'000;  // how often a sleeper checks the owner is alive

// Start time (clock ticks since boot, field 22 of /proc/<tid>/stat) and state of a task.
bool read_task_stat(std::uint32_t tid, char& state, std::uint64_t& start_ticks) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%u/stat", tid);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buffer[1024];
    ssize_t got = ::read(fd, buffer, sizeof buffer - 1);
    ::close(fd);
    if (got <= 0) return false;
    buffer[got] = '\0';
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

std::uint32_t* futex_half(OwnerLock& lock) noexcept {
    // The tid half: the low 32 bits, first in memory on a little-endian machine.
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the lock's futex half assumes little-endian");
    return reinterpret_cast<std::uint32_t*>(&lock.word);
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

bool owner_word_is_dead(std::uint64_t word) noexcept {
    return word == 0 || lock_owner_is_dead(static_cast<std::uint32_t>(word), static_cast<std::uint32_t>(word >> 32));
}

void owner_lock_init(OwnerLock& lock) noexcept {
    lock.word.store(0, std::memory_order_relaxed);
    lock.sleepers.store(0, std::memory_order_relaxed);
    lock.reserved = 0;
}

LockOutcome owner_lock_acquire(OwnerLock& lock) noexcept {
    const std::uint64_t mine = my_word();
    std::uint64_t seen = 0;
    if (lock.word.compare_exchange_strong(seen, mine, std::memory_order_acquire, std::memory_order_relaxed))
        return LockOutcome::acquired;
    for (;;) {
        for (int spin = 0; spin < k_spins_before_sleep; ++spin) {
            seen = lock.word.load(std::memory_order_relaxed);
            if (seen == 0 &&
                lock.word.compare_exchange_weak(seen, mine, std::memory_order_acquire, std::memory_order_relaxed))
                return LockOutcome::acquired;
            cpu_relax();
        }
        seen = lock.word.load(std::memory_order_relaxed);
        if (seen == 0) continue;
        // Announce a sleeper (a full fence: see the release side), then sleep while the
        // same owner holds it, waking now and then to check the owner is alive.
        lock.sleepers.exchange(1, std::memory_order_seq_cst);
        timespec check_after{0, k_owner_check_ns};
        long rc = ::syscall(SYS_futex, futex_half(lock), FUTEX_WAIT, static_cast<std::uint32_t>(seen), &check_after,
                            nullptr, 0);
        if (rc == -1 && errno == ETIMEDOUT) {
            auto tid = static_cast<std::uint32_t>(seen);
            auto stamp = static_cast<std::uint32_t>(seen >> 32);
            if (lock_owner_is_dead(tid, stamp) &&
                lock.word.compare_exchange_strong(seen, mine, std::memory_order_acquire, std::memory_order_relaxed))
                return LockOutcome::acquired_owner_dead;
        }
    }
}

bool owner_lock_try_acquire(OwnerLock& lock) noexcept {
    std::uint64_t seen = 0;
    return lock.word.compare_exchange_strong(seen, my_word(), std::memory_order_acquire, std::memory_order_relaxed);
}

void owner_lock_release(OwnerLock& lock) noexcept {
    // seq_cst exchange then load: pairs with the sleeper's exchange so that either we see
    // its flag or it sees the lock free (Dekker); no wake-up is lost.
    lock.word.exchange(0, std::memory_order_seq_cst);
    if (lock.sleepers.load(std::memory_order_seq_cst) != 0) {
        lock.sleepers.store(0, std::memory_order_relaxed);
        ::syscall(SYS_futex, futex_half(lock), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
    }
}

}  // namespace dragonmem::detail
