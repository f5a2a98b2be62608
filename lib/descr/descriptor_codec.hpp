// Serialized descriptors: our own versioned, checksummed wire format (not Dragon's bytes).
//
//   offset size field
//   0      4    magic "DMDS"
//   4      2    format version (2; version 1 is still read)
//   6      2    kind: 1 pool, 2 memory
//   8      4    total length in bytes
//   12     4    CRC-32C of the whole descriptor, these four bytes read as zero
//   16     40   pool: hostid, rt_uid, m_uid, nonce, heap_bytes (u64 little-endian)
//   56     1    id slot bits
//   57     1    name length n (1..29)
//   58     n    name
//   version 2 only:
//   58+n   16   the pool's secret (never all zero)
//   74+n   1    agent address length a (0..63; 0: no agent known)
//   75+n   a    agent address, "HOST:PORT" (agent_address.hpp)
//   memory descriptors continue with u64 id, type, block_offset, requested_bytes,
//   view_offset, view_bytes.
//
// Version 1 (before pools had a secret) has no secret and no agent: it decodes with both
// empty and works as before, and a descriptor whose secret is unknown is written as
// version 1 again, so re-serializing an old descriptor gives the same bytes.
//
// Decoding is strict: any length, magic, version, kind, checksum or field that is off
// gives INVALID_ARGUMENT with a message; nothing is read past the given bytes.
#pragma once

#include <dragon/return_codes.h>
#include <dragonmem/detail/refs.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dragonmem::detail {

inline constexpr std::size_t k_pool_serial_min = 59;                 // version 1, one-char name
inline constexpr std::size_t k_agent_address_max = 63;
inline constexpr std::size_t k_pool_serial_max = 58 + 29 + 16 + 1 + k_agent_address_max;
inline constexpr std::size_t k_memory_serial_max = k_pool_serial_max + 48;

struct DecodedMemory {
    PoolIdentity pool;
    std::uint64_t id = 0;
    std::uint64_t type = 0;
    std::uint64_t block_offset = 0;
    std::uint64_t requested_bytes = 0;
    std::uint64_t view_offset = 0;
    std::uint64_t view_bytes = 0;
};

std::vector<std::uint8_t> encode_pool(const PoolIdentity& pool);
std::vector<std::uint8_t> encode_memory(const DecodedMemory& memory);

dragonError_t decode_pool(std::span<const std::uint8_t> bytes, PoolIdentity& out);
dragonError_t decode_memory(std::span<const std::uint8_t> bytes, DecodedMemory& out);

}  // namespace dragonmem::detail
