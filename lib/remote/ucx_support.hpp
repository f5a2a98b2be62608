// What the agent and the client share of UCX: a context and worker owned together, the
// wait for a non-blocking request, and socket addresses from "HOST:PORT".
#pragma once

#include "remote/agent_transports.hpp"

#include <dragon/return_codes.h>

#include <ucp/api/ucp.h>

#include <sys/socket.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace dragonmem::detail {

// A UCP context with one single-threaded worker; both released together. Features:
// active messages (requests, replies and the bytes) and wake-up (an event file
// descriptor to sleep on when idle); no one-sided access (RMA), on purpose (.cpp).
// Opened only with DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 (read at open; INVALID_OPERATION
// saying why otherwise, agent_transports.hpp). Transports: `agent` leaves out UCX's
// shared-memory ones; the transports UCX opened are checked after ucp_init, and a context
// with a shared-memory one (the agent) or none that reaches another node is
// INVALID_OPERATION naming them (nothing is kept open). Zero-copy sends are off (.cpp).
class UcxWorker {
public:
    UcxWorker() = default;
    UcxWorker(const UcxWorker&) = delete;
    UcxWorker& operator=(const UcxWorker&) = delete;
    ~UcxWorker() { close(); }
    dragonError_t open(bool agent, const char* who);
    void close() noexcept;  // the worker and context released (open may be called again)
    ucp_context_h context() const noexcept { return context_; }
    ucp_worker_h worker() const noexcept { return worker_; }
    // Progresses the worker once; after a few turns that found nothing to do, sleeps on
    // the worker's event descriptor (at most 1 ms) instead of spinning: on a machine
    // with fewer cores than busy processes, a spinning waiter holds the core its peer
    // needs to answer (a remote read over TCP took ~10 ms per call on 2 loaded cores).
    void progress_or_sleep();
    // Active messages of `id` go to `callback` with `arg`. FAILURE "`who`: setting the
    // `what` handler failed: ..." if UCX refuses.
    dragonError_t set_handler(unsigned id, ucp_am_recv_callback_t callback, void* arg, const char* who,
                              const char* what);

private:
    int event_fd_ = -1;  // -1: none (then the CPU is yielded instead)
    unsigned idle_turns_ = 0;
    ucp_context_h context_ = nullptr;
    ucp_worker_h worker_ = nullptr;
};

// DRAGONMEM_REMOTE_TRUSTED_FABRIC as now set in the environment (trusted_fabric_from).
dragonError_t trusted_fabric_now(bool& out);

// Progresses `ucx`'s worker (progress_or_sleep) until `request` (the return of a
// *_nbx call) completes or `deadline` (nullopt: none) passes. Returns the request's status (and frees it), or
// UCS_ERR_TIMED_OUT with the request still running in `*pending`: the caller closes its
// endpoint (which completes it), then calls finish_request.
ucs_status_t wait_request(UcxWorker& ucx, ucs_status_ptr_t request, const std::optional<timespec>& deadline,
                          ucs_status_ptr_t* pending);
// Progresses `worker` until `request` completes and frees it: for requests whose
// endpoint was force-closed, which complete at once. Bounded all the same (10 s): a
// request UCX never completes is left to it (not freed) rather than hanging the caller.
void finish_request(ucp_worker_h worker, ucs_status_ptr_t request);
// Progresses `worker` until `request` completes, then frees it, however long that takes:
// for requests that read or write a caller's memory (a client's buffer), which must not
// be left to UCX when the call returns. What completes a send is its endpoint's forced
// close, which callers do first (ucp_ep_close_nbx with UCP_EP_CLOSE_FLAG_FORCE completes
// every request still on the endpoint, with an error); ucp_request_cancel, called on a
// request still running, cancels only receives in UCX 1.13 and does nothing for a send.
void finish_request_now(ucp_worker_h worker, ucs_status_ptr_t request);


// "HOST:PORT" (agent_address.hpp) resolved to a socket address (the first getaddrinfo
// result; `listening`: port 0 allowed). A numeric host resolves at once; a name is
// looked up within `deadline` (nullopt: however long the resolver takes), TIMEOUT past
// it. INVALID_ARGUMENT / NOT_FOUND naming the address otherwise.
dragonError_t resolve_agent_address(const std::string& address, const char* what, bool listening,
                                    const std::optional<timespec>& deadline, sockaddr_storage& out,
                                    socklen_t& out_len);
// "HOST:PORT" of a socket address (numeric host; IPv6 in brackets).
std::string format_sockaddr(const sockaddr* address, socklen_t length);

}  // namespace dragonmem::detail
