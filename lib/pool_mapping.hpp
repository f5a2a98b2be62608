// PoolMapping: one pool mapped into this process, and every operation on its shared
// state. All mutations happen under the pool's robust lock (lock()), which is also the
// single repair point: whoever acquires a lock abandoned by a dead holder rebuilds the
// derived state from the manifest before going on (pool_repair.cpp).
#pragma once

#include "buddy_heap.hpp"
#include "manifest.hpp"
#include "pool_layout.hpp"
#include "shm_segment.hpp"

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
    // pool was destroyed and another took its name. The result holds one reference.
    static dragonError_t open(const std::string& shm_name, std::uint64_t expected_nonce, PoolMapping*& out);

    PoolMapping(const PoolMapping&) = delete;
    PoolMapping& operator=(const PoolMapping&) = delete;

    // Reference counting behind MappingRef.
    void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    bool try_add_ref() noexcept;  // fails once the count reached 0
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
    dragonError_t list(std::optional<std::uint64_t> type, std::vector<AllocationInfo>& out);
    dragonError_t attributes(PoolAttributes& out);
    dragonError_t free_blocks(std::vector<FreeBlockCount>& out);
    dragonError_t check(CheckReport& out);
    // Marks the pool destroyed for everyone, wakes sleepers, unlinks and unmaps.
    dragonError_t destroy();

    std::uint8_t* heap_base() const noexcept { return heap_base_; }
    std::uint64_t heap_bytes() const noexcept { return header_->heap_bytes; }
    std::uint32_t order_for(std::uint64_t bytes) const noexcept { return heap_.order_for(bytes); }

private:
    PoolMapping() = default;
    ~PoolMapping() = default;          // never called: objects are recycled
    static PoolMapping* make();        // a recycled or new object with a fresh epoch
    dragonError_t attach_views(ShmMapping mapping);
    // Takes the pool lock, repairing first if its last holder died; fails when the pool
    // was destroyed.
    dragonError_t lock();
    void unlock() noexcept;
    void repair() noexcept;  // pool_repair.cpp
    void collect_invariant_problems(CheckReport& out);  // pool_check.cpp
    dragonError_t explain_unusable(const char* op) const;
    dragonError_t explain_no_block(std::uint64_t bytes, std::uint32_t order, dragonError_t code);

    std::atomic<std::uint32_t> refs_{1};
    std::atomic<std::uint64_t> epoch_{0};
    std::atomic<bool> unmapped_{false};
    std::string shm_name_;
    std::shared_ptr<const PoolIdentity> identity_;
    ShmMapping mapping_;
    PoolHeader* header_ = nullptr;
    std::uint8_t* heap_base_ = nullptr;
    Manifest manifest_;
    BuddyHeap heap_;
};

}  // namespace dragonmem::detail
