// Which UCX transports the agent may use (plain code: unit-tested in every build).
#pragma once

#include <dragon/return_codes.h>

#include <string>

namespace dragonmem::detail {

// The UCX_TLS the agent runs with, from the environment's `tls` (nullptr: unset):
// UCX's shared-memory transports left out (their remote keys name memory of local
// processes, which a client would choose: a forged key would have the agent read or
// write another process's memory). Unset: "^shm"; a "^..." list gets shm added to it;
// a list naming a shared-memory transport (or "all") is INVALID_ARGUMENT naming it.
dragonError_t agent_transports(const char* tls, std::string& out);

}  // namespace dragonmem::detail
