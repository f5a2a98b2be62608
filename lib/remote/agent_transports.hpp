// Whether the agent and the client may use UCX at all, and which of its transports
// (plain code: unit-tested in every build).
//
// Trusted fabrics only, on every transport: DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 is the
// operator's statement that every host that can reach this one's UCX ports is trusted;
// without it the agent and every client refuse to open UCX. UCX 1.13 gives any peer that
// completes its wire-up more than dragonmem's secret can guard:
// - its software transports execute remote memory writes from any peer at the address the
//   peer names, whatever the UCP features asked for: TCP (uct/tcp/tcp_ep.c,
//   uct_tcp_ep_handle_put_req) and UD, which is in UCX's default set on InfiniBand and
//   pulled in by the rc and dc aliases as an auxiliary transport (uct/ib/ud/base/ud_ep.c,
//   uct_ud_ep_rx_put); tests/remote/raw_put.cpp shows it over TCP;
// - its reassembly of large eager active messages (ucp/core/ucp_am.c, the middle-fragment
//   handling) copies a fragment to the offset the peer announces without checking it
//   against the announced size: a peer with a patched libucp writes where it likes in the
//   heap of the process, on every transport (rc and dc included). dragonmem's data path
//   is eager active messages (design.md 3.4), so it depends on that code.
// dragonmem cannot fix either in UCX; the secret in a descriptor guards against honest
// mistakes, not against anyone who can run code on a host that reaches the fabric.
//
// Shared memory: never for the agent (their rendezvous moves bytes by address between
// processes of one node (cma, knem, xpmem): a local peer would name memory of the agent's,
// or of another process, for UCX to read or write).
#pragma once

#include <dragon/return_codes.h>

#include <string>
#include <vector>

namespace dragonmem::detail {

inline constexpr const char* k_trusted_fabric_env = "DRAGONMEM_REMOTE_TRUSTED_FABRIC";

// DRAGONMEM_REMOTE_TRUSTED_FABRIC's `value` (nullptr: unset): "1" trusted; unset, "" or
// "0" not; anything else INVALID_ARGUMENT naming it.
dragonError_t trusted_fabric_from(const char* value, bool& out);

// The refusal when the fabric is not stated trusted: INVALID_OPERATION saying why and
// naming DRAGONMEM_REMOTE_TRUSTED_FABRIC. `who` starts the message.
dragonError_t refuse_untrusted_fabric(const char* who);

// The UCX_TLS to run with, from the environment's `tls` (nullptr: unset); "" leaves UCX's
// configuration as it is. The agent leaves out the shared-memory transports: unset gives
// "^shm", a "^..." list gets shm added, a list naming one (or "all") is INVALID_ARGUMENT
// naming it. `who` starts the messages.
dragonError_t ucx_transports(const char* tls, bool agent, const char* who, std::string& out);

// What UCX actually opened, its `resources` ("transport/device", as
// ucp_context_print_info lists a context's): INVALID_OPERATION naming them unless one
// reaches another node (tcp, or a verbs transport: rc_*, ud_*, dc_*), and, for the
// `agent`, if one is a shared-memory or GPU-IPC transport (whatever UCX_TLS said: this is
// the check that counts, ucx_transports only asks UCX to leave them out).
dragonError_t check_opened_transports(const std::vector<std::string>& resources, bool agent, const char* who);

}  // namespace dragonmem::detail
