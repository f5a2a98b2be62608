// The mapped pool behind a descriptor, for the operations layer's own files only
// (pool_operations.cpp, memory_operations.cpp, memory_copy.cpp...): the API layer goes
// through operations.hpp and never sees a PoolMapping.
//
// The checks are inline because every allocation and free starts with one: the common
// case is a few loads and compares (the pointer, the epoch, the two "destroyed" flags of
// check_usable); the messages are built out of line, only when a check fails.
#pragma once

#include "pool/pool_mapping.hpp"

#include <dragonmem/detail/refs.hpp>

namespace dragonmem::detail {

// Why pool_require_local failed on a descriptor with no mapping (empty or remote).
[[gnu::cold]] dragonError_t explain_pool_not_local(const PoolRef& pool, const char* op);
// mem_require_local for a descriptor without a live borrowed mapping (empty, remote, or
// its pool detached since): explains, or finds the mapping the slow way.
[[gnu::cold]] dragonError_t mem_require_local_slow(const MemoryRef& mem, const char* op, PoolMapping*& out);

// The mapping of a valid, local, not destroyed pool; `op` names the call in messages.
inline dragonError_t pool_require_local(const PoolRef& pool, const char* op, PoolMapping*& out) {
    PoolMapping* mapping = pool.mapping.get();
    if (mapping == nullptr) [[unlikely]]
        return explain_pool_not_local(pool, op);
    if (dragonError_t rc = mapping->check_usable(op)) [[unlikely]]
        return rc;
    out = mapping;
    return DRAGON_SUCCESS;
}

// The mapping of a valid, local, still attached and not destroyed allocation's pool. A
// borrowed mapping (MemoryRef::mapping) is this descriptor's only while its epoch holds.
inline dragonError_t mem_require_local(const MemoryRef& mem, const char* op, PoolMapping*& out) {
    PoolMapping* mapping = mem.mapping;
    if (mapping == nullptr || mapping->epoch() != mem.mapping_epoch) [[unlikely]]
        return mem_require_local_slow(mem, op, out);
    if (dragonError_t rc = mapping->check_usable(op)) [[unlikely]]
        return rc;
    out = mapping;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
