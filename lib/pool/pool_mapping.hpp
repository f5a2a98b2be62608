// PoolMapping: one pool mapped into this process, and every operation on its shared
// state. All mutations happen under the pool's robust lock (lock()), which is also the
// single repair point: whoever acquires a lock abandoned by a dead holder rebuilds the
// derived state from the manifest before going on (pool_repair.cpp).
//
// Sleeping until memory is freed (alloc_blocking): a futex (os/futex.hpp) on the
// header's 32-bit `wake_seq`. Protocol (no lost wake-ups): a waiter reads `wake_seq`
// while holding the pool lock, sets `has_waiters`, unlocks, then sleeps only while
// `wake_seq` is unchanged. Every free bumps `wake_seq` under the lock and, if
// `has_waiters` was set, clears it (both under the lock, so no announcement can slip
// between the test and the clear) and wakes everybody. The wake comes after unlocking on
// the common paths (free, statistics, detach), so that woken sleepers do not find the
// lock still held; the rare paths (a repair, the sweep of dead threads' caches, the
// take-back inside a failing alloc) wake while still holding it, which costs the
// sleepers a short wait for the lock and nothing else: a woken sleeper always re-checks
// under the lock. A waiter killed while asleep leaves at most a stale `has_waiters`,
// which costs the next free one futex call and then clears itself.
#pragma once

#include "pool/device_region.hpp"
#include "pool/tlsf_heap.hpp"
#include "pool/manifest.hpp"
#include "pool/pool_caches.hpp"
#include "pool/pool_backing.hpp"
#include "pool/pool_layout.hpp"
#include "pool/pool_name.hpp"
#include "pool/pool_view.hpp"
#include "pool/robust_lock.hpp"
#include "os/shm_segment.hpp"
#include "pool/thread_cache.hpp"

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>
#include <dragonmem/types.hpp>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem::detail {

// For tests: sets how long a blocking allocation sleeps at most before it looks at the
// pool again (default 100 ms: a process that died between a free's commit and its
// wake-up wakes nobody); returns the previous slice. A long one turns a lost wake-up into
// a wait until the waiter's timeout (as set_owner_check_interval_for_tests does for the
// lock, robust_lock.hpp).
long set_wait_slice_for_tests(long slice_ms) noexcept;

class PoolMapping {
public:
    // Creates the shm object and formats it; the result holds one reference.
    static dragonError_t create(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                                const PoolOptions& options, PoolMapping*& out);
    // Maps an existing pool by shm name; `expected_nonce` (non-zero) must match, else the
    // pool was destroyed and another took its name. A pool still being created is waited
    // for while its creator lives (pool_creator.hpp). A pool made in another PID
    // namespace is refused (INVALID_OPERATION). The result holds one reference.
    static dragonError_t open(const std::string& shm_name, std::uint64_t expected_nonce, PoolMapping*& out);
    // For `destroy --force`: INVALID_OPERATION when the object is a pool still being
    // created by a live (or, from another PID namespace, unknowable) creator, or a blank
    // object too young to tell; success otherwise (also when there is no such object).
    static dragonError_t refuse_if_being_created(const std::string& shm_name);

    PoolMapping(const PoolMapping&) = delete;
    PoolMapping& operator=(const PoolMapping&) = delete;

    // Reference counting behind MappingRef.
    void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    // Fails once the count reached 0. For a pointer held without a count (MemoryRef):
    // after it succeeds, compare epoch() again, as the object may have been recycled.
    bool try_add_ref() noexcept;
    void release() noexcept;      // unmaps and recycles at 0 (see epoch())
    // Changes whenever this object stops or starts standing for a mapped pool: borrowed
    // pointers (MemoryRef) compare it to tell that their pool is gone.
    std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_acquire); }

    const std::shared_ptr<const PoolIdentity>& identity() const noexcept { return identity_; }
    const std::string& shm_name() const noexcept { return shm_name_; }

    // MAP_KEY_NOT_FOUND once this process destroyed the pool, OBJECT_DESTROYED once
    // another did. `op` names the call for the message.
    dragonError_t check_usable(const char* op) const {
        if (unmapped_.load(std::memory_order_acquire) || destroyed_elsewhere()) return explain_unusable(op);
        return DRAGON_SUCCESS;
    }
    bool destroyed_elsewhere() const noexcept { return header_->destroyed.load(std::memory_order_acquire) != 0; }

    // alloc and free expect the caller to have checked check_usable().
    dragonError_t alloc(std::uint64_t bytes, std::uint64_t type, bool blocking, const timespec* timeout,
                        BlockInfo& out);
    dragonError_t free(std::uint64_t id);
    dragonError_t lookup(std::uint64_t id, BlockInfo& out);
    bool is_live(std::uint64_t id) const noexcept { return manifest_.is_live(id); }
    // Lock-free manifest reads for descriptors (memory_operations.cpp): whether an id was ever
    // issued, and a live id's fields.
    bool id_issued(std::uint64_t id) const noexcept { return manifest_.issued(id); }
    bool read_live(std::uint64_t id, Manifest::LiveFields& out) const noexcept { return manifest_.read_live(id, out); }
    bool plausible_block(std::uint64_t requested_bytes, std::uint64_t offset) const noexcept {
        HeapBlock block{};
        return heap_.block_of(requested_bytes, offset, block);
    }
    // get_pointer's whole check: the offset of live allocation `id`'s block, taken from
    // its manifest record (never from a descriptor), when that record holds exactly
    // `requested_bytes` in a block inside the heap; false otherwise. A descriptor's view
    // lies within its requested size, so the pointer and size it yields stay in the block.
    bool live_block(std::uint64_t id, std::uint64_t requested_bytes, std::uint64_t& offset) const noexcept {
        Manifest::LiveFields rec;
        if (!manifest_.read_live(id, rec) || rec.requested_bytes != requested_bytes) return false;
        if (!plausible_block(rec.requested_bytes, rec.offset)) return false;  // a damaged record
        offset = rec.offset;
        return true;
    }
    // Where the heap's bytes are in this process: the heap in the mapping, or a GPU
    // pool's device region (device_region.hpp), opened at the first call (which may fail,
    // MEMORY_ERRNO saying why; `op` names the call).
    dragonError_t data_base(const char* op, std::uint8_t*& out) {
        if (!on_gpu_) [[likely]] {
            out = heap_base_;
            return DRAGON_SUCCESS;
        }
        return device_base(op, out);
    }
    // Page-locks the heap for GPU transfers in this process (cuMemHostRegister) or undoes
    // it; undone at the mapping's last release too. INVALID_OPERATION for a GPU pool, for
    // registering twice, and for unregistering what is not registered.
    dragonError_t register_with_gpu(bool on);
    // A GPU pool (DRAGON_MEMORY_TYPE_GPU): its bytes are device memory of gpu_device(),
    // this process's ordinal of the pool's GPU, known once data_base() opened the region
    // (-1 before). Another pool: the device id recorded (for register_with_gpu).
    bool on_gpu() const noexcept { return on_gpu_; }
    int gpu_device() const noexcept {
        return on_gpu_ ? device_.device() : static_cast<int>(header_->gpu_device_id);
    }
    dragonError_t list(std::optional<std::uint64_t> type, std::vector<AllocationInfo>& out);
    // One page of a listing that does not hold the lock between pages (pool_scan.cpp):
    // the live allocations of manifest slots [cursor, ...), at most `max`, of `type` when
    // given; `cursor` moves past the last slot read, `done` says the manifest's end was met.
    dragonError_t list_page(std::optional<std::uint64_t> type, std::uint64_t& cursor, std::size_t max,
                            std::vector<AllocationInfo>& out, bool& done);
    // A live allocation's record with its block size; KEY_NOT_FOUND when not live.
    dragonError_t allocation_info(std::uint64_t id, AllocationInfo& out);
    // `who_is_alive`: also the creator's and the attached processes' liveness (reads /proc
    // once per process attached, process_table.hpp); without it those fields stay default.
    dragonError_t attributes(PoolAttributes& out, bool who_is_alive = true);
    dragonError_t free_blocks(std::vector<FreeBlockCount>& out);
    dragonError_t check(CheckReport& out);
    // Marks the pool destroyed for everyone, wakes sleepers and unlinks; this process's
    // calls then fail. The mapping stays until the last reference goes (release()), so
    // other threads inside a call meanwhile never touch unmapped memory.
    // `without_lock` (destroy --force): does not wait for the pool lock.
    dragonError_t destroy(bool without_lock = false);

    // Process-local pools (lib/descr/process_local.cpp): the owning process's word (0:
    // none), and one CAS of it; false (with `expected` updated) when it had changed.
    std::uint64_t local_owner() const noexcept { return header_->local_owner.load(std::memory_order_acquire); }
    bool exchange_local_owner(std::uint64_t& expected, std::uint64_t desired) noexcept {
        return header_->local_owner.compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
    }
    std::uint64_t local_owner_pid_ns() const noexcept {
        return header_->local_owner_pid_ns.load(std::memory_order_acquire);
    }
    void set_local_owner_pid_ns(std::uint64_t ns) noexcept {
        header_->local_owner_pid_ns.store(ns, std::memory_order_release);
    }

    // Records this process in the pool's process table (process_table.hpp), once per
    // process: a forked child that attaches the mapping it inherited records itself. The
    // last release() takes the entry back. Called by the registry under its mutex.
    void register_this_process() noexcept;

    std::uint8_t* heap_base() const noexcept { return heap_base_; }
    std::uint64_t heap_bytes() const noexcept { return header_->heap_bytes; }
    // The block a request of `bytes` gets (0 for 0; a request past the heap, its size).
    std::uint64_t block_bytes_for(std::uint64_t bytes) const noexcept {
        return bytes == 0 || bytes > heap_bytes() ? bytes : heap_.block_bytes_for(bytes);
    }

private:
    PoolMapping() = default;
    ~PoolMapping() = default;          // never called: objects are recycled
    static PoolMapping* make();        // a recycled or new object with a fresh epoch
    static dragonError_t create_pool(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                                     const PoolOptions& options, PoolMapping*& out);  // create(), may throw
    void attach_views(ShmMapping mapping, ShmObjectId object);
    // Takes the pool lock, repairing first if its last holder died; fails when the pool
    // was destroyed, and with TIMEOUT (naming the holder) when the lock stays held past
    // `deadline` (CLOCK_MONOTONIC; nullptr: none) or the lock-wait limit.
    dragonError_t lock(const timespec* deadline = nullptr);
    dragonError_t explain_lock_timeout(const LockWait& wait) const;
    void unlock() noexcept;
    PoolView view() noexcept { return PoolView{*header_, manifest_, heap_}; }
    // One allocation from the heap, lock held. `reported`: the failure's message is set
    // and final (corrupt heap, ids used up); otherwise the caller explains it.
    dragonError_t alloc_locked(std::uint64_t bytes, std::uint64_t type, std::uint64_t block_bytes, BlockInfo& out,
                               bool& reported);
    dragonError_t explain_unusable(const char* op) const;
    dragonError_t explain_no_block(std::uint64_t bytes, std::uint64_t block_bytes, dragonError_t code);
    // An allocation failed because /dev/shm could not back a page the library needed.
    dragonError_t explain_unbacked(std::uint64_t bytes);
    dragonError_t device_base(const char* op, std::uint8_t*& out);

    // This process's entry in the process table: the process that made it (0: none yet,
    // or inherited through fork), its word and slot (-1: counted as untracked).
    std::uint32_t registered_pid_ = 0;
    std::uint64_t registered_word_ = 0;
    int registered_slot_ = -1;
    std::atomic<std::uint32_t> refs_{1};
    std::atomic<std::uint64_t> epoch_{0};
    std::atomic<bool> unmapped_{false};
    std::string shm_name_;
    std::shared_ptr<const PoolIdentity> identity_;
    ShmMapping mapping_;
    PoolHeader* header_ = nullptr;
    std::uint8_t* heap_base_ = nullptr;
    bool on_gpu_ = false;
    DeviceRegion device_;              // a GPU pool's data in this process
    std::mutex gpu_registration_mutex_;
    std::uint32_t gpu_registered_pid_ = 0;  // register_with_gpu(true) page-locked the heap in this process
    Backing backing_;                  // manifest_ and heap_ point to it
    Manifest manifest_;
    TlsfHeap heap_;
    PoolCaches caches_;                // the thread caches' shared side (over the three above)
};

}  // namespace dragonmem::detail
