// Forging serialized descriptors on purpose: an independent CRC-32C (Castagnoli,
// reflected 0x82F63B78, written here bit by bit, not taken from the library) and the
// re-sealing of a descriptor whose fields a test changed, so the change gets past the
// envelope checks (length and checksum) and reaches the field validation behind them.
// No doctest and no library internals: the unit and robust tests and the fuzz targets
// (tests/fuzz) all use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dmtest {

// Incremental form: start from k_crc32c_init, feed pieces, finish with ~state.
inline constexpr std::uint32_t k_crc32c_init = 0xFFFFFFFFu;
std::uint32_t crc32c_update(std::uint32_t state, const std::uint8_t* data, std::size_t len);
// One-shot: ~crc32c_update(k_crc32c_init, data, len).
std::uint32_t crc32c(const std::uint8_t* data, std::size_t len);

// The envelope every serialized descriptor starts with (lib/descr/descriptor_codec.hpp):
// magic at 0, u16 version at 4, u16 kind at 6, u32 total length at 8, u32 CRC-32C at 12,
// computed over the whole descriptor with the CRC field read as zeros.
inline constexpr std::size_t k_length_at = 8;
inline constexpr std::size_t k_crc_at = 12;

// Sets the length field to the descriptor's size and recomputes the CRC field, so a
// forged body passes the envelope checks. Shorter than 16 bytes: left as it is.
void reseal(std::vector<std::uint8_t>& descriptor);

}  // namespace dmtest
