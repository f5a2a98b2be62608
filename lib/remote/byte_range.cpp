// Byte ranges of allocations, local or remote (byte_range.hpp).
#include "remote/byte_range.hpp"

#include "descr/memory_copy.hpp"
#include "descr/operations.hpp"
#include "os/error.hpp"
#include "remote/remote_client.hpp"

#include <algorithm>
#include <cstring>

namespace dragonmem::detail {

namespace {

dragonError_t transfer(const MemoryRef& mem, std::size_t offset, void* buffer, std::size_t bytes, Access access,
                       const timespec* timeout) {
    const char* op = access == Access::read ? "memory_read" : "memory_write";
    if (dragonError_t rc = mem_require_valid(mem, op)) return rc;
    if (offset > mem.view_bytes || bytes > mem.view_bytes - offset)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "{}: {} B from offset {} do not fit the {} B view of allocation id {}; nothing was {}", op, bytes,
                     offset, mem.view_bytes, mem.id, access == Access::read ? "read" : "written");
    if (bytes != 0 && buffer == nullptr) return failf(DRAGON_INVALID_ARGUMENT, "{}: the buffer is NULL", op);
    if (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000))
        return failf(DRAGON_INVALID_ARGUMENT, "{}: timeout {{{}, {}}} is not a valid timespec", op, timeout->tv_sec,
                     timeout->tv_nsec);
    if (mem.mapping != nullptr || pool_is_local(mem.pool)) {
        // The manifest's block, or why not; a GPU pool's through a CUDA copy (memory_copy.hpp).
        return access == Access::read ? mem_read(mem, offset, buffer, bytes) : mem_write(mem, offset, buffer, bytes);
    }
    const PoolIdentity& pool = *identity_of(mem.pool);
    if (std::all_of(pool.secret.begin(), pool.secret.end(), [](std::uint8_t b) { return b == 0; }))
        return failf(DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL,
                     "{}: allocation id {} of pool '{}' is on host {:#x}, and its descriptor (format 1) carries no "
                     "secret: serialize it again with this version of dragonmem",
                     op, mem.id, pool.name, pool.hostid);
    if (pool.agent.empty())
        return failf(DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL,
                     "{}: allocation id {} of pool '{}' is on host {:#x}, and its descriptor names no agent: serialize "
                     "it on that host with DRAGONMEM_AGENT=HOST:PORT of its `dragonmem serve`",
                     op, mem.id, pool.name, pool.hostid);
    if (mem.id == 0) return DRAGON_SUCCESS;  // the zero-byte allocation: nothing to move
    RemoteRange range;
    range.id = mem.id;
    range.offset = mem.view_offset + offset;
    range.length = bytes;
    return remote_transfer(pool, range, buffer, access, timeout);
}

}  // namespace

dragonError_t mem_read_range(const MemoryRef& mem, std::size_t offset, void* out, std::size_t bytes,
                             const timespec* timeout) {
    return transfer(mem, offset, out, bytes, Access::read, timeout);
}

dragonError_t mem_write_range(const MemoryRef& mem, std::size_t offset, const void* in, std::size_t bytes,
                              const timespec* timeout) {
    // The remote put reads from the buffer only; the one signature serves both ways.
    return transfer(mem, offset, const_cast<void*>(in), bytes, Access::write, timeout);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}

}  // namespace dragonmem::detail
