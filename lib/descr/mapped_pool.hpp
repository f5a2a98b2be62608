// The mapped pool behind a descriptor, for the operations layer's own files only
// (pool_operations.cpp, memory_operations.cpp): the API layer goes through operations.hpp
// and never sees a PoolMapping.
#pragma once

#include "pool/pool_mapping.hpp"

#include <dragonmem/detail/refs.hpp>

namespace dragonmem::detail {

// The mapping of a valid, local, not destroyed pool; `op` names the call in messages.
dragonError_t pool_require_local(const PoolRef& pool, const char* op, PoolMapping*& out);
// The mapping of a valid, local, still attached and not destroyed allocation's pool.
dragonError_t mem_require_local(const MemoryRef& mem, const char* op, PoolMapping*& out);

}  // namespace dragonmem::detail
