// Encoding and strict decoding of the agent's control messages (wire.hpp).
#include "remote/wire.hpp"

#include "os/error.hpp"
#include "pool/pool_name.hpp"

#include <algorithm>
#include <cstring>

namespace dragonmem::detail {

namespace {

constexpr std::uint32_t k_request_magic = 0x51524D44;  // "DMRQ" little-endian
constexpr std::uint32_t k_reply_magic = 0x50524D44;    // "DMRP"
constexpr std::uint16_t k_wire_version = 3;

template <typename T>
void put(std::vector<std::uint8_t>& out, T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

template <typename T>
T get(std::span<const std::uint8_t> bytes, std::size_t at) {
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) value |= static_cast<T>(static_cast<T>(bytes[at + i]) << (8 * i));
    return value;
}

}  // namespace

std::vector<std::uint8_t> encode_request(const AccessRequest& request) {
    std::vector<std::uint8_t> out;
    out.reserve(k_request_fixed_bytes + request.pool_name.size());
    put<std::uint32_t>(out, k_request_magic);
    put<std::uint16_t>(out, k_wire_version);
    put<std::uint16_t>(out, static_cast<std::uint16_t>(request.access));
    put<std::uint64_t>(out, request.sequence);
    put<std::uint64_t>(out, request.nonce);
    put<std::uint64_t>(out, request.id);
    put<std::uint64_t>(out, request.offset);
    put<std::uint64_t>(out, request.length);
    out.insert(out.end(), request.secret.begin(), request.secret.end());
    put<std::uint8_t>(out, static_cast<std::uint8_t>(request.pool_name.size()));
    out.insert(out.end(), request.pool_name.begin(), request.pool_name.end());
    return out;
}

dragonError_t decode_request(std::span<const std::uint8_t> bytes, AccessRequest& out) {
    if (bytes.size() < k_request_fixed_bytes + 1 || bytes.size() > k_request_max_bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "access request of {} bytes: a request has {} to {}", bytes.size(),
                     k_request_fixed_bytes + 1, k_request_max_bytes);
    if (std::uint32_t magic = get<std::uint32_t>(bytes, 0); magic != k_request_magic)
        return failf(DRAGON_INVALID_ARGUMENT, "access request has wrong magic {:#010x}", magic);
    if (std::uint16_t version = get<std::uint16_t>(bytes, 4); version != k_wire_version)
        return failf(DRAGON_INVALID_ARGUMENT, "access request has version {}; this agent speaks version {}", version,
                     k_wire_version);
    const std::uint16_t access = get<std::uint16_t>(bytes, 6);
    if (access != static_cast<std::uint16_t>(Access::read) && access != static_cast<std::uint16_t>(Access::write))
        return failf(DRAGON_INVALID_ARGUMENT, "access request asks for access {} (1 read, 2 write)", access);
    out.access = static_cast<Access>(access);
    out.sequence = get<std::uint64_t>(bytes, 8);
    out.nonce = get<std::uint64_t>(bytes, 16);
    out.id = get<std::uint64_t>(bytes, 24);
    out.offset = get<std::uint64_t>(bytes, 32);
    out.length = get<std::uint64_t>(bytes, 40);
    std::memcpy(out.secret.data(), bytes.data() + 48, out.secret.size());
    const std::size_t name_len = bytes[64];
    if (k_request_fixed_bytes + name_len != bytes.size())
        return failf(DRAGON_INVALID_ARGUMENT, "access request of {} bytes has a pool name of {}", bytes.size(), name_len);
    out.pool_name.assign(reinterpret_cast<const char*>(bytes.data() + k_request_fixed_bytes), name_len);
    return validate_pool_name(out.pool_name);
}

std::array<std::uint8_t, k_reply_bytes> encode_reply(const AccessReply& reply) {
    std::vector<std::uint8_t> out;
    out.reserve(k_reply_bytes);
    put<std::uint32_t>(out, k_reply_magic);
    put<std::uint16_t>(out, k_wire_version);
    put<std::uint16_t>(out, 0);
    put<std::uint64_t>(out, reply.sequence);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(reply.rc));
    put<std::uint32_t>(out, 0);
    std::array<std::uint8_t, k_reply_bytes> bytes{};
    std::copy(out.begin(), out.end(), bytes.begin());
    return bytes;
}

dragonError_t decode_reply(std::span<const std::uint8_t> bytes, AccessReply& out) {
    if (bytes.size() != k_reply_bytes)
        return failf(DRAGON_FAILURE, "the agent's reply header has {} bytes ({} expected)", bytes.size(), k_reply_bytes);
    if (get<std::uint32_t>(bytes, 0) != k_reply_magic || get<std::uint16_t>(bytes, 4) != k_wire_version)
        return failf(DRAGON_FAILURE, "the agent's reply has wrong magic or version (magic {:#010x}, version {})",
                     get<std::uint32_t>(bytes, 0), get<std::uint16_t>(bytes, 4));
    out.sequence = get<std::uint64_t>(bytes, 8);
    out.rc = static_cast<dragonError_t>(get<std::uint32_t>(bytes, 16));
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
