// CRC-32C (Castagnoli): the checksum that seals serialized descriptors.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dragonmem::detail {

std::uint32_t crc32c(const void* data, std::size_t len);

// Incremental form: start from k_crc32c_init, feed pieces, finish with ~state.
inline constexpr std::uint32_t k_crc32c_init = 0xFFFFFFFFu;
std::uint32_t crc32c_update(std::uint32_t state, const void* data, std::size_t len);

}  // namespace dragonmem::detail
