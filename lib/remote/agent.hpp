// The node's agent (`dragonmem serve`): serves this node's pools to other nodes over
// UCX. It listens on HOST:PORT; a client's access request (wire.hpp, an active
// message) names a pool, its instance and secret, an allocation id and a byte range (a
// write's bytes come as the message's data). The agent attaches the pool (as its own
// uid: what that uid may not open, it cannot serve), checks the secret, that the
// allocation is live in the manifest and the range within its requested size, and only
// then moves bytes: a read's reply carries the range as its data, sent from the pool; a
// write's data is received straight into the range (or dropped, when refused). Neither
// side's UCX offers one-sided access (no UCP_FEATURE_RMA) and no key to any memory is
// exchanged: a client reaches exactly the live allocations of the pools whose secret it
// holds, and only through these checks. A pool destroyed while served is dropped within
// 200 ms (its transfers still running keep it mapped until they end).
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/remote.hpp>

namespace dragonmem::detail {

// Runs until *options.stop (or forever). Fails at once on a bad address or a UCX that
// cannot listen; once listening, bad requests are answered, never fatal.
dragonError_t run_agent(const AgentOptions& options);

}  // namespace dragonmem::detail
