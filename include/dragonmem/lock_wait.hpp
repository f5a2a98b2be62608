// How long a call waits for a pool's lock while another thread or process holds it.
//
// A pool's lock is held for microseconds by each operation. A holder that dies is taken
// over at once; a holder that is alive but not running (stopped by SIGSTOP or a debugger)
// is never robbed, so every call that needs the lock waits for it. Calls with a timeout
// (alloc_blocking, modify_size) wait at most that long; the lock-wait limit bounds every
// wait for the lock, those included. When the wait ends, the call fails with
// DRAGON_TIMEOUT and a message naming the holder (thread, process, state from /proc, e.g.
// "T (stopped)"). The default is no limit: calls without a timeout wait as long as it
// takes. A bounded wait lasts at least 10 ms, so that a holder merely preempted does not
// fail a call.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>

#include <chrono>
#include <cstdint>
#include <optional>

namespace dragonmem {

// For the whole process. nullopt: no limit. A negative limit is DRAGON_INVALID_ARGUMENT.
void set_lock_wait_limit(std::optional<std::chrono::nanoseconds> limit);
std::optional<std::chrono::nanoseconds> lock_wait_limit();

// For the calling thread only, while this object lives (it overrides the process-wide
// limit, and restores what the thread had before when destroyed). Destroy it in the
// thread that made it.
class ThreadLockWaitLimit {
public:
    explicit ThreadLockWaitLimit(std::optional<std::chrono::nanoseconds> limit);
    ~ThreadLockWaitLimit();
    ThreadLockWaitLimit(const ThreadLockWaitLimit&) = delete;
    ThreadLockWaitLimit& operator=(const ThreadLockWaitLimit&) = delete;

private:
    std::int64_t previous_ns_;
};

}  // namespace dragonmem
