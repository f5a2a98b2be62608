// The agent's loop: connections, access requests, grants and revocations (agent.hpp).
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

#include <cerrno>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

namespace dragonmem::detail {

namespace {

constexpr std::int64_t k_revoke_check_ns = 200'000'000;  // how often exported pools are checked for destroy
constexpr int k_idle_poll_ms = 100;                       // the longest sleep: `stop` is seen this soon

// A pool this agent has attached and registered with UCX.
struct ExportedPool {
    PoolRef pool;
    const PoolIdentity* identity = nullptr;  // the mapping's: nonce, secret
    void* heap = nullptr;
    std::uint64_t heap_bytes = 0;
    ucp_mem_h registration = nullptr;
    std::vector<std::uint8_t> packed_rkey;
    std::set<ucp_ep_h> granted;  // endpoints that hold its key
};

struct IncomingRequest {
    ucp_ep_h reply_ep = nullptr;
    std::vector<std::uint8_t> bytes;
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
    dragonError_t grant(const AccessRequest& request, ucp_ep_h ep, AccessReply& reply);
    dragonError_t export_pool(const AccessRequest& request, ExportedPool*& out);
    void revoke(const std::string& name, const char* why);
    void revoke_destroyed_pools();
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
    std::map<std::string, ExportedPool> pools_;
};

ucs_status_t Agent::on_request(void* arg, const void* /*header*/, std::size_t /*header_bytes*/, void* data,
                               std::size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<Agent*>(arg);
    // Requests are small and eager; one without a reply endpoint cannot be answered.
    if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0 ||
        (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0)
        return UCS_OK;
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    // Copied: `data` is UCX's only during this call. Served from the loop, not from
    // inside UCX's progress.
    self->requests_.push_back({param->reply_ep, std::vector<std::uint8_t>(bytes, bytes + length)});
    return UCS_OK;
}

dragonError_t Agent::listen() {
    sockaddr_storage address{};
    socklen_t address_len = 0;
    if (dragonError_t rc = resolve_agent_address(options_.listen, "serve --listen", true, address, address_len)) return rc;
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
    for (auto& [name, exported] : pools_) exported.granted.erase(ep);
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
        dragonError_t rc = decode_request(incoming.bytes, request);
        if (rc == DRAGON_SUCCESS) {
            reply.sequence = request.sequence;
            rc = grant(request, incoming.reply_ep, reply);
        }
        const char* access = request.access == Access::write ? "write" : "read";
        if (rc != DRAGON_SUCCESS) {
            reply = AccessReply{};
            reply.sequence = request.sequence;
            reply.rc = rc;
            reply.message = last_error_message();
            event(fmt::format("refused {} of pool '{}' id {} [{}, +{}]: {} {}", access, request.pool_name, request.id,
                              request.offset, request.length, dragon_get_rc_string(rc), reply.message));
        } else {
            event(fmt::format("granted {} of pool '{}' id {} [{}, +{}]", access, request.pool_name, request.id,
                              request.offset, request.length));
        }
        send_reply(incoming.reply_ep, reply);
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
                     "granted",
                     pool.name);
    return DRAGON_SUCCESS;
}

// The pool `request` names, attached and registered; the capability is checked before
// anything is registered, so that a forged request cannot make the agent register (on
// RDMA: pin) the heap of any pool its uid may open.
dragonError_t Agent::export_pool(const AccessRequest& request, ExportedPool*& out) {
    const std::string& name = request.pool_name;
    if (auto it = pools_.find(name); it != pools_.end()) {
        if (pool_is_usable_here(it->second.pool)) {
            out = &it->second;
            return check_capability(*it->second.identity, request);
        }
        revoke(name, "destroyed");  // perhaps made again since: attach anew
    }
    ExportedPool exported;
    if (dragonError_t rc = pool_attach_local(exported.pool, name)) return rc;
    exported.identity = identity_of(exported.pool);
    if (dragonError_t rc = check_capability(*exported.identity, request)) return rc;  // detached on return
    if (dragonError_t rc = pool_heap(exported.pool, "serve", exported.heap, exported.heap_bytes)) return rc;
    ucp_mem_map_params_t map{};
    map.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    map.address = exported.heap;
    map.length = exported.heap_bytes;
    if (ucs_status_t st = ucp_mem_map(ucx_.context(), &map, &exported.registration); st != UCS_OK)
        return failf(DRAGON_FAILURE, "serve: registering the {} B heap of pool '{}' with UCX failed: {}",
                     exported.heap_bytes, name, ucs_status_string(st));
    void* packed = nullptr;
    std::size_t packed_bytes = 0;
    if (ucs_status_t st = ucp_rkey_pack(ucx_.context(), exported.registration, &packed, &packed_bytes);
        st != UCS_OK || packed_bytes > k_reply_rkey_max) {
        ucp_mem_unmap(ucx_.context(), exported.registration);
        return failf(DRAGON_FAILURE, "serve: packing the remote key of pool '{}' failed: {} ({} B)", name,
                     ucs_status_string(st), packed_bytes);
    }
    const auto* packed_begin = static_cast<const std::uint8_t*>(packed);
    exported.packed_rkey.assign(packed_begin, packed_begin + packed_bytes);
    ucp_rkey_buffer_release(packed);
    event(fmt::format("exported pool '{}' ({} B heap)", name, exported.heap_bytes));
    out = &(pools_[name] = std::move(exported));
    return DRAGON_SUCCESS;
}

dragonError_t Agent::grant(const AccessRequest& request, ucp_ep_h ep, AccessReply& reply) {
    ExportedPool* exported = nullptr;
    if (dragonError_t rc = export_pool(request, exported)) return rc;
    const PoolIdentity& pool = *exported->identity;
    AllocationInfo info;
    if (dragonError_t rc = pool_allocation_info(exported->pool, "serve", request.id, info)) {
        if (rc != DRAGON_KEY_NOT_FOUND) return rc;
        return failf(DRAGON_KEY_NOT_FOUND, "allocation id {} of pool '{}' is not live (freed)", request.id, pool.name);
    }
    if (request.offset > info.size || request.length > info.size - request.offset)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "{} B from offset {} are outside allocation id {} of pool '{}' ({} B); nothing was granted",
                     request.length, request.offset, request.id, pool.name, info.size);
    auto* first = static_cast<std::uint8_t*>(exported->heap) + info.offset + request.offset;
    if (request.access == Access::write && request.length != 0) {
        // A remote put lands in pages this process writes through UCX; a page /dev/shm
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
    reply.rc = DRAGON_SUCCESS;
    reply.remote_address = reinterpret_cast<std::uintptr_t>(first);
    reply.rkey = exported->packed_rkey;
    exported->granted.insert(ep);
    return DRAGON_SUCCESS;
}

void Agent::revoke(const std::string& name, const char* why) {
    auto it = pools_.find(name);
    if (it == pools_.end()) return;
    // The endpoints holding its key go first, so that no transfer still runs when the
    // registration and the mapping are dropped: their clients see an error and connect
    // again for their next request.
    const std::set<ucp_ep_h> granted = it->second.granted;
    for (ucp_ep_h ep : granted) close_endpoint(ep);
    ucp_mem_unmap(ucx_.context(), it->second.registration);
    pools_.erase(it);
    event(fmt::format("revoked pool '{}': {}; {} connection(s) closed", name, why, granted.size()));
}

void Agent::revoke_destroyed_pools() {
    std::vector<std::string> gone;
    for (const auto& [name, exported] : pools_)
        if (!pool_is_usable_here(exported.pool)) gone.push_back(name);
    for (const std::string& name : gone) revoke(name, "destroyed");
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
    timespec next_check = deadline_after_ns(k_revoke_check_ns);
    while (!stopping()) {
        while (ucp_worker_progress(ucx_.worker()) != 0) {
        }
        accept_connections();
        close_failed_endpoints();
        serve_requests();
        reap_replies();
        if (deadline_passed(next_check)) {
            revoke_destroyed_pools();
            next_check = deadline_after_ns(k_revoke_check_ns);
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
    std::vector<std::string> names;
    for (const auto& [name, exported] : pools_) names.push_back(name);
    for (const std::string& name : names) revoke(name, "the agent stops");
    const std::set<ucp_ep_h> open = endpoints_;
    for (ucp_ep_h ep : open) close_endpoint(ep);
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
