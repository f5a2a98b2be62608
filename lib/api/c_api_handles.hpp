// The C API's descriptor tables: dragonMemoryPoolDescr_t / dragonMemoryDescr_t carry a
// key into these process-local tables of PoolRef / MemoryRef values.
#pragma once

#include "os/error.hpp"
#include "api/handle_table.hpp"

#include <dragon/managed_memory.h>
#include <dragonmem/detail/refs.hpp>

namespace dragonmem::detail {

dragonError_t find_pool(const dragonMemoryPoolDescr_t* descr, const char* op, PoolRef*& out);
dragonError_t find_memory(const dragonMemoryDescr_t* descr, const char* op, MemoryRef*& out);
// Store a value and point the descriptor at it.
dragonError_t store_pool(dragonMemoryPoolDescr_t* descr, PoolRef&& ref);
dragonError_t store_memory(dragonMemoryDescr_t* descr, MemoryRef&& ref);

// The table behind memory descriptors (leaked on purpose: descriptors may be used from
// atexit handlers and other statics).
HandleTable<MemoryRef>& memory_table();
inline constexpr int k_descr_original = 1;

// store_memory, with the value filled in place by `fill(MemoryRef&)` (see insert_with).
template <typename Fill>
dragonError_t store_memory_with(dragonMemoryDescr_t* descr, Fill&& fill) {
    std::uint64_t key = memory_table().insert_with(fill);
    if (key == 0) return fail(DRAGON_INTERNAL_MALLOC_FAIL, "no memory left for another memory descriptor");
    descr->_original = k_descr_original;
    descr->_idx = key;
    return DRAGON_SUCCESS;
}
// Forget the descriptor's value (detach); false if it was not valid.
bool erase_pool(const dragonMemoryPoolDescr_t* descr);
bool erase_memory(const dragonMemoryDescr_t* descr);

}  // namespace dragonmem::detail
