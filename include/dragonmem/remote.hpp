// Off-node access to allocations' bytes (C++): reading and writing a byte range of an
// allocation given its descriptor, on this node (a copy) or on another one (over UCX
// active messages, through the node's agent), and the agent itself, `dragonmem serve`.
// The C face is <dragonmem/remote.h>. README.md, "Off-node data", explains the model.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>
#include <dragonmem/memory.hpp>

#include <atomic>
#include <cstddef>
#include <ctime>
#include <functional>
#include <span>
#include <string>

namespace dragonmem {

// `memory`'s view from byte `offset` into `out` (all of it, or an Error): local views are
// copied, remote ones read from their node's agent. `timeout` (relative; nullptr: none)
// bounds a remote read. Throws Error: INVALID_ARGUMENT (out of the view), the agent's
// refusal (wrong secret, allocation not live, pool gone; EAGAIN: the agent is busy, try
// again), TIMEOUT, FAILURE (agent lost or connection rejected), INVALID_OPERATION
// (DRAGONMEM_REMOTE_TRUSTED_FABRIC is not 1: trusted fabrics only),
// MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL (a remote descriptor that names no agent),
// NOT_IMPLEMENTED (a remote one, in a library built without UCX). A remote transfer goes
// in pieces of at most 1 MiB (EAGAIN pieces sent again): an Error in a transfer of
// several pieces may leave part of the range moved.
void read_bytes(const Memory& memory, std::size_t offset, std::span<std::byte> out, const timespec* timeout = nullptr);
// `in` into `memory`'s view at byte `offset`; as read_bytes.
void write_bytes(const Memory& memory, std::size_t offset, std::span<const std::byte> in,
                 const timespec* timeout = nullptr);
// Whether this library can reach other nodes (built with UCX).
bool remote_available() noexcept;

// The agent: serves this node's pools to other nodes until `stop` becomes true. For
// trusted fabrics only: it refuses to start (INVALID_OPERATION) unless
// DRAGONMEM_REMOTE_TRUSTED_FABRIC=1, because any peer that reaches its UCX ports can write
// into its memory through UCX itself (software put on TCP and UD, and the reassembly of
// large messages on every transport; README "Trusted fabric"). GPU pools are not served
// (NOT_IMPLEMENTED). UCX reads its configuration from the environment (UCX_TLS,
// UCX_NET_DEVICES: without it UCX listens on every interface, ...); a port still held by
// connections of a previous run (TIME_WAIT) is taken again only with
// UCX_TCP_CM_REUSEADDR=y, which `dragonmem serve` sets unless it is set already.
// What the agent itself holds at once, each bounded: past a bound it refuses
// (DRAGON_EAGAIN replies saying which bound, a connection rejected, or a client that does
// not read its replies disconnected), never queues more. UCX's own buffers are not
// bounded by these: it allocates each incoming message at the size its sender announces,
// before the agent sees it. Each must be at least 1 (serve: INVALID_ARGUMENT naming it).
struct AgentLimits {
    std::size_t connections = 1024;        // client connections open; one more is rejected
    std::size_t requests_per_turn = 1024;  // requests taken in before the agent serves them; more: EAGAIN
    std::size_t transfers = 256;           // reads whose bytes are being sent; one more: EAGAIN
    std::size_t unread_replies = 64;       // replies to one client still being sent; one more: it is disconnected
};
struct AgentOptions {
    std::string listen;                     // "HOST:PORT" to listen on (port 0: any free port)
    AgentLimits limits;
    const std::atomic<bool>* stop = nullptr;  // polled at least every 100 ms; nullptr: forever
    // Called once, with the address actually listened on, when requests can come.
    std::function<void(const std::string& address)> on_ready;
    // Called with one line per request served or refused, and per pool attached or dropped.
    std::function<void(const std::string& line)> on_event;
};
void serve(const AgentOptions& options);

}  // namespace dragonmem
