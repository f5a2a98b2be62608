// The agent's control messages: a client asks for access to a byte range of an
// allocation, the agent answers with where it is and the key to reach it (or why not).
// They travel as UCX active messages (agent.cpp, remote_client.cpp); the data itself
// never does: it moves by one-sided get/put.
//
// Request, little-endian:            Reply, little-endian:
//   0   4  magic "DMRQ"                0   4  magic "DMRP"
//   4   2  version (1)                 4   2  version (1)
//   6   2  access: 1 read, 2 write     6   2  reserved (0)
//   8   8  sequence number             8   8  the request's sequence number
//   16  8  pool instance (nonce)       16  4  dragonError_t (0: granted)
//   24  8  allocation id               20  2  packed rkey bytes r (0 when refused)
//   32  8  offset in the allocation    22  2  message bytes m (0 when granted)
//   40  8  length                      24  8  remote address of the range's first byte
//   48  16 the pool's secret           32  r  packed rkey (ucp_rkey_pack)
//   64  1  name length n (1..29)       32+r m message (UTF-8, no NUL)
//   65  n  pool name
// Decoding is strict (exact lengths, magic, version, access, name rules): a malformed
// request is answered with INVALID_ARGUMENT, never trusted; a reply that grants without
// an rkey, or refuses with one, is dropped by the client.
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
inline constexpr std::size_t k_request_max_bytes = 65 + 29;
inline constexpr std::size_t k_reply_message_max = 1024;
inline constexpr std::size_t k_reply_rkey_max = 4096;

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
    std::uint64_t remote_address = 0;
    std::vector<std::uint8_t> rkey;
    std::string message;
};

std::vector<std::uint8_t> encode_request(const AccessRequest& request);
// INVALID_ARGUMENT with a message when `bytes` is not a well-formed request.
dragonError_t decode_request(std::span<const std::uint8_t> bytes, AccessRequest& out);
std::vector<std::uint8_t> encode_reply(const AccessReply& reply);
dragonError_t decode_reply(std::span<const std::uint8_t> bytes, AccessReply& out);

}  // namespace dragonmem::detail
