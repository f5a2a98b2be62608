// dragonmem::Pool: a move-only RAII handle to a managed-memory pool. Destroying the
// handle detaches (never destroys the pool); destroy() removes the pool for everyone.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>

#include <dragonmem/detail/refs.hpp>
#include <dragonmem/error.hpp>
#include <dragonmem/types.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem {

class Memory;

class Pool {
public:
    // Creates pool `name` (1-29 chars of [A-Za-z0-9._-], not starting with '.' or '-')
    // with `bytes` of allocatable space rounded up to a power of two.
    static Pool create(std::string_view name, std::size_t bytes, std::uint64_t m_uid = 0,
                       const PoolOptions& options = {});
    // Attaches a serialized pool descriptor (binary, or its base64 text).
    static Pool attach(std::span<const std::uint8_t> serialized);
    static Pool attach_base64(std::string_view base64);
    // Attaches the descriptor whose base64 is in environment variable `var`.
    static Pool attach_from_env(const char* var);
    // The default pool: the descriptor in DRAGON_DEFAULT_PD, as Dragon's attach_default.
    static Pool attach_default();
    // Attaches a pool of this host by its base name.
    static Pool attach_local(std::string_view name);
    // Base names of every dragonmem pool on this host (found in /dev/shm).
    static std::vector<std::string> list_local();
    // Removes pool `name` of this host even when it cannot be attached (a creator killed
    // mid-creation, a corrupt header): a valid pool is destroyed properly (attached
    // processes then see OBJECT_DESTROYED), anything else named dragonmem.<name> is
    // unlinked. MEMORY_ERRNO when there is no such object. Never waits for the pool's
    // lock: a holder that is stopped cannot keep the pool alive (lock_wait.hpp).
    static void force_remove(std::string_view name);
    // The POSIX shm object (in /dev/shm) that holds pool `name` of this host, the name
    // library calls use: "dragonmem.<name>". No check of the name.
    static std::string local_shm_name(std::string_view name);

    Pool() = default;  // an empty handle; every call on it throws MAP_KEY_NOT_FOUND
    Pool(Pool&&) noexcept = default;
    Pool& operator=(Pool&&) noexcept = default;
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    ~Pool();

    // Process-local pools: owned by this process and destroyed at its normal exit
    // (libdragonmem(3)). create_process_local = create + register_process_local.
    static Pool create_process_local(std::string_view name, std::size_t bytes, std::uint64_t m_uid = 0,
                                     const PoolOptions& options = {});
    void register_process_local() const;
    void deregister_process_local() const;
    // Whether the pool is process-local, and whether its owner lives (false: an orphan).
    bool process_local() const;
    bool owner_alive() const;

    Pool clone() const;
    void detach() noexcept;   // leaves this handle empty
    void destroy();           // unlinks; other handles then fail (unmapped when the last one goes)

    bool valid() const noexcept { return ref_.valid(); }
    bool is_local() const;
    std::string name() const;
    std::uint64_t m_uid() const;
    std::uint64_t hostid() const;
    std::uint64_t rt_uid() const;
    std::vector<std::uint8_t> serialize() const;
    std::string serialize_base64() const;
    // The descriptor without the pool's secret (and agent): it attaches on this node but
    // grants no off-node access (<dragonmem/remote.hpp>). What listings should print.
    std::string serialize_base64_without_secret() const;

    // Allocation. type is any integer (DRAGON_MEMORY_ALLOC_DATA etc. are named ones).
    Memory alloc(std::size_t bytes, std::uint64_t type = DRAGON_MEMORY_ALLOC_DATA) const;
    // Waits for space up to *timeout (nullptr, or one too long for the clock: forever);
    // the timeout bounds a wait for the pool's lock too (lock_wait.hpp).
    Memory alloc_blocking(std::size_t bytes, std::uint64_t type, const timespec* timeout) const;
    Memory from_id(std::uint64_t id, std::uint64_t offset = 0,
                   std::optional<std::size_t> length = std::nullopt) const;
    bool allocation_exists(std::uint64_t id) const;
    std::vector<AllocationInfo> allocations(std::optional<std::uint64_t> type = std::nullopt) const;
    // A listing in pages, for pools too large to copy whole: fills `out` with at most
    // `max` live allocations (of `type` when given) from manifest slot `cursor` on
    // (start at 0), in slot order, and moves `cursor` on; returns false once the end was
    // reached (`out` may still hold the last page). The lock is held for one page only,
    // so an allocation live throughout the listing is listed exactly once, and one made
    // or freed meanwhile may or may not be. The pages read are dropped from this
    // process's mappings again, so that listing a million allocations does not keep the
    // manifest's 64 MB resident in the lister.
    bool allocations_page(std::uint64_t& cursor, std::size_t max, std::vector<AllocationInfo>& out,
                          std::optional<std::uint64_t> type = std::nullopt) const;
    // One live allocation's record (block size included); KEY_NOT_FOUND when not live.
    AllocationInfo allocation_info(std::uint64_t id) const;
    // The block an allocation of `bytes` takes (the request rounded up to whole 64 B
    // granules, or minimum blocks when those are larger, then to the next size class:
    // less than 1/16 more; man 3 libdragonmem); 0 for the zero-byte allocation, which has
    // no block.
    std::size_t block_bytes_for(std::size_t bytes) const;

    PoolAttributes attributes() const;
    std::vector<FreeBlockCount> free_blocks() const;  // smallest block size first
    CheckReport check() const;
    void* base_pointer() const;  // start of the heap
    std::size_t heap_bytes() const;

    const detail::PoolRef& ref() const noexcept { return ref_; }
    explicit Pool(detail::PoolRef ref) noexcept : ref_(std::move(ref)) {}

private:
    detail::PoolRef ref_;
};

}  // namespace dragonmem
