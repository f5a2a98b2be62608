// Which UCX transports the agent and the client may use (plain code: unit-tested in every
// build).
//
// Shared memory: never for the agent (their rendezvous moves bytes by address between
// processes of one node (cma, knem, xpmem): a local peer would name memory of the agent's,
// or of another process, for UCX to read or write).
//
// TCP: only where the operator states that the fabric is trusted,
// DRAGONMEM_REMOTE_TRUSTED_TCP=1. UCX 1.13's TCP transport handles the PUT requests of
// any peer that connects to its port (the listener's, and the one every worker opens) by
// copying the peer's bytes to the address the peer names, whatever the UCP features asked
// for (uct_tcp_ep_handle_put_req: no key, no bounds): any host that can reach the port
// can write anywhere in the process (tests/remote/raw_put.cpp shows it). dragonmem
// cannot fix that in UCX; it refuses to run over TCP unless told that only trusted hosts
// can reach these ports. The verbs transports (rc, ud, dc: InfiniBand, RoCE) need no
// opt-in.
#pragma once

#include <dragon/return_codes.h>

#include <string>
#include <vector>

namespace dragonmem::detail {

inline constexpr const char* k_trusted_tcp_env = "DRAGONMEM_REMOTE_TRUSTED_TCP";

// DRAGONMEM_REMOTE_TRUSTED_TCP's `value` (nullptr: unset): "1" trusted; unset, "" or "0"
// not; anything else INVALID_ARGUMENT naming it.
dragonError_t trusted_tcp_from(const char* value, bool& out);

// The UCX_TLS to run with, from the environment's `tls` (nullptr: unset); "" leaves UCX's
// configuration as it is. The agent leaves out the shared-memory transports: unset gives
// "^shm", a "^..." list gets shm added, a list naming one (or "all") is INVALID_ARGUMENT
// naming it. Without `trusted_tcp`, tcp is left out likewise ("^tcp", "^shm,tcp", or
// added to a "^..." list), and a list naming tcp (or "all") is INVALID_OPERATION naming it
// and DRAGONMEM_REMOTE_TRUSTED_TCP. `who` starts the messages.
dragonError_t ucx_transports(const char* tls, bool agent, bool trusted_tcp, const char* who, std::string& out);

// Whether UCX's `resources` ("transport/device", as ucp_context_print_info lists them)
// include one that reaches another node: tcp (only `trusted_tcp`: it is left out
// otherwise) or a verbs transport (rc_*, ud_*, dc_*). INVALID_OPERATION naming them and,
// without `trusted_tcp`, why TCP is not used, otherwise.
dragonError_t check_network_transports(const std::vector<std::string>& resources, bool trusted_tcp, const char* who);

}  // namespace dragonmem::detail
