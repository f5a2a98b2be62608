// dragonmem::Pool's listings for large pools (pages of allocations, one allocation's
// record, block sizes): what the dragonmem command needs to stream a million allocations.
#include <dragonmem/pool.hpp>

#include "os/error.hpp"
#include "descr/operations.hpp"

namespace dragonmem {

using detail::throw_if_failed;

bool Pool::allocations_page(std::uint64_t& cursor, std::size_t max, std::vector<AllocationInfo>& out,
                            std::optional<std::uint64_t> type) const {
    bool done = false;
    throw_if_failed(detail::pool_allocations_page(ref_, "get_allocations", type, cursor, max == 0 ? 1 : max, out, done));
    return !done;
}

AllocationInfo Pool::allocation_info(std::uint64_t id) const {
    AllocationInfo out;
    throw_if_failed(detail::pool_allocation_info(ref_, "from_id", id, out));
    return out;
}

std::size_t Pool::block_bytes_for(std::size_t bytes) const {
    if (bytes == 0) return 0;
    std::size_t out = 0;
    throw_if_failed(detail::pool_block_bytes_for(ref_, "get_size", bytes, out));
    return out;
}

}  // namespace dragonmem
