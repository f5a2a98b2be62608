// Reading and writing a byte range of an allocation named by a descriptor, wherever it
// is: a copy when the pool is mapped here, a UCX transfer through the agent
// the descriptor names otherwise (remote_client.hpp). The C and C++ APIs' remote calls.
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>

#include <cstddef>
#include <ctime>

namespace dragonmem::detail {

// [offset, offset + bytes) of the descriptor's view; checked before anything moves.
dragonError_t mem_read_range(const MemoryRef& mem, std::size_t offset, void* out, std::size_t bytes,
                             const timespec* timeout);
dragonError_t mem_write_range(const MemoryRef& mem, std::size_t offset, const void* in, std::size_t bytes,
                              const timespec* timeout);

}  // namespace dragonmem::detail
