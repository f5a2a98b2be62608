// The agent's loop: connections, access requests, agent-initiated transfers (agent.hpp).
#include "remote/agent.hpp"

#include "descr/operations.hpp"
#include "os/deadline.hpp"
#include "os/error.hpp"
#include "pool/pool_peek.hpp"
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
// connection, which ends the transfer with an error on both sides).
constexpr std::int64_t k_transfer_limit_ns = 30'000'000'000;
// The heap is backed for remote writes in chunks of this size, each at most once per
// attach (ServedPool::backed).
constexpr std::uint64_t k_backed_chunk_bytes = 64 << 10;

// A pool this agent has attached. Its heap is not registered with UCX: a registration
// handed to a send or receive is what UCX packs into the key of a rendezvous (on IB/RoCE
// an RDMA key a peer may use for as long as the registration lives), and a whole-heap
// one would give every client every allocation. Transfers are eager instead (serve()).
// Shared with the transfers that use it: a pool dropped (destroyed) while a transfer runs
// stays mapped until that ends.
struct ServedPool {
    PoolRef pool;
    const PoolIdentity* identity = nullptr;  // the mapping's: nonce, secret
    void* heap = nullptr;
    std::uint64_t heap_bytes = 0;
    // Chunks of the heap (k_backed_chunk_bytes) this agent has backed for remote writes.
    // Process-local: tmpfs never takes a page back from a live object (nothing in
    // dragonmem punches holes), so a chunk backed once stays backed while attached.
    std::vector<bool> backed;
};

// How a write's bytes wait in UCX while the agent checks the request. Never by
// rendezvous: receiving one would hand the client a key to the pool's memory where UCX
// uses its put scheme (on_request refuses them).
enum class DataHeld {
    none,   // no bytes (a read), or already taken care of
    eager,  // in a buffer of UCX's that persists until ucp_am_data_release
    lent,   // in a buffer of UCX's only during the message handler
};

struct IncomingRequest {
    ucp_ep_h reply_ep = nullptr;
    dragonError_t rc = DRAGON_SUCCESS;  // a malformed request: refused with this
    std::string message;
    AccessRequest request;
    DataHeld held = DataHeld::none;
    void* data = nullptr;            // UCX's: its eager buffer
    bool served_in_handler = false;  // an eager write done at once (rc and message say how)
    bool in_transfer = false;        // served by a transfer (transfers_), which replies
};

// A transfer in flight: a read's reply carrying the range, sent eagerly from the pool.
struct Transfer {
    ucs_status_ptr_t op = nullptr;
    ucp_ep_h ep = nullptr;
    std::shared_ptr<ServedPool> pool;
    AccessRequest request;
    timespec deadline{};
    std::array<std::uint8_t, k_reply_bytes> header{};  // alive until the send completes
};

struct OutgoingReply {
    ucs_status_ptr_t request = nullptr;
    ucp_ep_h ep = nullptr;  // its client (AgentLimits::unread_replies counts per client)
    std::array<std::uint8_t, k_reply_bytes> header{};
    std::string message;  // the data: a refusal's text
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
    void serve(IncomingRequest& incoming);
    dragonError_t check_range(const AccessRequest& request, std::shared_ptr<ServedPool>& served,
                              std::uint8_t*& first);
    dragonError_t attach_pool(const AccessRequest& request, std::shared_ptr<ServedPool>& out);
    dragonError_t back_for_write(ServedPool& served, std::uint64_t heap_offset, const AccessRequest& request);
    void release_data(IncomingRequest& incoming);
    void drop_pool(const std::string& name, const char* why);
    void drop_destroyed_pools();
    void send_reply(ucp_ep_h ep, std::uint64_t sequence, dragonError_t rc, const std::string& message);
    void reap_replies();
    void reap_transfers();
    void log_outcome(const AccessRequest& request, dragonError_t rc, const std::string& message) const;
    void event(const std::string& line) const {
        if (options_.on_event) options_.on_event(line);
    }
    bool stopping() const { return options_.stop != nullptr && options_.stop->load(std::memory_order_relaxed); }
    void shut_down();

    const AgentOptions& options_;
    UcxWorker ucx_;  // first: released last, after everything that holds UCX objects
    ucp_listener_h listener_ = nullptr;
    std::string address_;
    std::vector<ucp_conn_request_h> connection_requests_;
    std::vector<ucp_ep_h> failed_endpoints_;
    std::vector<IncomingRequest> requests_;
    std::vector<std::unique_ptr<OutgoingReply>> replies_;
    std::vector<std::unique_ptr<Transfer>> transfers_;
    std::set<ucp_ep_h> endpoints_;
    std::map<std::string, std::shared_ptr<ServedPool>> pools_;
};

ucs_status_t Agent::on_request(void* arg, const void* header, std::size_t header_bytes, void* data,
                               std::size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<Agent*>(arg);
    // One without a reply endpoint cannot be answered; its data (if any) is dropped.
    if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) return UCS_OK;
    IncomingRequest incoming;
    incoming.reply_ep = param->reply_ep;
    incoming.rc = decode_request({static_cast<const std::uint8_t*>(header), header_bytes}, incoming.request);
    // Past the bound: refused, its data dropped at once. The loop stops taking messages
    // from UCX at the bound, so these refusals are only what one progress call delivered
    // beyond it (a refusal holds no data).
    const std::size_t most = self->options_.limits.requests_per_turn;
    if (incoming.rc == DRAGON_SUCCESS && self->requests_.size() >= most) {
        incoming.rc = failf(DRAGON_EAGAIN,
                            "the agent has {} requests waiting to be served (its most, AgentLimits::requests_per_turn); "
                            "nothing was moved; try again",
                            most);
        incoming.message = last_error_message();
        self->requests_.push_back(std::move(incoming));
        return UCS_OK;
    }
    const AccessRequest& request = incoming.request;
    if (incoming.rc == DRAGON_SUCCESS && request.access == Access::read && length != 0)
        incoming.rc = failf(DRAGON_INVALID_ARGUMENT, "a read request carries {} B of data (none expected)", length);
    if (incoming.rc == DRAGON_SUCCESS && request.access == Access::write && length != request.length)
        incoming.rc = failf(DRAGON_INVALID_ARGUMENT, "a write request of {} B carries {} B of data", request.length,
                            length);
    if (incoming.rc != DRAGON_SUCCESS) incoming.message = last_error_message();
    ucs_status_t keep = UCS_OK;  // UCS_OK: UCX drops the data (if any) when this returns
    // A write's bytes by rendezvous are refused unreceived (UCX tells the client its send
    // is done): receiving them could hand the client a key to the pool's memory.
    if (incoming.rc == DRAGON_SUCCESS && length != 0 && (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) {
        incoming.rc = failf(DRAGON_INVALID_ARGUMENT,
                            "a write's {} B came by rendezvous: the agent takes a write's bytes only eagerly "
                            "(UCP_AM_SEND_FLAG_EAGER), so that no key to its memory is ever handed out; nothing "
                            "was written",
                            length);
        incoming.message = last_error_message();
    }
    if (incoming.rc == DRAGON_SUCCESS && length != 0) {
        // A write's bytes stay where UCX has them until the request is checked (in the
        // loop, out of UCX's progress); then they are copied into the pool, or dropped.
        if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_DATA) != 0) {
            incoming.held = DataHeld::eager;
            incoming.data = data;
            keep = UCS_INPROGRESS;
        } else {
            // Eager bytes UCX lends only during this call: checked and copied into the pool
            // now (its one copy); the reply goes from the loop.
            incoming.held = DataHeld::lent;
            incoming.data = data;
            self->serve(incoming);
            incoming.held = DataHeld::none;
            incoming.data = nullptr;
            incoming.served_in_handler = true;
        }
    }
    self->requests_.push_back(std::move(incoming));
    return keep;
}
dragonError_t Agent::listen() {
    sockaddr_storage address{};
    socklen_t address_len = 0;
    if (dragonError_t rc = resolve_agent_address(options_.listen, "serve --listen", true, std::nullopt, address, address_len)) return rc;
    if (dragonError_t rc = ucx_.open(true, "serve")) return rc;
    if (dragonError_t rc = ucx_.set_handler(k_am_request, &Agent::on_request, this, "serve", "request")) return rc;
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
        if (endpoints_.size() >= options_.limits.connections) {
            // The client's endpoint fails with UCS_ERR_REJECTED (remote_client.cpp says so).
            const ucs_status_t st = ucp_listener_reject(listener_, request);
            event(fmt::format("connection rejected: {} connections open (the most, AgentLimits::connections){}",
                              endpoints_.size(), st == UCS_OK ? "" : fmt::format(" ({})", ucs_status_string(st))));
            continue;
        }
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
        if (endpoints_.count(incoming.reply_ep) == 0) {  // its client is gone
            release_data(incoming);
            continue;
        }
        if (!incoming.served_in_handler && incoming.rc == DRAGON_SUCCESS) serve(incoming);
        release_data(incoming);  // a refused write's bytes are dropped, never taken in
        if (incoming.in_transfer) continue;  // its transfer replies (reap_transfers)
        log_outcome(incoming.request, incoming.rc, incoming.message);
        send_reply(incoming.reply_ep, incoming.request.sequence, incoming.rc, incoming.message);
    }
}

void Agent::log_outcome(const AccessRequest& request, dragonError_t rc, const std::string& message) const {
    const char* access = request.access == Access::write ? "write" : "read";
    if (rc != DRAGON_SUCCESS)
        event(fmt::format("refused {} of pool '{}' id {} [{}, +{}]: {} {}", access, request.pool_name, request.id,
                          request.offset, request.length, dragon_get_rc_string(rc), message));
    else
        event(fmt::format("served {} of pool '{}' id {} [{}, +{}]", access, request.pool_name, request.id,
                          request.offset, request.length));
}

void Agent::release_data(IncomingRequest& incoming) {
    if (incoming.held == DataHeld::eager) ucp_am_data_release(ucx_.worker(), incoming.data);
    incoming.held = DataHeld::none;
    incoming.data = nullptr;
}

// Whether `request` names this instance of pool `name` (instance `nonce`) and presents
// its secret. The refusal names no instance number (the pool's is not the requester's to
// learn, and a descriptor's own it has).
dragonError_t check_capability(const std::string& name, std::uint64_t nonce,
                               const std::array<std::uint8_t, 16>& secret, const AccessRequest& request) {
    if (nonce != request.nonce)
        return failf(DRAGON_OBJECT_DESTROYED,
                     "pool '{}' here is another instance than the descriptor's: that pool was destroyed (and a pool "
                     "of the same name made since); nothing was moved",
                     name);
    if (!same_secret(secret, request.secret))
        return failf(DRAGON_INVALID_ARGUMENT,
                     "the secret presented for pool '{}' is wrong: the descriptor is forged or damaged; nothing was "
                     "moved",
                     name);
    return DRAGON_SUCCESS;
}

dragonError_t check_capability(const PoolIdentity& pool, const AccessRequest& request) {
    return check_capability(pool.name, pool.nonce, pool.secret, request);
}

// The pool `request` names, attached.
// The capability is checked first from the pool's header read without attaching
// (peek_pool: a forged request does not make the agent attach, so enter itself in the
// process table of, any pool its uid may read), then again on the attached pool (it may
// have been made anew in between).
dragonError_t Agent::attach_pool(const AccessRequest& request, std::shared_ptr<ServedPool>& out) {
    const std::string& name = request.pool_name;
    if (auto it = pools_.find(name); it != pools_.end()) {
        if (pool_is_usable_here(it->second->pool)) {
            out = it->second;
            return check_capability(*out->identity, request);
        }
        drop_pool(name, "destroyed");  // perhaps made again since: attach anew
    }
    if (PeekedPool peeked; peek_pool(name, peeked)) {
        if (dragonError_t rc = check_capability(name, peeked.nonce, peeked.secret, request)) return rc;
    }  // not readable as a pool: the attach below says why
    auto served = std::make_shared<ServedPool>();
    if (dragonError_t rc = pool_attach_local(served->pool, name)) return rc;
    served->identity = identity_of(served->pool);
    if (dragonError_t rc = check_capability(*served->identity, request)) return rc;  // detached on return
    // A GPU pool's bytes are device memory, which the agent does not serve (yet): refused
    // before anything of it is opened.
    bool on_gpu = false;
    if (dragonError_t rc = pool_on_gpu(served->pool, "serve", on_gpu)) return rc;
    if (on_gpu)
        return failf(DRAGON_NOT_IMPLEMENTED,
                     "pool '{}' is a GPU pool (DRAGON_MEMORY_TYPE_GPU): its bytes are device memory, which remote "
                     "reads and writes do not reach; nothing was moved",
                     name);
    if (dragonError_t rc = pool_heap(served->pool, "serve", &served->heap, served->heap_bytes)) return rc;
    served->backed.assign((served->heap_bytes + k_backed_chunk_bytes - 1) / k_backed_chunk_bytes, false);
    event(fmt::format("attached pool '{}' ({} B heap)", name, served->heap_bytes));
    pools_[name] = served;
    out = std::move(served);
    return DRAGON_SUCCESS;
}

// The pool range `request` names, after every check: the pool (its instance and secret),
// the allocation live in the manifest, the range within the size asked for at allocation.
dragonError_t Agent::check_range(const AccessRequest& request, std::shared_ptr<ServedPool>& served,
                                 std::uint8_t*& first) {
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
    first = static_cast<std::uint8_t*>(served->heap) + info.offset + request.offset;
    if (request.access == Access::write && request.length != 0)
        return back_for_write(*served, info.offset + request.offset, request);
    return DRAGON_SUCCESS;
}

// A remote write lands in pages this process writes; a page /dev/shm cannot back would
// be a SIGBUS here. So the range is backed first (the kernel refuses cleanly), as the
// library backs what it writes itself (pool_backing.hpp), and only where this agent has
// not backed it before: MADV_POPULATE_WRITE walks every page even when all are there
// (64 MiB: 46 ms the first time, 3-6 ms each time after, here), and the agent's loop
// serves everyone. EINVAL: a kernel before 5.14, without MADV_POPULATE_WRITE; the range
// is then not backed.
dragonError_t Agent::back_for_write(ServedPool& served, std::uint64_t heap_offset, const AccessRequest& request) {
    const std::uint64_t end = heap_offset + request.length;  // within the heap (checked)
    const std::uint64_t first_chunk = heap_offset / k_backed_chunk_bytes;
    const std::uint64_t last_chunk = (end - 1) / k_backed_chunk_bytes;
    bool backed = true;
    for (std::uint64_t c = first_chunk; c <= last_chunk && backed; ++c) backed = served.backed[c];
    if (backed) return DRAGON_SUCCESS;
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t from = heap_offset & ~(page - 1);  // madvise wants a page boundary
    auto* start = static_cast<std::uint8_t*>(served.heap) + from;
    if (::madvise(start, end - from, MADV_POPULATE_WRITE) != 0) {
        if (errno == EINVAL) return DRAGON_SUCCESS;
        return fail_errno(DRAGON_OUT_OF_SPACE, errno,
                          fmt::format("backing {} B of allocation id {} of pool '{}' for a remote write",
                                      request.length, request.id, request.pool_name));
    }
    // Marked only where the whole chunk was in the range: the ends are backed again next
    // time (a page each), never assumed.
    std::uint64_t marked = 0;
    for (std::uint64_t c = first_chunk; c <= last_chunk; ++c)
        if (c * k_backed_chunk_bytes >= heap_offset && (c + 1) * k_backed_chunk_bytes <= end) {
            served.backed[c] = true;
            ++marked;
        }
    if (marked != 0)
        event(fmt::format("backed {} B of pool '{}' for remote writes", marked * k_backed_chunk_bytes,
                          request.pool_name));
    return DRAGON_SUCCESS;
}

// Serves a well-formed request: a read's reply goes out with the range as its data (a
// transfer); a write's bytes are copied into the range out of UCX's buffer. Refused: rc
// and message say why.
//
// Both ways the bytes travel eagerly (UCP_AM_SEND_FLAG_EAGER; rendezvous writes are
// refused in on_request), and no memory handle is given to UCX: a rendezvous sends the
// peer a key to the buffer's registration (RTS for its get scheme, RTR for put), which on
// IB/RoCE is an RDMA key valid as long as the registration, and UCX registers more than
// the buffer (its registration cache rounds to pages and merges neighbours; the heap's
// own registration covered every allocation). An eager transfer sends no key at all, on
// any transport. The cost: UCX assembles a large message in a buffer of its own at the
// receiver, one more copy there (design.md 3.4).
void Agent::serve(IncomingRequest& incoming) {
    const AccessRequest& request = incoming.request;
    std::shared_ptr<ServedPool> served;
    std::uint8_t* first = nullptr;
    if (dragonError_t rc = check_range(request, served, first)) {
        incoming.rc = rc;
        incoming.message = last_error_message();
        return;
    }
    if (request.access == Access::write) {
        if (request.length != 0) std::memcpy(first, incoming.data, request.length);
        return;  // DRAGON_SUCCESS; the buffer is released by the caller
    }
    if (transfers_.size() >= options_.limits.transfers) {
        incoming.rc = failf(DRAGON_EAGAIN,
                            "the agent is sending {} reads (its most, AgentLimits::transfers); nothing was moved; try "
                            "again",
                            transfers_.size());
        incoming.message = last_error_message();
        return;
    }
    auto transfer = std::make_unique<Transfer>();
    transfer->ep = incoming.reply_ep;
    transfer->pool = served;
    transfer->request = request;
    transfer->deadline = deadline_after_ns(k_transfer_limit_ns);
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = UCP_AM_SEND_FLAG_EAGER;  // no rendezvous: no key (above)
    AccessReply reply;
    reply.sequence = request.sequence;
    transfer->header = encode_reply(reply);
    transfer->op = ucp_am_send_nbx(incoming.reply_ep, k_am_reply, transfer->header.data(), transfer->header.size(),
                                   first, request.length, &params);
    if (UCS_PTR_IS_ERR(transfer->op)) {
        incoming.rc = failf(DRAGON_FAILURE, "sending {} B of pool '{}' failed at once: {}", request.length,
                            request.pool_name, ucs_status_string(UCS_PTR_STATUS(transfer->op)));
        incoming.message = last_error_message();
        return;
    }
    if (transfer->op == nullptr) {  // done at once
        incoming.in_transfer = true;  // the reply went with the bytes
        log_outcome(request, DRAGON_SUCCESS, {});
        return;
    }
    incoming.in_transfer = true;
    transfers_.push_back(std::move(transfer));
}

// Transfers that completed: freed and logged (a read's reply went with its bytes). One past the limit
// gets its connection closed (which completes it, with an error, on the next turn).
void Agent::reap_transfers() {
    for (std::size_t i = 0; i < transfers_.size();) {
        Transfer& transfer = *transfers_[i];
        const ucs_status_t st = ucp_request_check_status(transfer.op);
        if (st == UCS_INPROGRESS) {
            if (deadline_passed(transfer.deadline) && endpoints_.count(transfer.ep) != 0) {
                event(fmt::format("transfer of {} B of pool '{}' past {} s: closing its connection",
                                  transfer.request.length, transfer.request.pool_name,
                                  k_transfer_limit_ns / 1'000'000'000));
                close_endpoint(transfer.ep);
            }
            ++i;
            continue;
        }
        ucp_request_free(transfer.op);
        dragonError_t rc = DRAGON_SUCCESS;
        std::string message;
        if (st != UCS_OK) {
            rc = failf(DRAGON_FAILURE, "sending {} B of pool '{}' failed: {}", transfer.request.length,
                       transfer.request.pool_name, ucs_status_string(st));
            message = last_error_message();
        }
        log_outcome(transfer.request, rc, message);
        transfers_.erase(transfers_.begin() + static_cast<std::ptrdiff_t>(i));
    }
}

void Agent::drop_pool(const std::string& name, const char* why) {
    auto it = pools_.find(name);
    if (it == pools_.end()) return;
    pools_.erase(it);  // detached (and unregistered) once no transfer holds it
    event(fmt::format("dropped pool '{}': {}", name, why));
}

void Agent::drop_destroyed_pools() {
    std::vector<std::string> gone;
    for (const auto& [name, served] : pools_)
        if (!pool_is_usable_here(served->pool)) gone.push_back(name);
    for (const std::string& name : gone) drop_pool(name, "destroyed");
}

// The reply (header) and, for a refusal, its message (data), sent eagerly. A client with
// AgentLimits::unread_replies replies still being sent to it does not read them: its
// connection is closed instead (which completes those, with an error).
void Agent::send_reply(ucp_ep_h ep, std::uint64_t sequence, dragonError_t rc, const std::string& message) {
    const auto unread = static_cast<std::size_t>(
        std::count_if(replies_.begin(), replies_.end(), [ep](const auto& reply) { return reply->ep == ep; }));
    if (unread >= options_.limits.unread_replies) {
        event(fmt::format("closing a connection: {} replies to it unread (the most, AgentLimits::unread_replies)",
                          unread));
        close_endpoint(ep);
        return;
    }
    auto reply = std::make_unique<OutgoingReply>();
    reply->ep = ep;
    AccessReply header;
    header.sequence = sequence;
    header.rc = rc;
    reply->header = encode_reply(header);
    if (rc != DRAGON_SUCCESS) reply->message = message.substr(0, k_reply_message_max);
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = UCP_AM_SEND_FLAG_EAGER;
    reply->request = ucp_am_send_nbx(ep, k_am_reply, reply->header.data(), reply->header.size(), reply->message.data(),
                                     reply->message.size(), &params);
    if (reply->request == nullptr) return;  // sent at once
    if (UCS_PTR_IS_ERR(reply->request)) {
        event(fmt::format("reply lost: {}", ucs_status_string(UCS_PTR_STATUS(reply->request))));
        return;
    }
    replies_.push_back(std::move(reply));
}

void Agent::reap_replies() {
    std::erase_if(replies_, [](const std::unique_ptr<OutgoingReply>& reply) {
        if (ucp_request_check_status(reply->request) == UCS_INPROGRESS) return false;
        ucp_request_free(reply->request);
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
        // Until UCX has nothing more, or the requests taken in reach their bound (the rest
        // waits in UCX and the sockets: clients sending faster than the agent serves are
        // slowed, not queued without end here).
        while (requests_.size() < options_.limits.requests_per_turn && ucp_worker_progress(ucx_.worker()) != 0) {
        }
        accept_connections();
        close_failed_endpoints();
        serve_requests();
        close_failed_endpoints();
        reap_transfers();
        reap_replies();
        if (deadline_passed(next_check)) {
            drop_destroyed_pools();
            next_check = deadline_after_ns(k_pool_check_ns);
        }
        if (!connection_requests_.empty() || !requests_.empty() || !failed_endpoints_.empty()) continue;
        // Idle even while transfers run: polling 256 turns before sleeping made writes of
        // 256 KiB-4 MiB 1.5-3 times slower in bench/remote_bench.sh on 2 loaded cores
        // (the spinning agent held the core the sending client needed).
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
    for (ucp_ep_h ep : open) close_endpoint(ep);  // completes every transfer and reply on them
    for (const auto& transfer : transfers_) finish_request(ucx_.worker(), transfer->op);
    transfers_.clear();
    for (const auto& reply : replies_) finish_request(ucx_.worker(), reply->request);
    replies_.clear();
    for (IncomingRequest& incoming : requests_) release_data(incoming);
    requests_.clear();
    std::vector<std::string> names;
    for (const auto& [name, served] : pools_) names.push_back(name);
    for (const std::string& name : names) drop_pool(name, "the agent stops");
    if (listener_ != nullptr) ucp_listener_destroy(listener_);
    listener_ = nullptr;
}

}  // namespace

dragonError_t run_agent(const AgentOptions& options) {
    const AgentLimits& limits = options.limits;
    for (const auto& [name, value] : {std::pair{"connections", limits.connections},
                                      std::pair{"requests_per_turn", limits.requests_per_turn},
                                      std::pair{"transfers", limits.transfers},
                                      std::pair{"unread_replies", limits.unread_replies}})
        if (value == 0)
            return failf(DRAGON_INVALID_ARGUMENT, "serve: AgentLimits::{} is 0: the agent could serve nothing", name);
    try {
        Agent agent(options);
        return agent.run();
    } catch (const std::bad_alloc&) {
        return fail(DRAGON_INTERNAL_MALLOC_FAIL, "serve: out of memory");
    }
}

}  // namespace dragonmem::detail
