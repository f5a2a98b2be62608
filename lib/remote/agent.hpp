// The node's agent (`dragonmem serve`): serves this node's pools to other nodes over
// UCX. It listens on HOST:PORT; a client's access request (wire.hpp) names a pool, its
// instance and secret, an allocation id, a byte range, and a buffer of the client's
// with a remote key covering exactly that buffer. The agent attaches the pool (as its
// own uid: what that uid may not open, it cannot serve), checks the secret, that the
// allocation is live in the manifest and the range within its requested size, then
// itself puts the range into the client's buffer (a read) or gets it from there (a
// write), one-sided, and answers when the transfer is complete. No key to pool memory
// ever leaves the agent: a client reaches exactly the live allocations of the pools
// whose secret it holds, and only through these checks. A pool destroyed while served
// is dropped within 200 ms.
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/remote.hpp>

namespace dragonmem::detail {

// Runs until *options.stop (or forever). Fails at once on a bad address or a UCX that
// cannot listen; once listening, bad requests are answered, never fatal.
dragonError_t run_agent(const AgentOptions& options);

}  // namespace dragonmem::detail
