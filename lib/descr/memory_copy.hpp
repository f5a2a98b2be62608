// Operations on the bytes of allocations, named by descriptors: copy, clear, hash,
// compare. Shared by the C API (lib/api/c_api_copy.cpp) and the C++ API (Memory). Each
// works on a descriptor's view, validates it as get_pointer does (the block comes from
// the manifest record) and, on bad input, fails before touching any pool.
#pragma once

#include <dragon/managed_memory.h>
#include <dragonmem/detail/refs.hpp>

#include <cstddef>
#include <cstdint>
#include <ctime>

namespace dragonmem::detail {

// The first `bytes` of `from`'s view into `to`'s view (memmove: views of one allocation
// may overlap). Both local; `bytes` at most either view's size. Either may be in a GPU
// pool: the copy is then the CUDA copy of the kind the two places call for (host to device,
// device to host, device to device, or peer between two devices).
dragonError_t mem_copy(const MemoryRef& from, const MemoryRef& to, std::size_t bytes);
// A new allocation in `pool` of `from`'s view size (waiting for space up to *timeout,
// nullptr: forever), holding a copy of it. On failure nothing is allocated.
dragonError_t mem_copy_to_pool(MemoryRef& out, const MemoryRef& from, const PoolRef& pool, const timespec* timeout);
// Zeroes [start, stop) of the view; stop is clamped to the view's size (Dragon's callers
// pass SIZE_MAX for "to the end"); start beyond the view or stop < start fail.
dragonError_t mem_clear(const MemoryRef& mem, std::size_t start, std::size_t stop);
// Dragon's hash of the view's bytes (32-bit MurmurHash3, its seed): equal bytes give
// equal values in both libraries. A zero-byte view has none (INVALID_ARGUMENT, as Dragon).
dragonError_t mem_hash(const MemoryRef& mem, std::uint64_t& out);
// Whether the two views hold the same bytes (different sizes: false).
dragonError_t mem_equal(const MemoryRef& a, const MemoryRef& b, bool& out);
// Whether the two descriptors are the same view of the same allocation of the same pool
// instance.
dragonError_t mem_is(const MemoryRef& a, const MemoryRef& b, bool& out);
// Host bytes in and out of a view, whatever memory the view is in (a GPU pool's bytes are
// device memory: a CUDA copy): `bytes` at `offset` of the view, which must lie inside it.
dragonError_t mem_read(const MemoryRef& mem, std::size_t offset, void* to, std::size_t bytes);
dragonError_t mem_write(const MemoryRef& mem, std::size_t offset, const void* from, std::size_t bytes);
// Whether the view's bytes are GPU device memory (a DRAGON_MEMORY_TYPE_GPU pool's).
dragonError_t mem_on_device(const MemoryRef& mem, bool& out);
// The view's local pointer (nullptr for zero bytes) and size, in one call. A GPU pool's
// pointer is a device pointer.
dragonError_t mem_ptr_info(const MemoryRef& mem, void*& ptr, std::size_t& bytes);

}  // namespace dragonmem::detail
