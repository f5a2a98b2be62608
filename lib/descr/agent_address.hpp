// The address of a node's remote agent (`dragonmem serve`), "HOST:PORT", as descriptors
// carry it (descriptor_codec.hpp) and DRAGONMEM_AGENT gives it at serialize time.
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace dragonmem::detail {

// The environment variable naming this node's agent: descriptors of local pools
// serialized while it is set carry it, so that another node can reach the pool.
inline constexpr const char* k_agent_env = "DRAGONMEM_AGENT";

// HOST is an IPv4 address, a host name ([A-Za-z0-9._-]) or an IPv6 address in brackets;
// PORT is 1..65535 in decimal; at most 63 characters in all. INVALID_ARGUMENT naming
// `what` and the value otherwise.
dragonError_t validate_agent_address(std::string_view address, const char* what);
// Splits a valid address (brackets of an IPv6 host removed). `port_zero_ok`: port 0 is
// accepted (an address to listen on: any free port).
dragonError_t split_agent_address(std::string_view address, const char* what, std::string& host, std::uint16_t& port,
                                  bool port_zero_ok = false);

// The identity a descriptor of `pool` is serialized with: a local pool's with the agent
// from DRAGONMEM_AGENT (when set and not empty: an invalid value is INVALID_ARGUMENT),
// a remote one's as it was decoded; `with_secret` false: neither secret nor agent.
dragonError_t identity_to_serialize(const PoolIdentity& pool, bool local, bool with_secret, PoolIdentity& out);

}  // namespace dragonmem::detail
