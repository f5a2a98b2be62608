// The C API's descriptor tables: dragonMemoryPoolDescr_t / dragonMemoryDescr_t carry a
// key into these process-local tables of PoolRef / MemoryRef values.
#pragma once

#include <dragon/managed_memory.h>
#include <dragonmem/detail/refs.hpp>

namespace dragonmem::detail {

dragonError_t find_pool(const dragonMemoryPoolDescr_t* descr, const char* op, PoolRef*& out);
dragonError_t find_memory(const dragonMemoryDescr_t* descr, const char* op, MemoryRef*& out);
// Store a value and point the descriptor at it.
dragonError_t store_pool(dragonMemoryPoolDescr_t* descr, PoolRef&& ref);
dragonError_t store_memory(dragonMemoryDescr_t* descr, MemoryRef&& ref);
// Forget the descriptor's value (detach); false if it was not valid.
bool erase_pool(const dragonMemoryPoolDescr_t* descr);
bool erase_memory(const dragonMemoryDescr_t* descr);

}  // namespace dragonmem::detail
