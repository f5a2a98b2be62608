// The creator record of a pool (pool_layout.hpp CreatorRecord): written by the creating
// thread before it formats anything, read by attachers that find the pool not ready
// yet and by `destroy --force`. A live creator is waited for (formatting a pool with
// millions of preallocated blocks, or reserving gigabytes, takes seconds); a dead one
// means the object will never be a pool. Also this process's PID namespace: thread ids,
// which the lock and the thread-cache entries compare, only mean something inside one.
#pragma once

#include "pool/pool_layout.hpp"

#include <cstdint>
#include <string>

namespace dragonmem::detail {

// How long an attacher waits for a live creator to finish before it gives up (TIMEOUT).
inline constexpr long k_creator_wait_ms = 30'000;
// A blank object with no creator recorded yet: its creator is between shm_open and its
// first write, or died there. Waited for (and not force-removed) while it is younger.
inline constexpr long k_unrecorded_grace_ms = 1'000;

// The record for the calling thread, now.
CreatorRecord this_creator() noexcept;

// The inode of this process's /proc/self/ns/pid; 0 when /proc cannot say. Remembered
// per process id (a child made by clone(CLONE_NEWPID) inherits everything else).
std::uint64_t this_pid_namespace() noexcept;
// "pid:[4026531836]", or "an unknown PID namespace" for 0.
std::string describe_pid_namespace(std::uint64_t ns);
// Both known and different.
inline bool other_pid_namespace(std::uint64_t pool_ns, std::uint64_t mine) noexcept {
    return pool_ns != 0 && mine != 0 && pool_ns != mine;
}

enum class CreatorState {
    none,            // no creator recorded
    alive,           // the creating thread exists
    dead,            // it is gone (or its id was reused by a newer thread)
    other_namespace  // recorded in another PID namespace: cannot be judged from here
};
CreatorState creator_state(const CreatorRecord& creator, std::uint64_t my_pid_ns) noexcept;

}  // namespace dragonmem::detail
