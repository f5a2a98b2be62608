// Encoding and strict decoding of pool and memory descriptors (format in the header).
#include "descr/descriptor_codec.hpp"

#include "descr/agent_address.hpp"
#include "descr/checksum.hpp"
#include "os/error.hpp"
#include "pool/pool_name.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace dragonmem::detail {

namespace {

constexpr std::uint32_t k_magic = 0x53444D44;  // "DMDS" little-endian
constexpr std::uint16_t k_version_plain = 1;   // no secret, no agent
constexpr std::uint16_t k_version = 2;
constexpr std::uint16_t k_kind_pool = 1;
constexpr std::uint16_t k_kind_memory = 2;
constexpr std::size_t k_crc_at = 12;

// Appends little-endian fields to a fixed buffer; the vector is made once at the end.
struct Writer {
    std::uint8_t bytes[k_memory_serial_max];
    std::size_t size = 0;
    std::vector<std::uint8_t> take() const { return {bytes, bytes + size}; }
};

template <typename T>
void put(Writer& out, T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out.bytes[out.size++] = static_cast<std::uint8_t>(value >> (8 * i));
}

template <typename T>
T get(std::span<const std::uint8_t> bytes, std::size_t at) {
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) value |= static_cast<T>(static_cast<T>(bytes[at + i]) << (8 * i));
    return value;
}

std::uint32_t crc_of(std::span<const std::uint8_t> bytes) {
    // CRC of the whole descriptor with its CRC field read as zero.
    constexpr std::uint8_t zeros[4] = {0, 0, 0, 0};
    std::uint32_t state = crc32c_update(k_crc32c_init, bytes.data(), k_crc_at);
    state = crc32c_update(state, zeros, sizeof zeros);
    state = crc32c_update(state, bytes.data() + k_crc_at + 4, bytes.size() - k_crc_at - 4);
    return ~state;
}

bool has_secret(const PoolIdentity& pool) {
    return std::any_of(pool.secret.begin(), pool.secret.end(), [](std::uint8_t b) { return b != 0; });
}

void encode_pool_fields(Writer& out, const PoolIdentity& pool) {
    put<std::uint64_t>(out, pool.hostid);
    put<std::uint64_t>(out, pool.rt_uid);
    put<std::uint64_t>(out, pool.m_uid);
    put<std::uint64_t>(out, pool.nonce);
    put<std::uint64_t>(out, pool.heap_bytes);
    put<std::uint8_t>(out, static_cast<std::uint8_t>(pool.id_slot_bits));
    put<std::uint8_t>(out, static_cast<std::uint8_t>(pool.name.size()));
    std::memcpy(out.bytes + out.size, pool.name.data(), pool.name.size());
    out.size += pool.name.size();
    if (!has_secret(pool)) return;  // version 1
    std::memcpy(out.bytes + out.size, pool.secret.data(), pool.secret.size());
    out.size += pool.secret.size();
    const std::size_t agent_len = std::min(pool.agent.size(), k_agent_address_max);  // validated where set
    put<std::uint8_t>(out, static_cast<std::uint8_t>(agent_len));
    std::memcpy(out.bytes + out.size, pool.agent.data(), agent_len);
    out.size += agent_len;
}

void start(Writer& out, std::uint16_t kind, const PoolIdentity& pool) {
    put<std::uint32_t>(out, k_magic);
    put<std::uint16_t>(out, has_secret(pool) ? k_version : k_version_plain);
    put<std::uint16_t>(out, kind);
    put<std::uint32_t>(out, 0);  // length, patched by seal()
    put<std::uint32_t>(out, 0);  // crc, patched by seal()
}

std::vector<std::uint8_t> seal(Writer& out) {
    auto length = static_cast<std::uint32_t>(out.size);
    for (int i = 0; i < 4; ++i) out.bytes[8 + i] = static_cast<std::uint8_t>(length >> (8 * i));
    std::uint32_t crc = crc_of({out.bytes, out.size});
    for (int i = 0; i < 4; ++i) out.bytes[k_crc_at + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    return out.take();
}

// Checks the envelope and decodes the pool part; `end` receives where it stopped.
dragonError_t decode_envelope(std::span<const std::uint8_t> bytes, std::uint16_t want_kind, PoolIdentity& pool,
                              std::size_t& end) {
    const char* what = want_kind == k_kind_pool ? "pool descriptor" : "memory descriptor";
    if (bytes.data() == nullptr || bytes.empty())
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} is empty", what);
    if (bytes.size() < k_pool_serial_min)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} is truncated: {} bytes, at least {} needed", what,
                     bytes.size(), k_pool_serial_min);
    std::size_t max = want_kind == k_kind_pool ? k_pool_serial_max : k_memory_serial_max;
    if (bytes.size() > max)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} is oversized: {} bytes, at most {}", what, bytes.size(), max);
    if (std::uint32_t magic = get<std::uint32_t>(bytes, 0); magic != k_magic)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} has wrong magic {:#010x} (expected {:#010x})", what, magic,
                     k_magic);
    const std::uint16_t version = get<std::uint16_t>(bytes, 4);
    if (version != k_version && version != k_version_plain)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} has format version {}; this library reads versions {} and {}",
                     what, version, k_version_plain, k_version);
    if (std::uint16_t kind = get<std::uint16_t>(bytes, 6); kind != want_kind)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} has kind {} (1 = pool, 2 = memory; expected {})", what,
                     kind, want_kind);
    if (std::uint32_t length = get<std::uint32_t>(bytes, 8); length != bytes.size())
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} says it has {} bytes but {} were given", what, length,
                     bytes.size());
    std::uint32_t stored_crc = get<std::uint32_t>(bytes, k_crc_at);
    if (std::uint32_t crc = crc_of(bytes); crc != stored_crc)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} is corrupt: checksum {:#010x}, computed {:#010x}", what,
                     stored_crc, crc);
    pool.hostid = get<std::uint64_t>(bytes, 16);
    pool.rt_uid = get<std::uint64_t>(bytes, 24);
    pool.m_uid = get<std::uint64_t>(bytes, 32);
    pool.nonce = get<std::uint64_t>(bytes, 40);
    pool.heap_bytes = get<std::uint64_t>(bytes, 48);
    pool.id_slot_bits = bytes[56];
    std::size_t name_len = bytes[57];
    if (58 + name_len > bytes.size())
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} is truncated: name of {} bytes does not fit", what, name_len);
    pool.name.assign(reinterpret_cast<const char*>(bytes.data() + 58), name_len);
    if (dragonError_t rc = validate_pool_name(pool.name)) return rc;
    if (pool.hostid == 0 || pool.nonce == 0)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} has a zero hostid or pool instance", what);
    if (!std::has_single_bit(pool.heap_bytes) || pool.heap_bytes < 256)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} has impossible heap size {}", what, pool.heap_bytes);
    if (pool.id_slot_bits == 0 || pool.id_slot_bits > 32)
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} has impossible id slot bits {}", what, pool.id_slot_bits);
    end = 58 + name_len;
    pool.secret = {};
    pool.agent.clear();
    if (version == k_version_plain) return DRAGON_SUCCESS;
    if (end + pool.secret.size() + 1 > bytes.size())
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} is truncated: no room for the pool's secret", what);
    std::memcpy(pool.secret.data(), bytes.data() + end, pool.secret.size());
    end += pool.secret.size();
    if (!has_secret(pool))
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} (format {}) has an all-zero secret", what, version);
    const std::size_t agent_len = bytes[end++];
    if (agent_len > k_agent_address_max || end + agent_len > bytes.size())
        return failf(DRAGON_INVALID_ARGUMENT, "serialized {} is truncated: agent address of {} bytes does not fit", what,
                     agent_len);
    pool.agent.assign(reinterpret_cast<const char*>(bytes.data() + end), agent_len);
    end += agent_len;
    if (agent_len != 0) {
        if (dragonError_t rc = validate_agent_address(pool.agent, "the descriptor's agent address")) return rc;
    }
    return DRAGON_SUCCESS;
}

}  // namespace

std::vector<std::uint8_t> encode_pool(const PoolIdentity& pool) {
    Writer out;
    start(out, k_kind_pool, pool);
    encode_pool_fields(out, pool);
    return seal(out);
}

std::vector<std::uint8_t> encode_memory(const DecodedMemory& memory) {
    Writer out;
    start(out, k_kind_memory, memory.pool);
    encode_pool_fields(out, memory.pool);
    put<std::uint64_t>(out, memory.id);
    put<std::uint64_t>(out, memory.type);
    put<std::uint64_t>(out, memory.block_offset);
    put<std::uint64_t>(out, memory.requested_bytes);
    put<std::uint64_t>(out, memory.view_offset);
    put<std::uint64_t>(out, memory.view_bytes);
    return seal(out);
}

dragonError_t decode_pool(std::span<const std::uint8_t> bytes, PoolIdentity& out) {
    std::size_t end = 0;
    if (dragonError_t rc = decode_envelope(bytes, k_kind_pool, out, end)) return rc;
    if (end != bytes.size())
        return failf(DRAGON_INVALID_ARGUMENT, "serialized pool descriptor has {} trailing bytes", bytes.size() - end);
    return DRAGON_SUCCESS;
}

dragonError_t decode_memory(std::span<const std::uint8_t> bytes, DecodedMemory& out) {
    std::size_t end = 0;
    if (dragonError_t rc = decode_envelope(bytes, k_kind_memory, out.pool, end)) return rc;
    if (end + 48 != bytes.size())
        return failf(DRAGON_INVALID_ARGUMENT, "serialized memory descriptor has {} bytes; {} expected", bytes.size(),
                     end + 48);
    out.id = get<std::uint64_t>(bytes, end);
    out.type = get<std::uint64_t>(bytes, end + 8);
    out.block_offset = get<std::uint64_t>(bytes, end + 16);
    out.requested_bytes = get<std::uint64_t>(bytes, end + 24);
    out.view_offset = get<std::uint64_t>(bytes, end + 32);
    out.view_bytes = get<std::uint64_t>(bytes, end + 40);
    std::uint64_t heap = out.pool.heap_bytes;
    if (out.id == 0) {
        if (out.requested_bytes != 0 || out.view_bytes != 0 || out.view_offset != 0 || out.block_offset != 0)
            return failf(DRAGON_INVALID_ARGUMENT, "serialized memory descriptor of id 0 must describe zero bytes");
        return DRAGON_SUCCESS;
    }
    if (out.requested_bytes == 0 || out.requested_bytes > heap || out.block_offset >= heap ||
        out.view_offset > out.requested_bytes || out.view_bytes > out.requested_bytes - out.view_offset)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "serialized memory descriptor is inconsistent: id {}, block offset {}, size {}, view {}+{} in a "
                     "{} B heap",
                     out.id, out.block_offset, out.requested_bytes, out.view_offset, out.view_bytes, heap);
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
