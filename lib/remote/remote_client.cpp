// The off-node client (remote_client.hpp): endpoints to agents, the control round trip,
// one-sided get/put.
#include "remote/remote_client.hpp"

#include "os/deadline.hpp"
#include "os/error.hpp"
#include "remote/ucx_support.hpp"

#include <algorithm>
#include <cstdint>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dragonmem::detail {

namespace {

constexpr std::int64_t k_forever_ns = 1'000'000'000'000'000'000;  // a lock wait this long is no limit

struct Connection {
    std::string agent;
    ucp_ep_h ep = nullptr;
    ucs_status_t failure = UCS_OK;  // set by UCX's error callback: the agent went away
};

void on_endpoint_error(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
    static_cast<Connection*>(arg)->failure = status;
}

// The process's client: a static object, so that its endpoints, worker and context are
// released at exit (UCX keeps its objects in memory of its own, which leak checkers do not
// scan: a client left alive at exit reads as leaks). Remote calls must not run while the
// process exits.
class Client {
public:
    Client() = default;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() {
        while (!connections_.empty()) {
            const std::string agent = connections_.begin()->first;  // drop() erases the key
            drop(agent);
        }
    }
    dragonError_t transfer(const PoolIdentity& pool, const RemoteRange& range, void* buffer, Access access,
                           const std::optional<timespec>& deadline);

private:
    static ucs_status_t on_reply(void* arg, const void* header, std::size_t header_bytes, void* data,
                                 std::size_t length, const ucp_am_recv_param_t* param);
    dragonError_t open();
    dragonError_t connect(const std::string& agent, const std::optional<timespec>& deadline, Connection*& out);
    void drop(const std::string& agent);
    dragonError_t lost(const std::string& agent, ucs_status_t status, const char* during,
                       ucs_status_ptr_t pending = nullptr);

    // Timed: a call waits for another thread's call only within its own timeout.
    std::timed_mutex mutex_;
    UcxWorker ucx_;
    bool open_ = false;
    std::map<std::string, std::unique_ptr<Connection>> connections_;
    std::uint64_t next_sequence_ = 1;
    std::uint64_t awaited_sequence_ = 0;
    std::optional<AccessReply> reply_;
};

ucs_status_t Client::on_reply(void* arg, const void* /*header*/, std::size_t /*header_bytes*/, void* data,
                              std::size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<Client*>(arg);
    // Replies are small and sent eagerly; anything else is not the agent's.
    if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) return UCS_OK;
    AccessReply reply;
    if (decode_reply({static_cast<const std::uint8_t*>(data), length}, reply) != DRAGON_SUCCESS) return UCS_OK;
    // A late reply to a call that timed out has an older sequence number: dropped.
    if (reply.sequence == self->awaited_sequence_) self->reply_ = std::move(reply);
    return UCS_OK;
}

dragonError_t Client::open() {
    if (open_) return DRAGON_SUCCESS;
    if (dragonError_t rc = ucx_.open(false, "remote access")) return rc;
    ucp_am_handler_param_t handler{};
    handler.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    handler.id = k_am_reply;
    handler.cb = &Client::on_reply;
    handler.arg = this;
    if (ucs_status_t st = ucp_worker_set_am_recv_handler(ucx_.worker(), &handler); st != UCS_OK)
        return failf(DRAGON_FAILURE, "remote access: setting the reply handler failed: {}", ucs_status_string(st));
    open_ = true;
    return DRAGON_SUCCESS;
}

dragonError_t Client::connect(const std::string& agent, const std::optional<timespec>& deadline, Connection*& out) {
    if (auto it = connections_.find(agent); it != connections_.end()) {
        if (it->second->failure == UCS_OK) {
            out = it->second.get();
            return DRAGON_SUCCESS;
        }
        drop(agent);  // the agent went away since: try a new connection (it may be back)
    }
    sockaddr_storage address{};
    socklen_t address_len = 0;
    if (dragonError_t rc = resolve_agent_address(agent, "the descriptor's agent", false, deadline, address, address_len)) return rc;
    auto connection = std::make_unique<Connection>();
    connection->agent = agent;
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                        UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
    params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&address);
    params.sockaddr.addrlen = address_len;
    // Peer failure mode: a dead agent fails our requests instead of leaving them pending.
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &on_endpoint_error;
    params.err_handler.arg = connection.get();
    if (ucs_status_t st = ucp_ep_create(ucx_.worker(), &params, &connection->ep); st != UCS_OK)
        return failf(DRAGON_FAILURE, "agent {}: connecting failed: {}", agent, ucs_status_string(st));
    out = connection.get();
    connections_[agent] = std::move(connection);
    return DRAGON_SUCCESS;
}

void Client::drop(const std::string& agent) {
    auto it = connections_.find(agent);
    if (it == connections_.end()) return;
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = UCP_EP_CLOSE_FLAG_FORCE;  // completes every request still on it, with an error
    finish_request(ucx_.worker(), ucp_ep_close_nbx(it->second->ep, &params));
    connections_.erase(it);
}

// Drops the connection (which completes `pending`, a request that timed out, with an
// error; then it is freed) and reports what failed.
dragonError_t Client::lost(const std::string& agent, ucs_status_t status, const char* during,
                           ucs_status_ptr_t pending) {
    drop(agent);
    finish_request(ucx_.worker(), pending);
    if (status == UCS_ERR_TIMED_OUT)
        return failf(DRAGON_TIMEOUT, "agent {}: timed out {}; the connection was dropped", agent, during);
    return failf(DRAGON_FAILURE, "agent {}: {} failed: {} (is `dragonmem serve` running there?)", agent, during,
                 ucs_status_string(status));
}

// This call's buffer registered with UCX (exactly [buffer, buffer + length)) for the
// agent's put or get, and its packed key; unregistered when the call returns. UCX
// allows the agent nothing outside the registration's range (on RDMA the adapter
// checks the key; over TCP the client's own UCX writes where the agent says, so a
// client trusts the agent its descriptor names, as it trusts the descriptor).
class BufferRegistration {
public:
    BufferRegistration(ucp_context_h context) : context_(context) {}
    BufferRegistration(const BufferRegistration&) = delete;
    BufferRegistration& operator=(const BufferRegistration&) = delete;
    ~BufferRegistration() {
        if (memh_ != nullptr) ucp_mem_unmap(context_, memh_);
    }
    dragonError_t map(void* buffer, std::uint64_t length, Access access, const std::string& agent,
                      std::vector<std::uint8_t>& rkey) {
        ucp_mem_map_params_t params{};
        params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_PROT;
        params.address = buffer;
        params.length = length;
        // The agent gets only the access its part needs: to write into the buffer (a read
        // of the pool), or to read from it (a write), never both (where the transport
        // enforces it; a write's buffer may be read-only memory).
        params.prot = UCP_MEM_MAP_PROT_LOCAL_READ | UCP_MEM_MAP_PROT_LOCAL_WRITE |
                      (access == Access::read ? UCP_MEM_MAP_PROT_REMOTE_WRITE : UCP_MEM_MAP_PROT_REMOTE_READ);
        if (ucs_status_t st = ucp_mem_map(context_, &params, &memh_); st != UCS_OK) {
            memh_ = nullptr;
            return failf(DRAGON_FAILURE, "agent {}: registering the {} B buffer with UCX failed: {}", agent, length,
                         ucs_status_string(st));
        }
        void* packed = nullptr;
        std::size_t packed_bytes = 0;
        if (ucs_status_t st = ucp_rkey_pack(context_, memh_, &packed, &packed_bytes); st != UCS_OK)
            return failf(DRAGON_FAILURE, "agent {}: packing the buffer's key failed: {}", agent, ucs_status_string(st));
        const auto* begin = static_cast<const std::uint8_t*>(packed);
        rkey.assign(begin, begin + packed_bytes);
        ucp_rkey_buffer_release(packed);
        if (rkey.empty() || rkey.size() > k_request_rkey_max)
            return failf(DRAGON_FAILURE, "agent {}: the buffer's packed key has {} B (1 to {})", agent, rkey.size(),
                         k_request_rkey_max);
        return DRAGON_SUCCESS;
    }

private:
    ucp_context_h context_;
    ucp_mem_h memh_ = nullptr;
};

dragonError_t Client::transfer(const PoolIdentity& pool, const RemoteRange& range, void* buffer, Access access,
                               const std::optional<timespec>& deadline) {
    std::unique_lock lock(mutex_, std::defer_lock);
    // Beyond ~30 years is forever (a saturated deadline): now + that would overflow the clock.
    const std::int64_t wait_ns = deadline ? ns_between(now_monotonic(), *deadline) : INT64_MAX;
    if (wait_ns >= k_forever_ns) lock.lock();
    else if (!lock.try_lock_for(std::chrono::nanoseconds(wait_ns)))
        return failf(DRAGON_TIMEOUT,
                     "agent {}: timed out waiting for another thread's remote call in this process; nothing was sent",
                     pool.agent);
    if (dragonError_t rc = open()) return rc;
    Connection* connection = nullptr;
    if (dragonError_t rc = connect(pool.agent, deadline, connection)) return rc;
    const std::string agent = pool.agent;  // `connection` goes with drop()

    AccessRequest request;
    request.access = access;
    request.sequence = next_sequence_++;
    request.nonce = pool.nonce;
    request.id = range.id;
    request.offset = range.offset;
    request.length = range.length;
    request.secret = pool.secret;
    request.pool_name = pool.name;
    // Declared before anything can leave early: every path out drops the endpoint (when
    // the agent may still move bytes) before this unregisters the buffer.
    BufferRegistration registration(ucx_.context());
    if (range.length != 0) {
        if (dragonError_t rc = registration.map(buffer, range.length, access, agent, request.buffer_rkey)) return rc;
        request.buffer_address = reinterpret_cast<std::uintptr_t>(buffer);
    }
    const std::vector<std::uint8_t> message = encode_request(request);
    awaited_sequence_ = request.sequence;
    reply_.reset();
    ucp_request_param_t send{};
    send.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    send.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER;  // the agent answers on the endpoint it got
    ucs_status_ptr_t pending = nullptr;
    ucs_status_t st = wait_request(ucx_, ucp_am_send_nbx(connection->ep, k_am_request, nullptr, 0, message.data(),
                                                           message.size(), &send),
                                   deadline, &pending);
    if (st != UCS_OK) return lost(agent, st, "sending the access request", pending);
    // The agent moves the bytes, then replies (after a flush: they are all in place). On
    // a timeout or a lost agent the endpoint is force-closed before the buffer is
    // unregistered and the call returns: no late put lands in a buffer the caller has
    // taken back.
    unsigned spins = 0;
    while (!reply_) {
        if (connection->failure != UCS_OK) return lost(agent, connection->failure, "waiting for the transfer");
        ucx_.progress_or_sleep();
        if (deadline && (++spins % 64) == 0 && deadline_passed(*deadline))
            return lost(agent, UCS_ERR_TIMED_OUT, "waiting for the transfer");
    }
    const AccessReply reply = std::move(*reply_);
    reply_.reset();
    if (reply.rc != DRAGON_SUCCESS) return failf(reply.rc, "agent {}: {}", agent, reply.message);
    return DRAGON_SUCCESS;
}

}  // namespace

dragonError_t remote_transfer(const PoolIdentity& pool, const RemoteRange& range, void* buffer, Access access,
                              const timespec* timeout) {
    static Client client;
    std::optional<timespec> deadline;
    if (timeout != nullptr) deadline = deadline_after(*timeout);
    return client.transfer(pool, range, buffer, access, deadline);
}

bool remote_built_in() noexcept { return true; }

}  // namespace dragonmem::detail
