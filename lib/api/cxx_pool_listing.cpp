// dragonmem::Pool's listings for large pools (pages of allocations, one allocation's
// record, block sizes): what the dragonmem command needs to stream a million allocations.
#include <dragonmem/pool.hpp>

#include "descr/descriptor_ops.hpp"
#include "descr/error.hpp"
#include "pool/pool_mapping.hpp"

namespace dragonmem {

using detail::throw_if_failed;

namespace {

detail::PoolMapping* local_mapping(const detail::PoolRef& ref, const char* op) {
    detail::PoolMapping* mapping = nullptr;
    throw_if_failed(detail::pool_require_local(ref, op, mapping));
    return mapping;
}

}  // namespace

bool Pool::allocations_page(std::uint64_t& cursor, std::size_t max, std::vector<AllocationInfo>& out,
                            std::optional<std::uint64_t> type) const {
    bool done = false;
    throw_if_failed(local_mapping(ref_, "get_allocations")->list_page(type, cursor, max == 0 ? 1 : max, out, done));
    return !done;
}

AllocationInfo Pool::allocation_info(std::uint64_t id) const {
    AllocationInfo out;
    throw_if_failed(local_mapping(ref_, "from_id")->allocation_info(id, out));
    return out;
}

std::size_t Pool::block_bytes_for(std::size_t bytes) const {
    if (bytes == 0) return 0;
    return std::size_t{1} << local_mapping(ref_, "get_size")->order_for(bytes);
}

}  // namespace dragonmem
