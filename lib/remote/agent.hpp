// The node's agent (`dragonmem serve`): exports this node's pools to other nodes over
// UCX. It listens on HOST:PORT; a client's access request (wire.hpp) names a pool, its
// instance and secret, an allocation id and a byte range; the agent attaches the pool
// (as its own uid: what that uid may not open, it cannot serve), checks the secret, that
// the allocation is live in the manifest and the range within it, registers the pool's
// heap with UCX once (ucp_mem_map) and answers with the range's address and the packed
// remote key. The client then gets or puts the bytes itself; the agent is off the data
// path. A pool destroyed while exported is revoked within 200 ms: its registration is
// dropped and the endpoints it was granted to are closed (their transfers fail).
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/remote.hpp>

namespace dragonmem::detail {

// Runs until *options.stop (or forever). Fails at once on a bad address or a UCX that
// cannot listen; once listening, bad requests are answered, never fatal.
dragonError_t run_agent(const AgentOptions& options);

}  // namespace dragonmem::detail
