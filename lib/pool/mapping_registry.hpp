// This process's registry of mapped pools: attaching a pool that is already mapped here
// shares the mapping (reference counted) instead of mapping it again.
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>
#include <dragonmem/types.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace dragonmem::detail {

// Creates a pool and registers its mapping.
dragonError_t registry_create(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                              const PoolOptions& options, MappingRef& out);

// The mapping of shm object `shm_name`, shared if this process has it already.
// `expected_nonce` (non-zero) pins the pool instance a descriptor refers to.
dragonError_t registry_attach(const std::string& shm_name, std::uint64_t expected_nonce, MappingRef& out);

// Drops `mapping` from the registry if it is the registered one (destroy, last release).
void registry_forget(PoolMapping* mapping) noexcept;

}  // namespace dragonmem::detail
