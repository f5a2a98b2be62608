// Who is alive: the processes that have a pool mapped, in a bounded table on the pool's
// page 2 (pool_layout.hpp), and the creating process. Each entry is one process's word,
// (start stamp << 32) | pid (robust_lock.hpp current_process_word), judged dead exactly
// as a dead lock owner is: the pid is gone, a zombie, or now belongs to a process started
// at another time (os/proc.hpp task_is_gone). So an entry needs no clean-up to be right:
// a process killed with its entry in place is simply counted dead, and the slot is taken
// over by the next attach that finds the table full.
//
// Written only at attach and at the last detach of a process's mapping (never on an
// alloc or free), each change one CAS of one word:
//   claim    0 -> me, or a dead word -> me. Killed before: nothing changed. After: the
//            entry names a process that is dead once we are, which readers see as dead.
//   release  me -> 0. Killed before: the entry names a dead process (as above).
//   overflow a process that finds all k_process_slots entries live adds 1 to `untracked`
//            and takes it back (1 CAS each way) at its detach. Killed in between, the
//            count stays high: the pool then never counts as orphaned (nothing proves
//            that nobody uses it), which errs on the side of keeping it.
// Readers (attributes(), `dragonmem ls`) load the words one by one without a lock: a
// listing races attaches and detaches as any `ps` does.
#pragma once

#include "pool/pool_layout.hpp"

#include <atomic>
#include <cstdint>
#include <vector>

namespace dragonmem::detail {

inline constexpr std::uint32_t k_process_slots = 504;  // fills page 2 with the 64 B head

struct ProcessTable {
    // Written once by the creator before the pool is ready, read-only afterwards.
    std::uint64_t creator_process;      // (start stamp << 32) | pid of the creating process
    std::uint64_t creator_start_ticks;  // its start time, clock ticks since boot (/proc/<pid>/stat field 22)
    std::atomic<std::uint64_t> untracked;  // attached processes that found every entry live
    std::uint64_t reserved[5];
    std::atomic<std::uint64_t> entries[k_process_slots];  // a process word, 0: free
};
static_assert(sizeof(ProcessTable) == k_procs_bytes, "the process table is page 2, exactly");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// The table of a mapped pool.
inline ProcessTable& process_table_of(std::uint8_t* object_base) noexcept {
    return *reinterpret_cast<ProcessTable*>(object_base + k_procs_offset);
}

// The creator's part, at creation (the page is zero): the calling process's word and
// start time.
void process_table_format(ProcessTable& table) noexcept;

// Records process word `me` as attached: the slot taken, or -1 when every slot holds a
// live process (then `untracked` was counted instead).
int process_table_claim(ProcessTable& table, std::uint64_t me) noexcept;
// Takes back what process_table_claim(me) returned.
void process_table_release(ProcessTable& table, int slot, std::uint64_t me) noexcept;

// What the table says now.
struct ProcessCensus {
    std::vector<std::uint32_t> live_pids;  // attached and alive, ascending
    std::uint64_t untracked = 0;           // attached beyond the table (see above)
    std::uint32_t dead_entries = 0;        // entries of processes that died attached
    bool creator_alive = false;
};
ProcessCensus process_table_census(const ProcessTable& table);

// Whether a live process other than this one has the pool mapped, or may have: the table
// overflowed, or there was no memory to read it.
bool process_table_others_attached(const ProcessTable& table) noexcept;
// Whether the process a process word names is gone (0 counts as gone).
bool process_word_is_dead(std::uint64_t word) noexcept;

}  // namespace dragonmem::detail
