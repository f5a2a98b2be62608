// Byte codecs and data patterns shared by the test binaries and the dm_child helper:
// base64/hex (written here, independently of the library's own base64) and seeded
// fill patterns, so a reader can tell whose bytes it sees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dmtest {

std::string base64_encode(const std::uint8_t* data, std::size_t len);
inline std::string base64_encode(const std::vector<std::uint8_t>& bytes) {
    return base64_encode(bytes.data(), bytes.size());
}
// Standard alphabet with '=' padding; nullopt on any malformed input.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

std::string hex_encode(const std::uint8_t* data, std::size_t len);
std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view text);

// The byte a pattern with `seed` holds at `index`; never the same for two seeds < 256
// at one index, and varies along the buffer so a shifted copy is caught.
inline std::uint8_t pattern_byte(std::uint64_t seed, std::size_t index) {
    return static_cast<std::uint8_t>((seed * 131u + index * 7u + (index >> 8)) & 0xffu);
}
void fill_pattern(void* dst, std::size_t len, std::uint64_t seed);
// Index of the first byte that differs from the pattern, or -1 when all match.
long long find_pattern_mismatch(const void* src, std::size_t len, std::uint64_t seed);

}  // namespace dmtest
