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
// one-sided access (RMA) and active messages (the control exchange). `agent` adds the
// worker's event file descriptor, which the agent sleeps on when idle, and leaves out
// UCX's shared-memory transports (agent_transports()).
class UcxWorker {
public:
    UcxWorker() = default;
    UcxWorker(const UcxWorker&) = delete;
    UcxWorker& operator=(const UcxWorker&) = delete;
    ~UcxWorker();
    dragonError_t open(bool agent, const char* who);
    ucp_context_h context() const noexcept { return context_; }
    ucp_worker_h worker() const noexcept { return worker_; }

private:
    ucp_context_h context_ = nullptr;
    ucp_worker_h worker_ = nullptr;
};

// Progresses `worker` until `request` (the return of a *_nbx call) completes or
// `deadline` (nullopt: none) passes. Returns the request's status (and frees it), or
// UCS_ERR_TIMED_OUT with the request still running in `*pending`: the caller closes its
// endpoint (which completes it), then calls finish_request.
ucs_status_t wait_request(ucp_worker_h worker, ucs_status_ptr_t request, const std::optional<timespec>& deadline,
                          ucs_status_ptr_t* pending);
// Progresses `worker` until `request` completes and frees it: for requests whose
// endpoint was force-closed, which complete at once. Bounded all the same (10 s): a
// request UCX never completes is left to it (not freed) rather than hanging the caller.
void finish_request(ucp_worker_h worker, ucs_status_ptr_t request);


// "HOST:PORT" (agent_address.hpp) resolved to a socket address (the first getaddrinfo
// result; `listening`: port 0 allowed). INVALID_ARGUMENT / NOT_FOUND naming the address
// otherwise.
dragonError_t resolve_agent_address(const std::string& address, const char* what, bool listening,
                                    sockaddr_storage& out, socklen_t& out_len);
// "HOST:PORT" of a socket address (numeric host; IPv6 in brackets).
std::string format_sockaddr(const sockaddr* address, socklen_t length);

}  // namespace dragonmem::detail
