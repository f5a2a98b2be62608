// The agent's control messages: a client asks the agent to move a byte range of an
// allocation into or out of a buffer of the client's, the agent answers when it is done
// (or why not). They travel as UCX active messages (agent.cpp, remote_client.cpp); the
// data itself never does: the agent moves it by one-sided put/get between the pool and
// the client's buffer, which the client registered for this one request (its rkey is in
// the request). No key to pool memory ever leaves the agent.
//
// Request, little-endian:            Reply, little-endian:
//   0   4  magic "DMRQ"                0   4  magic "DMRP"
//   4   2  version (2)                 4   2  version (2)
//   6   2  access: 1 read, 2 write     6   2  reserved (0)
//   8   8  sequence number             8   8  the request's sequence number
//   16  8  pool instance (nonce)       16  4  dragonError_t (0: done)
//   24  8  allocation id               20  2  message bytes m (0 when done)
//   32  8  offset in the allocation    22  2  reserved (0)
//   40  8  length                      24  m  message (UTF-8, no NUL)
//   48  16 the pool's secret
//   64  8  the client buffer's address
//   72  2  the buffer's packed rkey bytes r (ucp_rkey_pack; 0 exactly when length is 0)
//   74  1  name length n (1..29)
//   75  n  pool name
//   75+n r packed rkey
// Decoding is strict (exact lengths, magic, version, access, name rules): a malformed
// request is answered with INVALID_ARGUMENT, never trusted.
#pragma once

#include <dragon/return_codes.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dragonmem::detail {

inline constexpr unsigned k_am_request = 0xD1;  // active-message ids
inline constexpr unsigned k_am_reply = 0xD2;
inline constexpr std::size_t k_request_rkey_max = 4096;
inline constexpr std::size_t k_request_fixed_bytes = 75;
inline constexpr std::size_t k_request_max_bytes = k_request_fixed_bytes + 29 + k_request_rkey_max;
inline constexpr std::size_t k_reply_message_max = 1024;

enum class Access : std::uint16_t { read = 1, write = 2 };

struct AccessRequest {
    Access access = Access::read;
    std::uint64_t sequence = 0;
    std::uint64_t nonce = 0;
    std::uint64_t id = 0;
    std::uint64_t offset = 0;  // from the allocation's first byte
    std::uint64_t length = 0;
    std::array<std::uint8_t, 16> secret{};
    std::uint64_t buffer_address = 0;  // in the client
    std::vector<std::uint8_t> buffer_rkey;
    std::string pool_name;
};

struct AccessReply {
    std::uint64_t sequence = 0;
    dragonError_t rc = DRAGON_SUCCESS;
    std::string message;
};

std::vector<std::uint8_t> encode_request(const AccessRequest& request);
// INVALID_ARGUMENT with a message when `bytes` is not a well-formed request.
dragonError_t decode_request(std::span<const std::uint8_t> bytes, AccessRequest& out);
std::vector<std::uint8_t> encode_reply(const AccessReply& reply);
dragonError_t decode_reply(std::span<const std::uint8_t> bytes, AccessReply& out);

}  // namespace dragonmem::detail
