// The operations layer: the one way into the core for the C API, the C++ API and (through
// the C++ API) the command-line tool. Every operation on a pool or an allocation named by
// a descriptor is here: it validates the descriptor (empty, destroyed, remote), runs the
// operation on the mapped pool (pool/pool_mapping.hpp, which no API file includes), and
// returns a dragonError_t with the thread's last-error message set on failure.
// pool_operations.cpp implements the pool calls, memory_operations.cpp the allocation ones.
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

// ---- pools: descriptors
const PoolIdentity* identity_of(const PoolRef& pool) noexcept;  // nullptr when empty
bool pool_is_local(const PoolRef& pool) noexcept;
// Local, and not destroyed (by this process or another). Sets the last error when not.
bool pool_is_usable_here(const PoolRef& pool);
// Whether the pool belongs to this process's runtime, whatever the host (Dragon's meaning).
bool pool_runtime_is_local(const PoolRef& pool) noexcept;
dragonError_t pool_require_valid(const PoolRef& pool, const char* op);
// A valid, local, not destroyed pool; `op` names the call in messages.
dragonError_t pool_require_local(const PoolRef& pool, const char* op);
// The POSIX shm object that holds pool `base_name` (pool/pool_name.hpp; no check of the name).
std::string pool_shm_name(std::string_view base_name);

dragonError_t pool_create(PoolRef& out, std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                          const PoolOptions& options);
dragonError_t pool_attach(PoolRef& out, std::span<const std::uint8_t> serialized);
dragonError_t pool_attach_identity(PoolRef& out, PoolIdentity identity);  // already decoded
dragonError_t pool_attach_base64(PoolRef& out, std::string_view base64);
dragonError_t pool_attach_env(PoolRef& out, const char* env_var);
dragonError_t pool_attach_local(PoolRef& out, std::string_view name);
dragonError_t pool_list_local(std::vector<std::string>& names);
dragonError_t pool_force_remove(std::string_view name);
// `with_secret` false: the format-1 form, without the pool's secret and agent (attaches
// on this node, grants nothing off it): what listings print.
dragonError_t pool_serialize(const PoolRef& pool, std::vector<std::uint8_t>& out, bool with_secret = true);
dragonError_t pool_destroy(PoolRef& pool);  // empties `pool` on success
dragonError_t pool_clone(PoolRef& out, const PoolRef& pool);

// ---- pools: what a local pool holds (each first does pool_require_local(pool, op))
// `who_is_alive`: also the creator and attached processes (one /proc read per process
// attached); the C calls, whose structs have no place for them, leave it out.
dragonError_t pool_attributes(const PoolRef& pool, const char* op, PoolAttributes& out, bool who_is_alive = true);
dragonError_t pool_allocations(const PoolRef& pool, const char* op, std::optional<std::uint64_t> type,
                               std::vector<AllocationInfo>& out);  // by id
dragonError_t pool_free_blocks(const PoolRef& pool, const char* op, std::vector<FreeBlockCount>& out);
dragonError_t pool_check(const PoolRef& pool, const char* op, CheckReport& out);
// Whether a local pool is a GPU pool (its bytes device memory).
dragonError_t pool_on_gpu(const PoolRef& pool, const char* op, bool& out);
// Page-locks a local host pool's heap for GPU transfers (on) or undoes it (PoolMapping).
dragonError_t pool_register_with_gpu(const PoolRef& pool, bool on);
// The heap's size, and (when `base` is not null) where its bytes start in this process: a
// GPU pool's device region is opened for that (PoolMapping::data_base).
dragonError_t pool_heap(const PoolRef& pool, const char* op, void** base, std::uint64_t& bytes);
// Whether allocation `id` is live (id 0, the zero-byte allocation, never is).
dragonError_t pool_allocation_exists(const PoolRef& pool, const char* op, std::uint64_t id, bool& out);
// Up to `max` live allocations from manifest slot `cursor` on (advanced past them), holding
// the lock for one page at a time; `done` once the manifest's end is reached.
dragonError_t pool_allocations_page(const PoolRef& pool, const char* op, std::optional<std::uint64_t> type,
                                    std::uint64_t& cursor, std::size_t max, std::vector<AllocationInfo>& out,
                                    bool& done);
// One live allocation's record (KEY_NOT_FOUND when `id` is not live).
dragonError_t pool_allocation_info(const PoolRef& pool, const char* op, std::uint64_t id, AllocationInfo& out);
// The heap block a request of `bytes` (> 0) takes.
dragonError_t pool_block_bytes_for(const PoolRef& pool, const char* op, std::size_t bytes, std::size_t& out);

// ---- allocations
// Sets every field of `out` on success (the C API fills a table entry in place with it:
// whatever the entry held before is overwritten); leaves `out` as it was on failure.
// `out` must hold no pool reference (a new MemoryRef or an erased table entry).
dragonError_t mem_alloc(MemoryRef& out, const PoolRef& pool, std::size_t bytes, std::uint64_t type, bool blocking,
                        const timespec* timeout);
dragonError_t mem_require_valid(const MemoryRef& mem, const char* op);
// A (counted) pool descriptor for the allocation's pool.
dragonError_t mem_pool(const MemoryRef& mem, const char* op, PoolRef& out);
dragonError_t mem_free(const MemoryRef& mem);
dragonError_t mem_pointer(const MemoryRef& mem, void*& out);
dragonError_t mem_clone(MemoryRef& out, const MemoryRef& mem, std::ptrdiff_t offset, const std::size_t* length);
dragonError_t mem_serialize(const MemoryRef& mem, std::vector<std::uint8_t>& out, bool with_secret = true);
dragonError_t mem_attach(MemoryRef& out, std::span<const std::uint8_t> serialized);
dragonError_t mem_attach_base64(MemoryRef& out, std::string_view base64);
dragonError_t mem_from_id(MemoryRef& out, const PoolRef& pool, std::uint64_t id, std::uint64_t offset,
                          const std::uint64_t* length);
dragonError_t mem_exists(const MemoryRef& mem, bool& out);
dragonError_t mem_modify_size(MemoryRef& mem, std::size_t bytes, const timespec* timeout);

}  // namespace dragonmem::detail
