// The off-node client (remote_client.hpp): endpoints to agents, requests and replies,
// the bytes as active-message data.
#include "remote/remote_client.hpp"

#include "os/deadline.hpp"
#include "os/error.hpp"
#include "remote/ucx_support.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <tuple>
#include <cstdint>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
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

// A piece of the call in progress (calls are serialized; a call is split in pieces,
// several in flight, Client::transfer): what its reply must match, where a read's bytes
// go, its send (a write's bytes leave from the caller's buffer) and the outcome the reply
// handler recorded.
struct Piece {
    std::uint64_t sequence = 0;  // 0: a free slot, no reply awaited
    std::uint64_t at = 0;        // its first byte's place in the call
    Access access = Access::read;
    void* buffer = nullptr;
    std::uint64_t length = 0;
    std::vector<std::uint8_t> header;    // the request, which UCX may read until the send completes
    ucs_status_ptr_t sending = nullptr;  // the request message's send, until it completes
    bool replied = false;
    dragonError_t rc = DRAGON_SUCCESS;
    std::string message;
};

// The most bytes one request moves, and the most requests of a call in flight at once
// (Client::transfer says why).
constexpr std::uint64_t k_piece_bytes = std::uint64_t{1} << 20;
constexpr std::size_t k_pieces_in_flight = 4;

// The process's client: a static object, so that its endpoints, worker and context are
// released at exit (UCX keeps its objects in memory of its own, which leak checkers do not
// scan: a client left alive at exit reads as leaks). Remote calls must not run while the
// process exits.
class Client {
public:
    Client() = default;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() { close(); }
    dragonError_t transfer(const PoolIdentity& pool, const RemoteRange& range, void* buffer, Access access,
                           const std::optional<timespec>& deadline);

private:
    static ucs_status_t on_reply(void* arg, const void* header, std::size_t header_bytes, void* data,
                                 std::size_t length, const ucp_am_recv_param_t* param);
    dragonError_t open();
    void close();
    dragonError_t connect(const std::string& agent, const std::optional<timespec>& deadline, Connection*& out);
    dragonError_t send_piece(Connection& connection, const PoolIdentity& pool, const RemoteRange& range, void* buffer,
                             Access access, Piece& slot);
    void drop(const std::string& agent);
    dragonError_t lost(std::string agent, ucs_status_t status, const char* during);
    void abandon(const std::string& agent) noexcept;

    // Timed: a call waits for another thread's call only within its own timeout.
    std::timed_mutex mutex_;
    UcxWorker ucx_;
    bool open_ = false;
    std::map<std::string, std::unique_ptr<Connection>> connections_;
    std::uint64_t next_sequence_ = 1;
    std::array<Piece, k_pieces_in_flight> pieces_;
};

ucs_status_t Client::on_reply(void* arg, const void* header, std::size_t header_bytes, void* data,
                              std::size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<Client*>(arg);
    AccessReply reply;
    // Not the agent's, or a late reply to a call that timed out (an older sequence
    // number): dropped, with its data.
    if (decode_reply({static_cast<const std::uint8_t*>(header), header_bytes}, reply) != DRAGON_SUCCESS) return UCS_OK;
    if (reply.sequence == 0) return UCS_OK;
    const auto found = std::find_if(self->pieces_.begin(), self->pieces_.end(),
                                    [&](const Piece& piece) { return piece.sequence == reply.sequence; });
    if (found == self->pieces_.end() || found->replied) return UCS_OK;
    Piece& call = *found;
    call.replied = true;
    // Replies come eagerly (the agent sends them so): a rendezvous is refused unreceived
    // (UCX then tells the sender its send is done). Receiving one would post a receive into
    // the caller's buffer, and could hand the sender a key to it (UCX's put scheme).
    if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) {
        call.rc = DRAGON_FAILURE;
        call.message = fmt::format("its reply ({} B) came by rendezvous, not eagerly as the agent sends them; "
                                   "refused, nothing was received",
                                   length);
        return UCS_OK;
    }
    if (reply.rc != DRAGON_SUCCESS) {
        call.rc = reply.rc;
        call.message.assign(static_cast<const char*>(data), std::min(length, k_reply_message_max));
        return UCS_OK;
    }
    const std::uint64_t expected = call.access == Access::read ? call.length : 0;
    if (length != expected) {
        call.rc = DRAGON_FAILURE;
        call.message = fmt::format("its reply carries {} B where {} were expected", length, expected);
        return UCS_OK;
    }
    if (length == 0) return UCS_OK;
    // UCX delivered the bytes in a buffer of its own; this is their one copy.
    std::memcpy(call.buffer, data, length);
    return UCS_OK;
}

// Opens the worker, unless open already. DRAGONMEM_REMOTE_TRUSTED_FABRIC is read at each
// call: once it no longer says 1 (unset, 0, or a value that is not valid), the worker is
// closed, with its connections, and the call refused (agent_transports.hpp says why).
dragonError_t Client::open() {
    bool trusted = false;
    if (dragonError_t rc = trusted_fabric_now(trusted)) {
        close();  // sets no error: the message names the value
        return rc;
    }
    if (!trusted) {
        close();
        return refuse_untrusted_fabric("remote access");
    }
    if (open_) return DRAGON_SUCCESS;
    close();
    if (dragonError_t rc = ucx_.open(false, "remote access")) return rc;
    if (dragonError_t rc = ucx_.set_handler(k_am_reply, &Client::on_reply, this, "remote access", "reply")) {
        ucx_.close();
        return rc;
    }
    open_ = true;
    return DRAGON_SUCCESS;
}

void Client::close() {
    while (!connections_.empty()) {
        const std::string agent = connections_.begin()->first;  // drop() erases the key
        drop(agent);
    }
    ucx_.close();
    open_ = false;
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

// Drops the connection and reports what failed. The pieces' pending sends (a write's
// bytes leave from the caller's buffer) are complete and freed before this returns,
// however long UCX takes (finish_request_now): UCX reads no byte of the caller's buffer
// once the call returned. The pieces' sequences are cleared first, so that a reply UCX
// delivers while the endpoint closes is not copied into the buffer.
// `agent` is a copy: drop() destroys the connection, whose name a caller may have passed.
dragonError_t Client::lost(std::string agent, ucs_status_t status, const char* during) {
    abandon(agent);
    if (status == UCS_ERR_TIMED_OUT)
        return failf(DRAGON_TIMEOUT, "agent {}: timed out {}; the connection was dropped", agent, during);
    if (status == UCS_ERR_REJECTED)
        return failf(DRAGON_FAILURE,
                     "agent {}: it rejected the connection: it has as many client connections as it takes (its "
                     "log says so); nothing was moved",
                     agent);
    return failf(DRAGON_FAILURE, "agent {}: {} failed: {} (is `dragonmem serve` running there?)", agent, during,
                 ucs_status_string(status));
}

// What lost() does before it reports: every piece's reply ignored from now on, the
// connection force-closed, every send complete. Also run when something throws while
// pieces are in flight (transfer's guard).
void Client::abandon(const std::string& agent) noexcept {
    for (Piece& piece : pieces_) piece.sequence = 0;
    drop(agent);
    for (Piece& piece : pieces_) {
        if (piece.sending != nullptr) finish_request_now(ucx_.worker(), piece.sending);
        piece = Piece{};
    }
}

// Frees `request` if it completed; its status, or UCS_INPROGRESS (kept).
ucs_status_t take_if_done(ucs_status_ptr_t& request) {
    if (request == nullptr) return UCS_OK;
    const ucs_status_t st = ucp_request_check_status(request);
    if (st == UCS_INPROGRESS) return st;
    ucp_request_free(request);
    request = nullptr;
    return st;
}

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
    const std::string agent = pool.agent;
    // A transfer goes as pieces of at most k_piece_bytes, one request each, up to
    // k_pieces_in_flight of them at once. UCX assembles an eager message in a buffer as
    // large as the message, at the receiver (the agent for a write, this process for a
    // read): bounded pieces bound that buffer, and glibc reuses it from one piece to the
    // next instead of mapping and faulting in a fresh one per call (64 MiB reads were 2-4
    // times slower as one message). Pieces in flight keep the link busy while the agent
    // answers one. The agent checks each piece like a call of its own; a piece refused
    // (the allocation freed meanwhile, say) ends the call with its refusal once the pieces
    // in flight are done; others may have moved (remote.h says so).
    auto* bytes = static_cast<unsigned char*>(buffer);
    const char* during = access == Access::write ? "sending the bytes" : "waiting for the reply";
    // Nothing of the call may outlive it, also when something below throws (an allocation
    // failing) while pieces are in flight.
    struct InFlightGuard {
        Client& client;
        const std::string& agent;
        ~InFlightGuard() {
            if (std::any_of(client.pieces_.begin(), client.pieces_.end(), [](const Piece& p) { return p.sequence != 0; }))
                client.abandon(agent);
        }
    } guard{*this, agent};
    // A piece refused with EAGAIN (the agent busy) in a call of several pieces is sent
    // again after a pause, within the deadline, so that a busy agent does not end a call
    // half done; a call of one piece returns EAGAIN, nothing moved.
    const bool several = range.length > k_piece_bytes;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> again;  // (at, length) to send again
    auto again_after = std::chrono::steady_clock::now();
    auto pause = std::chrono::milliseconds(1);
    std::uint64_t requested = 0;  // bytes of the range asked for a first time so far
    bool first = true;            // a call of 0 bytes is one request (the agent checks it)
    std::optional<Piece> refused;  // the first in the range, of the pieces refused
    unsigned spins = 0;
    for (;;) {
        // Completions first, so that no piece is sent after one was refused.
        bool busy = false;
        for (Piece& slot : pieces_) {
            if (slot.sequence == 0) continue;
            if (ucs_status_t st = take_if_done(slot.sending); st != UCS_OK && st != UCS_INPROGRESS)
                return lost(agent, st, during);
            if (slot.sending != nullptr || !slot.replied) {
                busy = true;
                continue;
            }
            if (slot.rc == DRAGON_EAGAIN && several) {
                if (!refused) {  // else the call ends with the refusal: this piece is not sent again
                    again.emplace_back(slot.at, slot.length);
                    again_after = std::chrono::steady_clock::now() + pause;
                    pause = std::min(pause * 2, std::chrono::milliseconds(64));
                }
            } else if (slot.rc != DRAGON_SUCCESS && (!refused || slot.at < refused->at)) {
                refused = std::move(slot);
            }
            slot = Piece{};
        }
        const bool all_asked = requested == range.length && !first && again.empty();
        if (!busy && (refused || all_asked)) break;
        if (connection->failure != UCS_OK) return lost(agent, connection->failure, during);
        for (Piece& slot : pieces_) {
            if (refused) break;
            if (slot.sequence != 0) continue;
            std::uint64_t at = requested;
            std::uint64_t length = std::min(range.length - requested, k_piece_bytes);
            if (!again.empty()) {
                if (std::chrono::steady_clock::now() < again_after) break;
                std::tie(at, length) = again.back();
                again.pop_back();
            } else if (requested == range.length && !first) {
                break;
            } else {
                requested += length;
                first = false;
            }
            const RemoteRange piece{range.id, range.offset + at, length};
            if (dragonError_t rc = send_piece(*connection, pool, piece, bytes + at, access, slot)) return rc;
            slot.at = at;
        }
        ucx_.progress_or_sleep();
        if (deadline && (++spins % 64) == 0 && deadline_passed(*deadline)) return lost(agent, UCS_ERR_TIMED_OUT, during);
    }
    if (!refused) return DRAGON_SUCCESS;
    if (!several) return failf(refused->rc, "agent {}: {}", agent, refused->message);
    return failf(refused->rc, "agent {}: {} (of the piece of {} B at byte {} of this {} B call; other pieces may have moved)",
                 agent, refused->message, refused->length, refused->at, range.length);
}

// Sends `range`'s request (and a write's bytes, from `buffer`) into the free `slot`. The
// reply and the send's completion are awaited by transfer.
dragonError_t Client::send_piece(Connection& connection, const PoolIdentity& pool, const RemoteRange& range,
                                 void* buffer, Access access, Piece& slot) {
    AccessRequest request;
    request.access = access;
    request.sequence = next_sequence_++;
    request.nonce = pool.nonce;
    request.id = range.id;
    request.offset = range.offset;
    request.length = range.length;
    request.secret = pool.secret;
    request.pool_name = pool.name;
    slot = Piece{};
    slot.header = encode_request(request);
    slot.sequence = request.sequence;
    slot.access = access;
    slot.buffer = buffer;
    slot.length = range.length;
    // The request is the message's header; a write's bytes its data, sent from the
    // caller's buffer (the agent checks the request before it takes them in). Eagerly,
    // always: the agent refuses a rendezvous (it could carry a key to the caller's memory).
    ucp_request_param_t send{};
    send.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    send.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER;  // the agent answers on the endpoint it got
    const bool write = access == Access::write && range.length != 0;
    const ucs_status_ptr_t sending = ucp_am_send_nbx(connection.ep, k_am_request, slot.header.data(), slot.header.size(),
                                                     write ? buffer : nullptr, write ? range.length : 0, &send);
    if (UCS_PTR_IS_ERR(sending)) return lost(connection.agent, UCS_PTR_STATUS(sending), "sending the request");  // copied
    slot.sending = sending;
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
