// The allocation and free of a local pool, inline: the C API's dragon_memory_alloc and
// dragon_memory_free (and the C++ API's Pool::alloc, Memory::free) compile into one
// function each over PoolMapping::alloc / free, with no call frame of their own in
// between. An alloc+free pair costs about as much again as the heap's own work in
// call frames, register saves and reloads of what the caller already had, so this is
// half the pair (docs/design.md §6). Only the common case is here; empty, remote,
// destroyed or detached descriptors and zero-byte requests go to mem_alloc / the slow
// checks of mapped_pool.hpp, which explain.
//
// This header is the operations layer's (it sees a PoolMapping); the API layer uses
// the two functions below and nothing else of it.
#pragma once

#include "descr/mapped_pool.hpp"
#include "descr/operations.hpp"

#include <cassert>

namespace dragonmem::detail {

// A field the pool has just written with a plain 8-byte store, read on its own. GCC
// merges adjacent copies of a BlockInfo into 16-byte loads, and a 16-byte load that
// spans two fresh 8-byte stores cannot be forwarded from the store buffer: it waits for
// both to reach the cache. Passing each value through a register keeps the loads 8
// bytes wide.
inline std::uint64_t load_each(const std::uint64_t& field) noexcept {
    std::uint64_t value = field;
    asm("" : "+r"(value));
    return value;
}

// The descriptor of a block `mapping` has just allocated: every field of `out` is set
// (it may be a reused table entry); `out.pool` must be empty (a new MemoryRef, or a
// table entry, which erase leaves without one). It borrows the mapping (no count): the
// caller holds a pool descriptor, and the epoch tells later calls whether the mapping
// is still this one.
inline void fill_allocated(MemoryRef& out, PoolMapping* mapping, const BlockInfo& block) noexcept {
    assert(!out.pool.valid());
    out.mapping = mapping;
    out.mapping_epoch = mapping->epoch();
    out.id = load_each(block.id);
    out.type = load_each(block.type);
    out.block_offset = load_each(block.offset);
    out.requested_bytes = load_each(block.requested_bytes);
    out.view_offset = 0;
    out.view_bytes = out.requested_bytes;
}

// mem_alloc (operations.hpp), same contract: every field of `out` set on success, `out`
// untouched on failure; `out.pool` empty.
inline dragonError_t mem_alloc_inline(MemoryRef& out, const PoolRef& pool, std::size_t bytes, std::uint64_t type,
                                      bool blocking, const timespec* timeout) {
    PoolMapping* mapping = pool.mapping.get();
    if (mapping == nullptr || bytes == 0) [[unlikely]]
        return mem_alloc(out, pool, bytes, type, blocking, timeout);
    if (dragonError_t rc = mapping->check_usable(blocking ? "alloc_blocking" : "alloc")) [[unlikely]]
        return rc;
    BlockInfo block;
    if (dragonError_t rc = mapping->alloc(bytes, type, blocking, timeout, block)) return rc;
    fill_allocated(out, mapping, block);
    return DRAGON_SUCCESS;
}

// mem_free (operations.hpp).
inline dragonError_t mem_free_inline(const MemoryRef& mem) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = mem_require_local(mem, "free", mapping)) [[unlikely]]
        return rc;
    return mapping->free(mem.id);
}

}  // namespace dragonmem::detail
