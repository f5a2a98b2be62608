// A GPU pool's data region (DRAGON_MEMORY_TYPE_GPU) as this process sees it.
//
// The pool's heap metadata is where every pool keeps it, in the shm object: header,
// manifest, free lists, free map, lock. Free blocks' in-band headers and footers go to
// the object's heap range, as in any pool, which for a GPU pool is a host-side "shadow"
// of the device region: the same offsets, sparse (a page gets memory only when the heap
// writes a header or footer in it), never holding users' bytes. The users' bytes are in
// one region of device memory (cuMemAlloc), at the same offsets. So the allocator,
// crash repair, check, ls and dump work on a GPU pool unchanged; only pointers and the
// byte operations (memory_copy.cpp) differ.
//
// Who holds the device memory. CUDA ties an allocation to the context of the process
// that made it: the creating process allocates the region (cuda_alloc_shared) and its
// IPC handle goes into the header; every other process opens the handle once, at its
// first pointer request (base()), and closes it when its last mapping of the pool goes.
// The creator frees the region when its last mapping of the pool goes after the pool
// was destroyed, if no other live process is attached then (freeing memory that another
// process has open is undefined in CUDA). Otherwise the table keeps the region and that
// mapping (for its process table), and frees both at the first sweep that finds no
// other live process attached: sweeps run at this process's next GPU pool creation,
// region opening and mapping release. The creator's exit always ends the region: CUDA
// frees a process's allocations with its context, whatever other processes have open. A
// GPU pool's bytes therefore live as long as its creating process; after that, opening
// the handle fails with a message that says so.
//
// This process's regions are kept in one table, keyed by pool instance (the header's
// nonce): a pool mapped again (detach then attach) finds its region there, and the
// creator never opens its own handle (CUDA refuses that). A child made by fork()
// forgets the table (the parent's CUDA context is not the child's) and opens the region
// afresh at its first pointer request, which CUDA refuses if the parent had initialised
// CUDA before forking: the error says so.
#pragma once

#include "os/cuda_device.hpp"
#include "os/shm_segment.hpp"

#include <dragon/return_codes.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace dragonmem::detail {

// The creator's part: allocates the region for pool instance `nonce` and fills
// `handle` and `uuid` (the device's identity); the table keeps it, owned by this
// process, until device_region_discard (a creation that failed) or the release that
// frees it.
dragonError_t device_region_allocate(std::uint64_t nonce, int device, std::uint64_t bytes, IpcHandle& handle,
                                     GpuUuid& uuid, const std::string& who);
// Frees what device_region_allocate made, when the pool's creation fails after it.
void device_region_discard(std::uint64_t nonce) noexcept;

// The fork handlers' part (fork_safety.cpp): the table's lock around fork(), and the
// child's forgetting of its parent's regions.
void device_regions_lock_for_fork() noexcept;
void device_regions_unlock_after_fork() noexcept;
void device_regions_forget_after_fork() noexcept;
// Bumped in every forked child: a DeviceRegion's cached base of an older generation is
// its parent's.
extern std::atomic<std::uint64_t> g_device_fork_generation;

// One mapping's view of its pool's region. PoolMapping holds one; cached() is the hot
// part of get_pointer for GPU pools: one acquire load and one compare when open.
class DeviceRegion {
public:
    // A mapping object being reused for another pool (PoolMapping::make).
    void reset() noexcept;

    // The region's start in this process once open (and not inherited through fork).
    bool cached(std::uint8_t*& out) const noexcept {
        std::uint8_t* b = base_.load(std::memory_order_acquire);
        if (b == nullptr || generation_.load(std::memory_order_relaxed) != current_generation()) return false;
        out = b;
        return true;
    }
    // Opens it (once per process and pool instance: other mappings of the pool in this
    // process share the table's entry) on the device `uuid` names here. CUDA is started
    // (driver, device, context) before the table's lock is taken: a fork meanwhile waits
    // for the lock only briefly. `who` starts a failure's message.
    dragonError_t open(std::uint64_t nonce, const GpuUuid& uuid, const IpcHandle& handle, const std::string& who,
                       std::uint8_t*& out);
    // This process's ordinal of the region's device once open(), else -1.
    int device() const noexcept { return device_.load(std::memory_order_relaxed); }

    // The mapping's last release: gives up this mapping's hold, and frees (creator) or
    // closes (others) the region when that was the last one and the rules above allow.
    // `destroyed`: the pool was destroyed; `others_attached`: another live process has
    // the pool mapped (process table). True when the table kept `mapping` (a destroyed
    // pool's region waiting for the others): the caller must not unmap it.
    bool release(std::uint64_t nonce, bool destroyed, bool others_attached, const ShmMapping& mapping) noexcept;

private:
    static std::uint64_t current_generation() noexcept {
        return g_device_fork_generation.load(std::memory_order_relaxed);
    }

    std::atomic<std::uint8_t*> base_{nullptr};
    std::atomic<std::uint64_t> generation_{0};  // the fork generation base_ belongs to
    std::atomic<int> device_{-1};
    bool released_ = false;  // release() ran (under the table's lock): no open() after it
};

}  // namespace dragonmem::detail
