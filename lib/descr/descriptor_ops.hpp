// The operations behind every descriptor, shared by the C API and the C++ API: each
// validates its descriptor (empty, destroyed, remote) and returns a dragonError_t with
// the thread's last-error message set on failure.
#pragma once

#include <dragon/managed_memory.h>
#include <dragonmem/detail/refs.hpp>
#include <dragonmem/types.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem::detail {

// ---- pools
const PoolIdentity* identity_of(const PoolRef& pool) noexcept;  // nullptr when empty
bool pool_is_local(const PoolRef& pool) noexcept;
// The mapping of a valid, local, not destroyed pool; `op` names the call in messages.
dragonError_t pool_require_local(const PoolRef& pool, const char* op, PoolMapping*& out);
dragonError_t pool_require_valid(const PoolRef& pool, const char* op);

dragonError_t pool_create(PoolRef& out, std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                          const PoolOptions& options);
dragonError_t pool_attach(PoolRef& out, std::span<const std::uint8_t> serialized);
dragonError_t pool_attach_identity(PoolRef& out, PoolIdentity identity);  // already decoded
dragonError_t pool_attach_base64(PoolRef& out, std::string_view base64);
dragonError_t pool_attach_env(PoolRef& out, const char* env_var);
dragonError_t pool_attach_local(PoolRef& out, std::string_view name);
dragonError_t pool_list_local(std::vector<std::string>& names);
dragonError_t pool_force_remove(std::string_view name);
dragonError_t pool_serialize(const PoolRef& pool, std::vector<std::uint8_t>& out);
dragonError_t pool_destroy(PoolRef& pool);  // empties `pool` on success
dragonError_t pool_clone(PoolRef& out, const PoolRef& pool);

// ---- allocations
struct BlockInfo;
dragonError_t mem_alloc(MemoryRef& out, const PoolRef& pool, std::size_t bytes, std::uint64_t type, bool blocking,
                        const timespec* timeout);
// mem_alloc in two steps, so the C API can build the descriptor in place in its table:
// the allocation (a zero-byte one is id 0, no block), then the descriptor's fields.
dragonError_t mem_alloc_block(const PoolRef& pool, std::size_t bytes, std::uint64_t type, bool blocking,
                              const timespec* timeout, PoolMapping*& mapping, BlockInfo& block);
void fill_allocated(MemoryRef& out, PoolMapping* mapping, const BlockInfo& block) noexcept;
dragonError_t mem_require_valid(const MemoryRef& mem, const char* op);
// The mapping of a valid, local, still attached and not destroyed allocation's pool.
dragonError_t mem_require_local(const MemoryRef& mem, const char* op, PoolMapping*& out);
// A (counted) pool descriptor for the allocation's pool.
dragonError_t mem_pool(const MemoryRef& mem, const char* op, PoolRef& out);
dragonError_t mem_free(const MemoryRef& mem);
dragonError_t mem_pointer(const MemoryRef& mem, void*& out);
dragonError_t mem_clone(MemoryRef& out, const MemoryRef& mem, std::ptrdiff_t offset, const std::size_t* length);
dragonError_t mem_serialize(const MemoryRef& mem, std::vector<std::uint8_t>& out);
dragonError_t mem_attach(MemoryRef& out, std::span<const std::uint8_t> serialized);
dragonError_t mem_attach_base64(MemoryRef& out, std::string_view base64);
dragonError_t mem_from_id(MemoryRef& out, const PoolRef& pool, std::uint64_t id, std::uint64_t offset,
                          const std::uint64_t* length);
dragonError_t mem_exists(const MemoryRef& mem, bool& out);
dragonError_t mem_modify_size(MemoryRef& mem, std::size_t bytes, const timespec* timeout);

}  // namespace dragonmem::detail
