// The C API's descriptor tables: dragonMemoryPoolDescr_t / dragonMemoryDescr_t carry a
// key into these process-local tables of PoolRef / MemoryRef values. Lookups are inline
// (a bounds check, one load, one compare): they are on every call's path.
#pragma once

#include "os/error.hpp"
#include "api/handle_table.hpp"

#include <dragon/managed_memory.h>
#include <dragonmem/detail/refs.hpp>

namespace dragonmem::detail {

// A memory descriptor's value holds a resource only when made by attach (its pool
// reference); every other field is overwritten by the next insert (mem_alloc sets them
// all), so erasing one releases that reference and writes nothing else.
inline void drop_value(MemoryRef& value) noexcept {
    if (value.pool.valid()) [[unlikely]]
        value.pool = PoolRef{};
}

// The two tables (c_api_handles.cpp): constant-initialised, never destroyed.
extern constinit HandleTable<PoolRef> g_pool_table;
extern constinit HandleTable<MemoryRef> g_memory_table;

inline constexpr int k_descr_original = 1;

// Why a lookup failed (out of line: the message is built only then).
[[gnu::cold]] dragonError_t explain_pool_not_found(const dragonMemoryPoolDescr_t* descr, const char* op);
[[gnu::cold]] dragonError_t explain_memory_not_found(const dragonMemoryDescr_t* descr, const char* op);

inline dragonError_t find_pool(const dragonMemoryPoolDescr_t* descr, const char* op, PoolRef*& out) {
    out = descr != nullptr ? g_pool_table.find(descr->_idx) : nullptr;
    if (out == nullptr) [[unlikely]]
        return explain_pool_not_found(descr, op);
    return DRAGON_SUCCESS;
}

inline dragonError_t find_memory(const dragonMemoryDescr_t* descr, const char* op, MemoryRef*& out) {
    out = descr != nullptr ? g_memory_table.find(descr->_idx) : nullptr;
    if (out == nullptr) [[unlikely]]
        return explain_memory_not_found(descr, op);
    return DRAGON_SUCCESS;
}

// Store a value and point the descriptor at it.
dragonError_t store_pool(dragonMemoryPoolDescr_t* descr, PoolRef&& ref);
dragonError_t store_memory(dragonMemoryDescr_t* descr, MemoryRef&& ref);

// A memory descriptor built in place: reserve_memory() takes a table entry whose value
// the caller fills (every field: it holds what the entry's last erase left), then
// publish_memory() points the descriptor at it, or g_memory_table.unreserve() gives it
// back.
using MemorySlot = HandleTable<MemoryRef>::Slot;
inline dragonError_t reserve_memory(MemorySlot& slot) {
    if (!g_memory_table.reserve(slot)) [[unlikely]]
        return fail(DRAGON_INTERNAL_MALLOC_FAIL, "no memory left for another memory descriptor");
    return DRAGON_SUCCESS;
}
inline void publish_memory(dragonMemoryDescr_t* descr, const MemorySlot& slot) noexcept {
    descr->_original = k_descr_original;
    descr->_idx = g_memory_table.publish(slot);
}

// find_memory keeping what erase needs: for the calls that end the descriptor (free).
using FoundMemory = HandleTable<MemoryRef>::Found;
inline dragonError_t find_memory_entry(const dragonMemoryDescr_t* descr, const char* op, FoundMemory& out) {
    if (descr != nullptr) out = g_memory_table.lookup(descr->_idx);
    if (!out) [[unlikely]]
        return explain_memory_not_found(descr, op);
    return DRAGON_SUCCESS;
}

// Forget the descriptor's value (detach); false if it was not valid.
bool erase_pool(const dragonMemoryPoolDescr_t* descr);
bool erase_memory(const dragonMemoryDescr_t* descr);

}  // namespace dragonmem::detail
