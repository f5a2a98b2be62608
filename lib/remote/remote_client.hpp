// The client side of off-node access: one UCX worker per process, one endpoint per agent
// (kept between calls). A transfer goes in pieces of at most 1 MiB, 4 in flight; a piece
// is one active message each way: the request (a write's bytes as its data, sent from
// the caller's buffer), and the agent's reply (a read's bytes as its data, copied into the
// caller's buffer out of UCX's). Both are sent
// eagerly, never by rendezvous (which hands the peer a key to the buffer's memory), so no
// key or address of either side's memory is exchanged, and neither side's UCX offers
// one-sided access. UCX is opened only where the operator says the fabric is trusted
// (DRAGONMEM_REMOTE_TRUSTED_FABRIC=1, agent_transports.hpp says why).
#pragma once

#include "remote/wire.hpp"

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>

#include <cstdint>
#include <ctime>

namespace dragonmem::detail {

struct RemoteRange {
    std::uint64_t id = 0;
    std::uint64_t offset = 0;  // from the allocation's first byte
    std::uint64_t length = 0;
};

// Reads (Access::read, into `buffer`) or writes (from `buffer`) `range` of an allocation
// of `pool` through the agent the descriptor names (pool.agent, non-empty; pool.secret
// set). `timeout` (relative; nullptr: none) bounds the whole call: TIMEOUT when it
// passes, the endpoint dropped so that nothing of the call is left running. A lost
// agent is FAILURE naming it; the agent's refusals come back with its code and message.
// Calls of one process are serialized; a call waits for the one before it only within
// its own timeout (TIMEOUT, nothing sent).
dragonError_t remote_transfer(const PoolIdentity& pool, const RemoteRange& range, void* buffer, Access access,
                              const timespec* timeout);

// Whether this library was built with UCX.
bool remote_built_in() noexcept;

}  // namespace dragonmem::detail
