// Table-driven CRC-32C; descriptors are tens of bytes, so a byte-wise table is plenty.
#include "checksum.hpp"

#include <array>

namespace dragonmem::detail {

namespace {

constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t crc = i;
        for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        table[i] = crc;
    }
    return table;
}

constexpr std::array<std::uint32_t, 256> k_table = make_table();

}  // namespace

std::uint32_t crc32c_update(std::uint32_t state, const void* data, std::size_t len) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < len; ++i) state = k_table[(state ^ bytes[i]) & 0xFF] ^ (state >> 8);
    return state;
}

std::uint32_t crc32c(const void* data, std::size_t len) { return ~crc32c_update(k_crc32c_init, data, len); }

}  // namespace dragonmem::detail
