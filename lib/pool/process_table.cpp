// The attached-process table (process_table.hpp).
#include "pool/process_table.hpp"

#include "os/proc.hpp"
#include "pool/robust_lock.hpp"

#include <unistd.h>

#include <algorithm>

namespace dragonmem::detail {

bool process_word_is_dead(std::uint64_t word) noexcept {
    return word == 0 || task_is_gone(static_cast<std::uint32_t>(word), static_cast<std::uint32_t>(word >> 32));
}

// Runs while the creator builds the pool, before the magic is published: killed here,
// the pool never becomes attachable; attach names the dead creator and `destroy --force`
// removes the object.
void process_table_format(ProcessTable& table) noexcept {
    table.creator_process = current_process_word();
    char state = 0;
    std::uint64_t start_ticks = 0;
    if (read_task_stat(static_cast<std::uint32_t>(::getpid()), state, start_ticks))
        table.creator_start_ticks = start_ticks;
}

int process_table_claim(ProcessTable& table, std::uint64_t me) noexcept {
    // A free entry first (no /proc read), then one whose process died.
    for (int pass = 0; pass < 2; ++pass) {
        for (std::uint32_t i = 0; i < k_process_slots; ++i) {
            std::uint64_t seen = table.entries[i].load(std::memory_order_relaxed);
            if (pass == 0 ? seen != 0 : (seen == 0 || !process_word_is_dead(seen))) continue;
            // One CAS: killed before it, nothing changed; after it, the entry names us.
            if (table.entries[i].compare_exchange_strong(seen, me, std::memory_order_acq_rel))
                return static_cast<int>(i);
        }
    }
    // Every entry names a live process: counted, and taken back at detach. Killed before
    // the add, nothing changed; after it and before the detach, the count stays one too
    // high for the pool's life, so the pool is never called orphaned (the safe error:
    // `destroy --orphaned` keeps it).
    table.untracked.fetch_add(1, std::memory_order_acq_rel);
    return -1;
}

void process_table_release(ProcessTable& table, int slot, std::uint64_t me) noexcept {
    if (slot < 0) {
        // Never below 0, even if the table was damaged behind us. Killed before the CAS,
        // the count stays high (see process_table_claim); after it, we are gone from it.
        std::uint64_t count = table.untracked.load(std::memory_order_relaxed);
        while (count != 0 && !table.untracked.compare_exchange_weak(count, count - 1, std::memory_order_acq_rel)) {
        }
        return;
    }
    if (static_cast<std::uint32_t>(slot) >= k_process_slots) return;
    // Only our own word: a slot taken over meanwhile (impossible while we live, but the
    // table is shared memory) is left to its new owner. Killed before the CAS, the entry
    // names a dead process: census counts it dead and the next claim takes it over.
    std::uint64_t expected = me;
    (void)table.entries[slot].compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
}

ProcessCensus process_table_census(const ProcessTable& table) {
    ProcessCensus census;
    for (const auto& entry : table.entries) {
        const std::uint64_t word = entry.load(std::memory_order_acquire);
        if (word == 0) continue;
        if (process_word_is_dead(word)) {
            ++census.dead_entries;
            continue;
        }
        const auto pid = static_cast<std::uint32_t>(word);
        if (std::find(census.live_pids.begin(), census.live_pids.end(), pid) == census.live_pids.end())
            census.live_pids.push_back(pid);
    }
    std::sort(census.live_pids.begin(), census.live_pids.end());
    census.untracked = table.untracked.load(std::memory_order_acquire);
    census.creator_alive = !process_word_is_dead(table.creator_process);
    return census;
}

bool process_table_others_attached(const ProcessTable& table) noexcept {
    try {
        const ProcessCensus census = process_table_census(table);
        const auto me = static_cast<std::uint32_t>(::getpid());
        return census.untracked != 0 || std::any_of(census.live_pids.begin(), census.live_pids.end(),
                                                    [me](std::uint32_t pid) { return pid != me; });
    } catch (...) {
        return true;
    }
}

}  // namespace dragonmem::detail
