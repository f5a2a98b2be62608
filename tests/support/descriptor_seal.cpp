// Independent CRC-32C and descriptor re-sealing (see descriptor_seal.hpp).
#include "descriptor_seal.hpp"

namespace dmtest {

std::uint32_t crc32c_update(std::uint32_t state, const std::uint8_t* data, std::size_t len) {
    for (std::size_t i = 0; i < len; ++i) {
        state ^= data[i];
        for (int bit = 0; bit < 8; ++bit) state = (state >> 1) ^ (0x82F63B78u & (0u - (state & 1u)));
    }
    return state;
}

std::uint32_t crc32c(const std::uint8_t* data, std::size_t len) { return ~crc32c_update(k_crc32c_init, data, len); }

void reseal(std::vector<std::uint8_t>& d) {
    if (d.size() < 16) return;
    const auto length = static_cast<std::uint32_t>(d.size());
    for (std::size_t i = 0; i < 4; ++i) d[k_length_at + i] = static_cast<std::uint8_t>(length >> (8 * i));
    for (std::size_t i = 0; i < 4; ++i) d[k_crc_at + i] = 0;
    const std::uint32_t crc = crc32c(d.data(), d.size());
    for (std::size_t i = 0; i < 4; ++i) d[k_crc_at + i] = static_cast<std::uint8_t>(crc >> (8 * i));
}

}  // namespace dmtest
