// Which UCX transports the agent may use (plain code: unit-tested in every build).
#pragma once

#include <dragon/return_codes.h>

#include <string>

namespace dragonmem::detail {

// The UCX_TLS the agent runs with, from the environment's `tls` (nullptr: unset):
// UCX's shared-memory transports left out (their rendezvous moves bytes by address
// between processes of one node (cma, knem, xpmem): a local peer would name memory of
// the agent's, or of another process, for UCX to read or write). Unset: "^shm"; a "^..." list gets shm added to it;
// a list naming a shared-memory transport (or "all") is INVALID_ARGUMENT naming it.
dragonError_t agent_transports(const char* tls, std::string& out);

}  // namespace dragonmem::detail
