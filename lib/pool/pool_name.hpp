// Pool names: the one place that knows what a pool may be called and which POSIX shm
// object holds it. Pure (no I/O).
#pragma once

#include <dragon/return_codes.h>

#include <string>
#include <string_view>

namespace dragonmem::detail {

// Every object of pool <name> is /dev/shm/dragonmem.<name>: `dragonmem ls` lists them by
// this prefix.
inline constexpr std::string_view k_shm_prefix = "dragonmem.";

// Checks a base name: 1-29 chars of [A-Za-z0-9._-], not starting with '.' or '-'.
// INVALID_ARGUMENT naming the name and the rule it breaks.
dragonError_t validate_pool_name(std::string_view name);

// "dragonmem.<base>" (no check of the name).
std::string shm_name_for(std::string_view base_name);
// The base name in a shm name made by shm_name_for; empty when it has no prefix.
std::string_view base_name_of(std::string_view shm_name) noexcept;

}  // namespace dragonmem::detail
