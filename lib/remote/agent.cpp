// The agent's loop: connections, access requests, agent-initiated transfers (agent.hpp).
#include "remote/agent.hpp"

#include "descr/operations.hpp"
#include "os/deadline.hpp"
#include "os/error.hpp"
#include "remote/ucx_support.hpp"
#include "remote/wire.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

namespace dragonmem::detail {

namespace {

constexpr std::int64_t k_pool_check_ns = 200'000'000;  // how often served pools are checked for destroy
constexpr int k_idle_poll_ms = 100;                       // the longest sleep: `stop` is seen this soon
// How long one transfer may take before the agent gives up on its client (closes the
// connection) and serves the others: the agent serves one transfer at a time.
constexpr std::int64_t k_transfer_limit_ns = 30'000'000'000;
constexpr std::uint64_t k_rma_piece_bytes = 4 << 20;  // a transfer's bytes go in pieces of this size
// A client's packed key is parsed by UCX without a length: it is copied into this much
// zeroed room first, more than the largest key UCX can describe (64 memory domains of
// at most 255 B each, and their headers), so that a malformed key is read as zeros past
// its end, never as the agent's memory.
constexpr std::size_t k_rkey_room = 64 * 1024;

// A pool this agent has attached. Its heap is registered with UCX for the agent's own
// (local) side of the transfers; the registration's key is never packed or sent.
struct ServedPool {
    PoolRef pool;
    const PoolIdentity* identity = nullptr;  // the mapping's: nonce, secret
    void* heap = nullptr;
    std::uint64_t heap_bytes = 0;
    ucp_mem_h registration = nullptr;
};

struct IncomingRequest {
    ucp_ep_h reply_ep = nullptr;
    std::vector<std::uint8_t> bytes;
    std::size_t arrived_bytes = 0;  // as sent: more than a request holds is refused, not copied
    bool rendezvous = false;        // sent by rendezvous (not eagerly): refused, not fetched
};

struct OutgoingReply {
    ucs_status_ptr_t request = nullptr;
    std::unique_ptr<std::vector<std::uint8_t>> bytes;  // alive until UCX is done with it
};

// Constant time in the secret's bytes: how many match must not show in the reply time.
bool same_secret(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b) {
    unsigned diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
    return diff == 0;
}

class Agent {
public:
    explicit Agent(const AgentOptions& options) : options_(options) {}
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;
    ~Agent() { shut_down(); }
    dragonError_t run();

private:
    static void on_connection(ucp_conn_request_h request, void* arg) {
        static_cast<Agent*>(arg)->connection_requests_.push_back(request);
    }
    static void on_endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t /*status*/) {
        static_cast<Agent*>(arg)->failed_endpoints_.push_back(ep);
    }
    static ucs_status_t on_request(void* arg, const void* header, std::size_t header_bytes, void* data,
                                   std::size_t length, const ucp_am_recv_param_t* param);

    dragonError_t listen();
    void accept_connections();
    void close_endpoint(ucp_ep_h ep);
    void close_failed_endpoints();
    void serve_requests();
    dragonError_t serve(const AccessRequest& request, ucp_ep_h ep, bool& connection_closed);
    dragonError_t move_bytes(const ServedPool& served, std::uint8_t* first, const AccessRequest& request, ucp_ep_h ep,
                             bool& connection_closed);
    dragonError_t attach_pool(const AccessRequest& request, ServedPool*& out);
    void drop_pool(const std::string& name, const char* why);
    void drop_destroyed_pools();
    void send_reply(ucp_ep_h ep, const AccessReply& reply);
    void reap_replies();
    void event(const std::string& line) const {
        if (options_.on_event) options_.on_event(line);
    }
    bool stopping() const { return options_.stop != nullptr && options_.stop->load(std::memory_order_relaxed); }
    void shut_down();

    const AgentOptions& options_;
    UcxWorker ucx_;
    ucp_listener_h listener_ = nullptr;
    std::string address_;
    std::vector<ucp_conn_request_h> connection_requests_;
    std::vector<ucp_ep_h> failed_endpoints_;
    std::vector<IncomingRequest> requests_;
    std::vector<OutgoingReply> replies_;
    std::set<ucp_ep_h> endpoints_;
    std::map<std::string, ServedPool> pools_;
    std::vector<std::uint8_t> rkey_room_ = std::vector<std::uint8_t>(k_rkey_room);
};

ucs_status_t Agent::on_request(void* arg, const void* /*header*/, std::size_t /*header_bytes*/, void* data,
                               std::size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<Agent*>(arg);
    // One without a reply endpoint cannot be answered.
    if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) return UCS_OK;
    IncomingRequest incoming;
    incoming.reply_ep = param->reply_ep;
    incoming.arrived_bytes = length;
    // Requests are sent eagerly; one sent by rendezvous is answered with a refusal (its
    // data is not fetched; returning UCS_OK lets UCX drop it). Copied only when it can be
    // a request: `data` is UCX's only during this call. Served from the loop, not from
    // inside UCX's progress.
    incoming.rendezvous = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    if (!incoming.rendezvous && length <= k_request_max_bytes) {
        const auto* bytes = static_cast<const std::uint8_t*>(data);
        incoming.bytes.assign(bytes, bytes + length);
    }
    self->requests_.push_back(std::move(incoming));
    return UCS_OK;
}

dragonError_t Agent::listen() {
    sockaddr_storage address{};
    socklen_t address_len = 0;
    if (dragonError_t rc = resolve_agent_address(options_.listen, "serve --listen", true, std::nullopt, address, address_len)) return rc;
    if (dragonError_t rc = ucx_.open(true, "serve")) return rc;
    ucp_am_handler_param_t handler{};
    handler.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    handler.id = k_am_request;
    handler.cb = &Agent::on_request;
    handler.arg = this;
    if (ucs_status_t st = ucp_worker_set_am_recv_handler(ucx_.worker(), &handler); st != UCS_OK)
        return failf(DRAGON_FAILURE, "serve: setting the request handler failed: {}", ucs_status_string(st));
    ucp_listener_params_t params{};
    params.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
    params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&address);
    params.sockaddr.addrlen = address_len;
    params.conn_handler.cb = &Agent::on_connection;
    params.conn_handler.arg = this;
    if (ucs_status_t st = ucp_listener_create(ucx_.worker(), &params, &listener_); st != UCS_OK) {
        listener_ = nullptr;
        return failf(DRAGON_FAILURE, "serve: cannot listen on '{}': {}", options_.listen, ucs_status_string(st));
    }
    ucp_listener_attr_t attr{};
    attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
    if (ucp_listener_query(listener_, &attr) == UCS_OK)
        address_ = format_sockaddr(reinterpret_cast<const sockaddr*>(&attr.sockaddr), sizeof attr.sockaddr);
    else
        address_ = options_.listen;
    return DRAGON_SUCCESS;
}

void Agent::accept_connections() {
    for (ucp_conn_request_h request : std::exchange(connection_requests_, {})) {
        ucp_ep_params_t params{};
        params.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                            UCP_EP_PARAM_FIELD_ERR_HANDLER;
        params.conn_request = request;
        params.err_mode = UCP_ERR_HANDLING_MODE_PEER;  // a client that dies is noticed and closed
        params.err_handler.cb = &Agent::on_endpoint_error;
        params.err_handler.arg = this;
        ucp_ep_h ep = nullptr;
        if (ucs_status_t st = ucp_ep_create(ucx_.worker(), &params, &ep); st != UCS_OK) {
            event(fmt::format("connection refused: ucp_ep_create failed: {}", ucs_status_string(st)));
            continue;
        }
        endpoints_.insert(ep);
    }
}

void Agent::close_endpoint(ucp_ep_h ep) {
    if (endpoints_.erase(ep) == 0) return;  // closed already
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = UCP_EP_CLOSE_FLAG_FORCE;
    finish_request(ucx_.worker(), ucp_ep_close_nbx(ep, &params));
}

void Agent::close_failed_endpoints() {
    for (ucp_ep_h ep : std::exchange(failed_endpoints_, {})) close_endpoint(ep);
}

void Agent::serve_requests() {
    for (IncomingRequest& incoming : std::exchange(requests_, {})) {
        if (endpoints_.count(incoming.reply_ep) == 0) continue;  // its client is gone
        AccessRequest request;
        AccessReply reply;
        bool connection_closed = false;
        dragonError_t rc = DRAGON_SUCCESS;
        if (incoming.rendezvous)
            rc = failf(DRAGON_INVALID_ARGUMENT, "access request of {} bytes sent by rendezvous: requests are sent eagerly",
                       incoming.arrived_bytes);
        else if (incoming.bytes.size() != incoming.arrived_bytes)
            rc = failf(DRAGON_INVALID_ARGUMENT, "access request of {} bytes: a request has {} at most",
                       incoming.arrived_bytes, k_request_max_bytes);
        else
            rc = decode_request(incoming.bytes, request);
        if (rc == DRAGON_SUCCESS) rc = serve(request, incoming.reply_ep, connection_closed);
        const char* access = request.access == Access::write ? "write" : "read";
        reply.sequence = request.sequence;
        reply.rc = rc;
        if (rc != DRAGON_SUCCESS) {
            reply.message = last_error_message();
            event(fmt::format("refused {} of pool '{}' id {} [{}, +{}]: {} {}", access, request.pool_name, request.id,
                              request.offset, request.length, dragon_get_rc_string(rc), reply.message));
        } else {
            event(fmt::format("served {} of pool '{}' id {} [{}, +{}]", access, request.pool_name, request.id,
                              request.offset, request.length));
        }
        if (!connection_closed) send_reply(incoming.reply_ep, reply);
    }
}

// Whether `request` names this instance of the pool and presents its secret.
dragonError_t check_capability(const PoolIdentity& pool, const AccessRequest& request) {
    if (pool.nonce != request.nonce)
        return failf(DRAGON_OBJECT_DESTROYED,
                     "pool '{}' here is instance {:#x}, the descriptor's was {:#x}: that pool was destroyed (and a "
                     "pool of the same name made since)",
                     pool.name, pool.nonce, request.nonce);
    if (!same_secret(pool.secret, request.secret))
        return failf(DRAGON_INVALID_ARGUMENT,
                     "the secret presented for pool '{}' is wrong: the descriptor is forged or damaged; nothing was "
                     "moved",
                     pool.name);
    return DRAGON_SUCCESS;
}

// The pool `request` names, attached and registered for the agent's side of transfers;
// the capability is checked before anything is registered, so that a forged request
// cannot make the agent register (on RDMA: pin) the heap of any pool its uid may open.
dragonError_t Agent::attach_pool(const AccessRequest& request, ServedPool*& out) {
    const std::string& name = request.pool_name;
    if (auto it = pools_.find(name); it != pools_.end()) {
        if (pool_is_usable_here(it->second.pool)) {
            out = &it->second;
            return check_capability(*it->second.identity, request);
        }
        drop_pool(name, "destroyed");  // perhaps made again since: attach anew
    }
    ServedPool served;
    if (dragonError_t rc = pool_attach_local(served.pool, name)) return rc;
    served.identity = identity_of(served.pool);
    if (dragonError_t rc = check_capability(*served.identity, request)) return rc;  // detached on return
    if (dragonError_t rc = pool_heap(served.pool, "serve", served.heap, served.heap_bytes)) return rc;
    ucp_mem_map_params_t map{};
    map.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    map.address = served.heap;
    map.length = served.heap_bytes;
    if (ucs_status_t st = ucp_mem_map(ucx_.context(), &map, &served.registration); st != UCS_OK)
        return failf(DRAGON_FAILURE, "serve: registering the {} B heap of pool '{}' with UCX failed: {}",
                     served.heap_bytes, name, ucs_status_string(st));
    event(fmt::format("attached pool '{}' ({} B heap)", name, served.heap_bytes));
    out = &(pools_[name] = std::move(served));
    return DRAGON_SUCCESS;
}

dragonError_t Agent::serve(const AccessRequest& request, ucp_ep_h ep, bool& connection_closed) {
    ServedPool* served = nullptr;
    if (dragonError_t rc = attach_pool(request, served)) return rc;
    const PoolIdentity& pool = *served->identity;
    // Allocation ids are never reused (the pool's id counter only grows), so a live id
    // is the descriptor's allocation: a freed one, or its block given to another since,
    // is refused here.
    AllocationInfo info;
    if (dragonError_t rc = pool_allocation_info(served->pool, "serve", request.id, info)) {
        if (rc != DRAGON_KEY_NOT_FOUND) return rc;
        return failf(DRAGON_KEY_NOT_FOUND, "allocation id {} of pool '{}' is not live (freed); nothing was moved",
                     request.id, pool.name);
    }
    // Within the bytes asked for at allocation (not the buddy block's rounding).
    if (request.offset > info.size || request.length > info.size - request.offset)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "{} B from offset {} are outside allocation id {} of pool '{}' ({} B); nothing was moved",
                     request.length, request.offset, request.id, pool.name, info.size);
    if (info.offset > served->heap_bytes || info.size > served->heap_bytes - info.offset)
        return failf(DRAGON_INVALID_STATE, "allocation id {} of pool '{}' at {} (+{} B) is outside the {} B heap (a damaged manifest record)",
                     request.id, pool.name, info.offset, info.size, served->heap_bytes);
    if (request.length == 0) return DRAGON_SUCCESS;
    auto* first = static_cast<std::uint8_t*>(served->heap) + info.offset + request.offset;
    if (request.access == Access::write) {
        // A remote write lands in pages this process writes through UCX; a page /dev/shm
        // cannot back would be a SIGBUS here. Back the range first (the kernel refuses
        // cleanly), as the library backs what it writes itself (pool_backing.hpp). EINVAL:
        // a kernel before 5.14, without MADV_POPULATE_WRITE; the range is then not backed.
        const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
        const std::uintptr_t into_page = reinterpret_cast<std::uintptr_t>(first) & (page - 1);
        std::uint8_t* start = first - into_page;  // madvise wants a page boundary
        if (::madvise(start, into_page + request.length, MADV_POPULATE_WRITE) != 0 && errno != EINVAL)
            return fail_errno(DRAGON_OUT_OF_SPACE, errno,
                              fmt::format("backing {} B of allocation id {} of pool '{}' for a remote write",
                                          request.length, request.id, pool.name));
    }
    return move_bytes(*served, first, request, ep, connection_closed);
}

// Puts [first, first + length) into the client's buffer (a read) or gets it from there
// (a write), in pieces all outstanding at once, and waits for all of it (the flush: every
// put is in the client's buffer, every get in the pool) within k_transfer_limit_ns. A
// failure or a timeout closes the client's connection (which completes what is still
// running, with an error): no reply can follow the bytes of an abandoned transfer.
dragonError_t Agent::move_bytes(const ServedPool& served, std::uint8_t* first, const AccessRequest& request,
                                ucp_ep_h ep, bool& connection_closed) {
    std::fill(rkey_room_.begin(), rkey_room_.end(), 0);
    std::copy(request.buffer_rkey.begin(), request.buffer_rkey.end(), rkey_room_.begin());
    ucp_rkey_h rkey = nullptr;
    if (ucs_status_t st = ucp_ep_rkey_unpack(ep, rkey_room_.data(), &rkey); st != UCS_OK)
        return failf(DRAGON_INVALID_ARGUMENT, "the client's buffer key of {} B does not unpack: {}; nothing was moved",
                     request.buffer_rkey.size(), ucs_status_string(st));
    ucp_worker_h worker = ucx_.worker();
    ucp_request_param_t rma{};
    rma.op_attr_mask = UCP_OP_ATTR_FIELD_MEMH;  // the pool side: registered once, at attach
    rma.memh = served.registration;
    const timespec deadline = deadline_after_ns(k_transfer_limit_ns);
    ucs_status_t st = UCS_OK;
    std::vector<ucs_status_ptr_t> posted;
    for (std::uint64_t done = 0; done < request.length && st == UCS_OK; done += k_rma_piece_bytes) {
        const std::uint64_t piece = std::min(k_rma_piece_bytes, request.length - done);
        ucs_status_ptr_t op = request.access == Access::read
                                  ? ucp_put_nbx(ep, first + done, piece, request.buffer_address + done, rkey, &rma)
                                  : ucp_get_nbx(ep, first + done, piece, request.buffer_address + done, rkey, &rma);
        if (UCS_PTR_IS_ERR(op)) st = UCS_PTR_STATUS(op);
        else if (op != nullptr) posted.push_back(op);
    }
    ucs_status_ptr_t pending = nullptr;
    if (st == UCS_OK) {
        ucp_request_param_t flush{};
        st = wait_request(ucx_, ucp_ep_flush_nbx(ep, &flush), deadline, &pending);
    }
    for (ucs_status_ptr_t op : posted) {
        const ucs_status_t piece_status = ucp_request_check_status(op);
        if (st == UCS_OK && piece_status != UCS_OK) st = piece_status == UCS_INPROGRESS ? UCS_ERR_IO_ERROR : piece_status;
    }
    if (st != UCS_OK) {
        close_endpoint(ep);  // completes every request still on it
        connection_closed = true;
    }
    finish_request(worker, pending);
    for (ucs_status_ptr_t op : posted) finish_request(worker, op);
    ucp_rkey_destroy(rkey);
    if (st == UCS_ERR_TIMED_OUT)
        return failf(DRAGON_TIMEOUT, "{} of {} B of pool '{}' did not complete within {} s; the connection was closed",
                     request.access == Access::read ? "the put" : "the get", request.length, request.pool_name,
                     k_transfer_limit_ns / 1'000'000'000);
    if (st != UCS_OK)
        return failf(DRAGON_FAILURE, "{} of {} B of pool '{}' failed: {}; the connection was closed",
                     request.access == Access::read ? "the put" : "the get", request.length, request.pool_name,
                     ucs_status_string(st));
    return DRAGON_SUCCESS;
}

void Agent::drop_pool(const std::string& name, const char* why) {
    auto it = pools_.find(name);
    if (it == pools_.end()) return;
    // Transfers run one at a time from the loop, so none uses the registration now.
    ucp_mem_unmap(ucx_.context(), it->second.registration);
    pools_.erase(it);
    event(fmt::format("dropped pool '{}': {}", name, why));
}

void Agent::drop_destroyed_pools() {
    std::vector<std::string> gone;
    for (const auto& [name, served] : pools_)
        if (!pool_is_usable_here(served.pool)) gone.push_back(name);
    for (const std::string& name : gone) drop_pool(name, "destroyed");
}

void Agent::send_reply(ucp_ep_h ep, const AccessReply& reply) {
    auto bytes = std::make_unique<std::vector<std::uint8_t>>(encode_reply(reply));
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = UCP_AM_SEND_FLAG_EAGER;
    ucs_status_ptr_t request = ucp_am_send_nbx(ep, k_am_reply, nullptr, 0, bytes->data(), bytes->size(), &params);
    if (request == nullptr) return;  // sent at once
    if (UCS_PTR_IS_ERR(request)) {
        event(fmt::format("reply lost: {}", ucs_status_string(UCS_PTR_STATUS(request))));
        return;
    }
    replies_.push_back({request, std::move(bytes)});
}

void Agent::reap_replies() {
    std::erase_if(replies_, [](OutgoingReply& reply) {
        if (ucp_request_check_status(reply.request) == UCS_INPROGRESS) return false;
        ucp_request_free(reply.request);
        return true;
    });
}

dragonError_t Agent::run() {
    if (dragonError_t rc = listen()) return rc;
    int event_fd = -1;
    if (ucs_status_t st = ucp_worker_get_efd(ucx_.worker(), &event_fd); st != UCS_OK)
        return failf(DRAGON_FAILURE, "serve: the UCX worker has no event descriptor: {}", ucs_status_string(st));
    if (options_.on_ready) options_.on_ready(address_);
    timespec next_check = deadline_after_ns(k_pool_check_ns);
    while (!stopping()) {
        while (ucp_worker_progress(ucx_.worker()) != 0) {
        }
        accept_connections();
        close_failed_endpoints();
        serve_requests();
        close_failed_endpoints();
        reap_replies();
        if (deadline_passed(next_check)) {
            drop_destroyed_pools();
            next_check = deadline_after_ns(k_pool_check_ns);
        }
        if (!connection_requests_.empty() || !requests_.empty() || !failed_endpoints_.empty()) continue;
        // Idle: sleep on the worker's descriptor until something arrives (or the next check).
        if (ucp_worker_arm(ucx_.worker()) == UCS_ERR_BUSY) continue;
        pollfd waiting{event_fd, POLLIN, 0};
        ::poll(&waiting, 1, k_idle_poll_ms);
    }
    return DRAGON_SUCCESS;
}

void Agent::shut_down() {
    if (ucx_.worker() == nullptr) return;
    const std::set<ucp_ep_h> open = endpoints_;
    for (ucp_ep_h ep : open) close_endpoint(ep);
    std::vector<std::string> names;
    for (const auto& [name, served] : pools_) names.push_back(name);
    for (const std::string& name : names) drop_pool(name, "the agent stops");
    for (OutgoingReply& reply : replies_) finish_request(ucx_.worker(), reply.request);
    replies_.clear();
    if (listener_ != nullptr) ucp_listener_destroy(listener_);
    listener_ = nullptr;
}

}  // namespace

dragonError_t run_agent(const AgentOptions& options) {
    try {
        Agent agent(options);
        return agent.run();
    } catch (const std::bad_alloc&) {
        return fail(DRAGON_INTERNAL_MALLOC_FAIL, "serve: out of memory");
    }
}

}  // namespace dragonmem::detail
