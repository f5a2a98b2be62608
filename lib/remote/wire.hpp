// The agent's messages: a client asks the agent to read or write a byte range of an
// allocation, the agent answers with the outcome (and, for a read, the bytes). Both
// travel as UCX active messages (agent.cpp, remote_client.cpp); the request and the
// reply are the messages' headers, the bytes their data:
//   a read:  client -> agent  request (no data)
//            agent -> client  reply; data: the range's bytes, sent from the pool
//   a write: client -> agent  request; data: the bytes, sent from the caller's buffer
//                             (the agent checks the request before it takes them in)
//            agent -> client  reply (no data)
// A refusal's reply carries its message as data. No address or key of either side is
// in these messages: nothing one-sided is offered (design.md 3.4).
//
// Request (the header), little-endian:  Reply (the header), little-endian:
//   0   4  magic "DMRQ"                    0   4  magic "DMRP"
//   4   2  version (3)                     4   2  version (3)
//   6   2  access: 1 read, 2 write         6   2  reserved (0)
//   8   8  sequence number                 8   8  the request's sequence number
//   16  8  pool instance (nonce)           16  4  dragonError_t (0: done)
//   24  8  allocation id                   20  4  reserved (0)
//   32  8  offset in the allocation
//   40  8  length
//   48  16 the pool's secret
//   64  1  name length n (1..29)
//   65  n  pool name
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
inline constexpr std::size_t k_request_fixed_bytes = 65;
inline constexpr std::size_t k_request_max_bytes = k_request_fixed_bytes + 29;
inline constexpr std::size_t k_reply_bytes = 24;
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
    std::string pool_name;
};

struct AccessReply {
    std::uint64_t sequence = 0;
    dragonError_t rc = DRAGON_SUCCESS;
};

std::vector<std::uint8_t> encode_request(const AccessRequest& request);
// INVALID_ARGUMENT with a message when `bytes` is not a well-formed request.
dragonError_t decode_request(std::span<const std::uint8_t> bytes, AccessRequest& out);
std::array<std::uint8_t, k_reply_bytes> encode_reply(const AccessReply& reply);
// FAILURE with a message when `bytes` is not a well-formed reply.
dragonError_t decode_reply(std::span<const std::uint8_t> bytes, AccessReply& out);

}  // namespace dragonmem::detail
