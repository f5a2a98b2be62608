// Plain value types the C++ API returns: options, attributes, statistics, listings.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>

#include <dragon/managed_memory.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dragonmem {

// A pool's permission bits when none are given; a mode of 0 asks for it too, in the C
// API, the C++ API and the CLI alike.
inline constexpr unsigned default_pool_mode = 0600;

// How to create a pool (the C API's dragonMemoryPoolAttr_t, as a C++ struct).
struct PoolOptions {
    std::size_t min_block_bytes = 32;    // rounded up to a power of two, at least 32
    std::size_t max_allocations = 0;     // manifest capacity; 0: number of min blocks, at most 1048576
    unsigned mode = default_pool_mode;   // permission bits, umask ignored; 0: default_pool_mode
    dragonLockKind_t lock_type = DRAGON_LOCK_FIFO;
    dragonMemoryPoolType_t mem_type = DRAGON_MEMORY_TYPE_SHM;
    dragonMemoryPoolGrowthType_t growth_type = DRAGON_MEMORY_GROWTH_NONE;
    std::size_t segment_size = 0;        // recorded only
    std::size_t max_size = 0;            // recorded only
    // preallocs[n]: blocks of min_block_bytes << n carved at creation (it fails if they do
    // not fit), then merged back: the pool is one free block (man 3 libdragonmem).
    std::vector<std::size_t> preallocs;
    // The NUMA node the pool's pages are bound to (mbind, MPOL_BIND), whoever touches them
    // first; -1: no preference (the toucher's policy). A node that is not online fails.
    int numa_node = -1;
    // The CUDA device (an ordinal among the devices this process sees) of a
    // DRAGON_MEMORY_TYPE_GPU pool's data; recorded for other pools (register_with_gpu
    // pins them for it).
    std::uint64_t gpu_device_id = 0;
    // Back the whole pool with memory at creation (posix_fallocate): creation fails if
    // /dev/shm cannot hold it, and nothing in the pool can fault later. Costs about
    // 0.2 s per GiB. Without it, the pool's pages get memory when first touched: the
    // library backs what it touches itself and fails an allocation cleanly
    // (OUT_OF_SPACE) when /dev/shm is full, but users' own first touch of their
    // allocations' pages is then a SIGBUS.
    bool reserve = false;
};

// Everything a pool's header says about it, plus its live figures.
struct PoolAttributes {
    std::string name;                 // base name
    std::string shm_name;             // POSIX shm object name, e.g. "dragonmem.p1"
    std::uint64_t m_uid = 0;
    std::uint64_t hostid = 0;
    std::uint64_t rt_uid = 0;
    unsigned mode = 0;
    dragonLockKind_t lock_type = DRAGON_LOCK_FIFO;
    dragonMemoryPoolType_t mem_type = DRAGON_MEMORY_TYPE_SHM;
    dragonMemoryPoolGrowthType_t growth_type = DRAGON_MEMORY_GROWTH_NONE;
    std::size_t segment_size = 0;
    std::size_t max_size = 0;
    std::size_t min_block_bytes = 0;
    std::size_t max_block_bytes = 0;    // largest block of the empty pool (== heap_bytes)
    std::size_t heap_bytes = 0;         // allocatable size, a power of two
    std::size_t total_bytes = 0;        // the whole shm object: header pages, backing map, manifest, free map, heap
    std::size_t manifest_bytes = 0;     // the manifest's region: max_allocations records, page-rounded
    std::size_t manifest_record_bytes = 0;  // one record per allocation (max_allocations of them)
    std::size_t heap_meta_bytes = 0;    // the heap's own metadata: list heads and the free map (1 bit per 64 B granule)
    std::size_t max_allocations = 0;    // manifest capacity
    std::size_t free_bytes = 0;
    std::size_t largest_free_block = 0;  // bytes of the largest free block now
    std::size_t largest_request = 0;     // the largest request that succeeds now (0: none)
    double utilization_pct = 0.0;       // 100 * used / heap_bytes
    std::size_t live_allocations = 0;
    std::size_t max_live_allocations = 0;  // most manifest records in use at once since creation
                                           // (live allocations plus blocks cached by threads)
    bool waiters = false;               // someone is blocked waiting for memory or a slot
    // Allocations and frees since creation (blocks; zero-byte allocations are not counted).
    // Counted without a shared write on the lock-free path (docs/design.md): exact, except
    // that a thread killed right after an operation may leave it uncounted.
    std::uint64_t allocations_total = 0;
    std::uint64_t frees_total = 0;
    std::uint64_t recoveries = 0;       // times a survivor repaired the pool after a crash
    bool reserved = false;              // created with PoolOptions::reserve: all its memory backed
    int numa_node = -1;                 // bound to this node; -1: no preference
    std::uint64_t gpu_device_id = 0;    // a GPU pool's device; recorded for others
    std::size_t ipc_handle_bytes = 0;   // a GPU pool's CUDA IPC handle (64 B); 0 for others
    // Process-local pools (Pool::create_process_local): destroyed when the owner exits
    // normally. `owner_alive` false with `process_local` true: the owner died without
    // destroying it (an orphan). pid 0 and alive false when not process-local.
    bool process_local = false;
    std::uint32_t owner_pid = 0;
    bool owner_alive = false;
    // Who is alive (the pool's process table, docs/design.md "Who is alive"). The creator:
    // its process id, effective uid, start time (clock ticks since boot, /proc/<pid>/stat
    // field 22) and the creation time (ns since the epoch), and whether that process lives.
    std::uint32_t creator_pid = 0;
    std::uint32_t creator_uid = 0;
    std::uint64_t creator_start_ticks = 0;
    std::uint64_t created_ns = 0;
    bool creator_alive = false;
    // The live processes that have the pool mapped (this one included), ascending; entries
    // of processes that died attached are not listed but counted in dead_attached. A
    // process that attached while the table was full is counted in untracked_attached
    // only (it stays counted if it dies attached).
    std::vector<std::uint32_t> attached_pids;
    std::uint64_t untracked_attached = 0;
    std::uint32_t dead_attached = 0;
    // No live process other than the caller has the pool mapped (and none untracked), and
    // it is not a process-local pool of a live owner; or it is a process-local pool whose
    // owner died (it would have been destroyed at its owner's exit). What `dragonmem
    // destroy --orphaned` removes.
    bool orphaned = false;
};

struct AllocationInfo {
    std::uint64_t id = 0;
    std::uint64_t type = 0;
    std::uint64_t offset = 0;           // of the block in the heap
    std::uint64_t size = 0;             // bytes requested
    std::uint64_t block_bytes = 0;      // the block holding it (size - block_bytes: its internal waste)
};

struct FreeBlockCount {
    std::size_t block_bytes = 0;
    std::size_t count = 0;
};

// The verdict of Pool::check(): the invariants of docs/design.md section 4.12.
struct CheckReport {
    bool ok = true;
    std::vector<std::string> problems;  // one sentence each, empty when ok
    std::size_t heap_bytes = 0;
    std::size_t free_bytes = 0;         // sum of free blocks found on the free lists
    std::size_t used_bytes = 0;         // sum of the blocks the manifest holds (live + cached)
    std::size_t live_allocations = 0;
    std::size_t free_blocks = 0;
    std::size_t cached_blocks = 0;      // freed blocks parked in thread caches for reuse
    std::size_t cached_bytes = 0;
    // Of those, the blocks parked by threads that are gone (exited, killed, or an entry
    // nobody owns). Free memory waiting to be taken back (by the next allocation that
    // needs it, a statistics call or a repair): not a broken invariant, so `ok` stays
    // true, but said in `notices`.
    std::size_t orphaned_cached_blocks = 0;
    std::size_t orphaned_cached_bytes = 0;
    std::vector<std::string> notices;   // findings that are not problems; one sentence each
};

}  // namespace dragonmem
