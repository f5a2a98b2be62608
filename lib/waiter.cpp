// futex(2) wait/wake on shared (not process-private) words.
#include "waiter.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace dragonmem::detail {

namespace {

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout,
           std::uint32_t bitset) {
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, bitset);
}

timespec now_monotonic() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now;
}

}  // namespace

timespec deadline_after(const timespec& relative) {
    timespec deadline = now_monotonic();
    deadline.tv_sec += relative.tv_sec;
    deadline.tv_nsec += relative.tv_nsec;
    while (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_nsec -= 1000000000L;
        deadline.tv_sec += 1;
    }
    return deadline;
}

bool deadline_passed(const timespec& deadline) {
    timespec now = now_monotonic();
    return now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

bool futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* deadline) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: no drift on retries.
    long rc = futex(word, FUTEX_WAIT_BITSET, expected, deadline, FUTEX_BITSET_MATCH_ANY);
    if (rc == -1 && errno == ETIMEDOUT) return false;
    return true;  // woken, value changed (EAGAIN) or interrupted (EINTR): the caller re-checks
}

void futex_wake_all(std::atomic<std::uint32_t>* word) { futex(word, FUTEX_WAKE, INT_MAX, nullptr, 0); }

}  // namespace dragonmem::detail
