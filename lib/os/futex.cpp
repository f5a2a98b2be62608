// futex(2) wait and wake (futex.hpp).
#include "os/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace dragonmem::detail {

namespace {

long futex(std::uint32_t* word, int op, std::uint32_t value, const timespec* timeout, std::uint32_t bitset) {
    return ::syscall(SYS_futex, word, op, value, timeout, nullptr, bitset);
}

// The kernel gets the word's address; nothing here reads it except through the atomic.
std::uint32_t* address_of(std::atomic<std::uint32_t>* word) { return reinterpret_cast<std::uint32_t*>(word); }

}  // namespace

bool futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* deadline) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: no drift on retries.
    // A saturated deadline is fine: the kernel clamps it to its own "forever".
    long rc = futex(address_of(word), FUTEX_WAIT_BITSET, expected, deadline, FUTEX_BITSET_MATCH_ANY);
    return !(rc == -1 && errno == ETIMEDOUT);
}

bool futex_wait_for(std::uint32_t* word, std::uint32_t expected, const timespec& relative) {
    // FUTEX_WAIT takes a relative timeout.
    long rc = futex(word, FUTEX_WAIT, expected, &relative, 0);
    return !(rc == -1 && errno == ETIMEDOUT);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) { futex(address_of(word), FUTEX_WAKE, INT_MAX, nullptr, 0); }

void futex_wake_all(std::uint32_t* word) { futex(word, FUTEX_WAKE, INT_MAX, nullptr, 0); }

}  // namespace dragonmem::detail
