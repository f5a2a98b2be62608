// Process-local pools (Dragon's dragon_create_process_local_pool and the register /
// deregister pair). Dragon hands such a pool to its runtime, which destroys it when the
// process ends. Here the pool records its owner (the process's start-stamped pid, in the
// pool header: pool_layout.hpp local_owner) and this process destroys the pools it owns
// at normal exit (atexit). An owner that dies without exiting normally leaves an orphan:
// attributes() says process_local with owner_alive false, and `dragonmem ls` shows it.
// Nothing here ever destroys a pool whose owner lives.
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>
#include <dragonmem/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dragonmem::detail {

// Makes this process the owner of `pool` (local). Registering a pool it already owns
// succeeds; one owned by another live process is INVALID_OPERATION naming that process;
// one whose owner died is taken over.
dragonError_t pool_register_process_local(const PoolRef& pool);
// Gives up ownership: the pool outlives this process. INVALID_OPERATION when this process
// does not own it.
dragonError_t pool_deregister_process_local(const PoolRef& pool);
// pool_create then pool_register_process_local; on failure, nothing is left.
dragonError_t pool_create_process_local(PoolRef& out, std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                                        const PoolOptions& options);

}  // namespace dragonmem::detail
