// Listings that scale: the live allocations page by page (the lock held for one page at a
// time), and one allocation's record by id. Read-only: nothing here changes the pool.
#include "pool/pool_mapping.hpp"

#include "os/error.hpp"
#include "os/shm_segment.hpp"

#include <new>

namespace dragonmem::detail {

dragonError_t PoolMapping::list_page(std::optional<std::uint64_t> type, std::uint64_t& cursor, std::size_t max,
                                     std::vector<AllocationInfo>& out, bool& done) {
    if (dragonError_t rc = check_usable("get_allocations")) return rc;
    out.clear();
    done = false;
    try {
        out.reserve(max);  // no allocation under the lock
    } catch (const std::bad_alloc&) {
        return fail(DRAGON_INTERNAL_MALLOC_FAIL, "out of memory listing allocations");
    }
    if (dragonError_t rc = lock()) return rc;
    const std::uint64_t extent = manifest_.used_extent();
    const std::uint64_t start = cursor;
    std::uint64_t slot = cursor;
    for (; slot < extent && out.size() < max; ++slot) {
        const ManifestRecord& rec = manifest_.record(slot);
        const std::uint64_t id = rec.id.load(std::memory_order_acquire);
        if (!is_live_id(id)) continue;
        const std::uint64_t rec_type = rec.type.load(std::memory_order_relaxed);
        if (type && rec_type != *type) continue;
        const std::uint64_t requested = rec.requested_bytes.load(std::memory_order_relaxed);
        out.push_back(AllocationInfo{id, rec_type, rec.offset.load(std::memory_order_relaxed), requested,
                                     heap_.block_bytes_for(requested)});
    }
    unlock();
    cursor = slot;
    done = slot >= extent;
    if (slot > start) shm_drop_local_pages(&manifest_.record(start), &manifest_.record(slot - 1) + 1);
    return DRAGON_SUCCESS;
}

dragonError_t PoolMapping::allocation_info(std::uint64_t id, AllocationInfo& out) {
    BlockInfo block;
    if (dragonError_t rc = lookup(id, block)) return rc;
    out = AllocationInfo{block.id, block.type, block.offset, block.requested_bytes,
                         heap_.block_bytes_for(block.requested_bytes)};
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
