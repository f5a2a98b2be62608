// futex(2) on 32-bit words in shared memory (never FUTEX_PRIVATE: other processes sleep
// and wake on the same words). The only file that makes futex system calls.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace dragonmem::detail {

// Sleeps while *word == expected, until woken or `deadline` (absolute CLOCK_MONOTONIC,
// os/deadline.hpp; nullptr: forever). Returns false when the deadline passed; true when
// woken, when the word had changed or on a signal: the caller looks again.
bool futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* deadline);
// The same for at most `relative`, on a word the caller reads through a wider atomic
// (the pool lock's futex half, robust_lock.cpp).
bool futex_wait_for(std::uint32_t* word, std::uint32_t expected, const timespec& relative);

// Wakes every thread, of any process, sleeping on *word.
void futex_wake_all(std::atomic<std::uint32_t>* word);
void futex_wake_all(std::uint32_t* word);

}  // namespace dragonmem::detail
