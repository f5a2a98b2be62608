// PoolMapping: one pool mapped into this process, and every operation on its shared
// state. All mutations happen under the pool's robust lock (lock()), which is also the
// single repair point: whoever acquires a lock abandoned by a dead holder rebuilds the
// derived state from the manifest before going on (pool_repair.cpp).
#pragma once

#include "pool/buddy_heap.hpp"
#include "pool/manifest.hpp"
#include "pool/pool_backing.hpp"
#include "pool/pool_layout.hpp"
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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem::detail {

// What an allocation is, as a descriptor needs it.
struct BlockInfo {
    std::uint64_t id = 0;
    std::uint64_t type = 0;
    std::uint64_t offset = 0;
    std::uint64_t requested_bytes = 0;
};

// Checks a base name: 1-29 chars of [A-Za-z0-9._-], not starting with '.' or '-'.
dragonError_t validate_pool_name(std::string_view name);

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
    // Lock-free manifest reads for descriptors (memory_ops.cpp): whether an id was ever
    // issued, and a live id's fields.
    bool id_issued(std::uint64_t id) const noexcept { return manifest_.issued(id); }
    bool read_live(std::uint64_t id, Manifest::LiveFields& out) const noexcept { return manifest_.read_live(id, out); }
    bool plausible_block(std::uint64_t requested_bytes, std::uint64_t offset) const noexcept {
        HeapBlock block{};
        return heap_.block_of(requested_bytes, offset, block);
    }
    // get_pointer's whole check: the start of live allocation `id`'s block, taken from
    // its manifest record (never from a descriptor), when that record holds exactly
    // `requested_bytes` in a block inside the heap; nullptr otherwise. A descriptor's view
    // lies within its requested size, so the pointer and size it yields stay in the block.
    std::uint8_t* live_block(std::uint64_t id, std::uint64_t requested_bytes) const noexcept {
        Manifest::LiveFields rec;
        if (!manifest_.read_live(id, rec) || rec.requested_bytes != requested_bytes) return nullptr;
        if (!plausible_block(rec.requested_bytes, rec.offset)) return nullptr;  // a damaged record
        return heap_base_ + rec.offset;
    }
    dragonError_t list(std::optional<std::uint64_t> type, std::vector<AllocationInfo>& out);
    dragonError_t attributes(PoolAttributes& out);
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

    std::uint8_t* heap_base() const noexcept { return heap_base_; }
    std::uint64_t heap_bytes() const noexcept { return header_->heap_bytes; }
    std::uint32_t order_for(std::uint64_t bytes) const noexcept { return heap_.order_for(bytes); }

private:
    // ---- thread caches (pool_cache.cpp; the protocol is in thread_cache.hpp)
    struct ReclaimPlan {
        std::uint64_t cached_of = 0;     // bit e: take entry e's cached blocks
        std::uint64_t dead_entries = 0;  // bit e: entry e's owner is known dead: take its claims too
        bool find_dead_claims = false;   // check the owners of claims found (reads /proc), undo the dead ones
    };
    bool alloc_from_cache(ThreadCache& cache, std::uint32_t order, std::uint64_t bytes, std::uint64_t type,
                          BlockInfo& out) noexcept;
    bool free_to_cache(ThreadCache& cache, std::uint64_t id) noexcept;
    // The next id counter of a thread with a cache entry, from its id block (a new block
    // is reserved when it is used up); false when the id space is used up. No lock.
    bool take_counter(ThreadCache& cache, std::uint64_t& counter) noexcept;
    // The calling thread's cache, created (with a shared entry) if it has none; lock held.
    ThreadCache* cache_for_this_thread_locked() noexcept;
    void refill_locked(ThreadCache& cache, std::uint32_t order) noexcept;
    void flush_magazine_locked(ThreadCache& cache, std::uint32_t order) noexcept;
    // Frees the record in `slot` if its id word still is `word` (one CAS): returns the
    // freed block's order, 0 if the record was implausible (no block freed), -1 if the
    // word had changed. Lock held.
    int take_back_locked(std::uint64_t slot, std::uint64_t word) noexcept;
    // Bumps wake_seq after frees; true if sleepers must be woken (futex_wake_all, after
    // unlock() where the caller can; waiter.hpp).
    bool announce_frees_locked() noexcept;
    // Takes cache records back to the heap; returns how many, in `left` how many cache
    // records remain, and in `claimed_left` the entries that still have a claimed (in
    // flight) record. A claimed record is only taken when its owner is dead. Lock held.
    std::uint64_t reclaim_cached_locked(const ReclaimPlan& plan, std::uint64_t* left = nullptr,
                                        std::uint64_t* claimed_left = nullptr) noexcept;
    // Of the entries in `among`, those whose owner thread is gone (or that have no owner).
    std::uint64_t dead_entries_locked(std::uint64_t among) const noexcept;
    bool any_entry_owned_locked() const noexcept;
    void release_entries_locked(std::uint64_t entries) noexcept;
    // Before an allocation fails: every cached block, and the claimed ones of dead
    // threads, go back to the heap; dead threads' entries are released. Lock held.
    std::uint64_t take_back_all_cached_locked() noexcept;
    // Frees the cached blocks of dead threads and releases their entries. Lock held.
    void sweep_dead_entries_locked() noexcept;
    // release(): the cached blocks of the entries claimed through this object go back.
    void hand_back_process_caches() noexcept;


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
    void repair() noexcept;  // pool_repair.cpp
    // One allocation from the heap, lock held. `reported`: the failure's message is set
    // and final (corrupt heap, ids used up); otherwise the caller explains it.
    dragonError_t alloc_locked(std::uint64_t bytes, std::uint64_t type, std::uint32_t order, BlockInfo& out,
                               bool& reported);
    void collect_invariant_problems(CheckReport& out);  // pool_check.cpp
    dragonError_t explain_unusable(const char* op) const;
    dragonError_t explain_no_block(std::uint64_t bytes, std::uint32_t order, dragonError_t code);
    // An allocation failed because /dev/shm could not back a page the library needed.
    dragonError_t explain_unbacked(std::uint64_t bytes);

    std::atomic<std::uint32_t> refs_{1};
    std::atomic<std::uint64_t> epoch_{0};
    std::atomic<bool> unmapped_{false};
    std::string shm_name_;
    std::shared_ptr<const PoolIdentity> identity_;
    ShmMapping mapping_;
    PoolHeader* header_ = nullptr;
    std::uint8_t* heap_base_ = nullptr;
    Backing backing_;                  // manifest_ and heap_ point to it
    Manifest manifest_;
    BuddyHeap heap_;
    // Cache entries claimed through this object, the owner word each was claimed with,
    // and the process that claimed them (written under the pool lock; read by release()).
    // A forked child inherits these: the pid tells it they are its parent's.
    std::uint64_t my_entries_ = 0;
    std::uint64_t my_entry_owner_[k_cache_entries] = {};
    std::uint32_t my_entries_pid_ = 0;
};

}  // namespace dragonmem::detail
