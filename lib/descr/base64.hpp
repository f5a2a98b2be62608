// Standard base64 (RFC 4648, with padding): how descriptors travel in text
// (environment variables, the CLI's JSON).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem::detail {

std::string base64_encode(std::span<const std::uint8_t> bytes);

// Strict: rejects characters outside the alphabet, bad padding and lengths that are
// not a multiple of 4 (surrounding whitespace is trimmed). nullopt on bad input.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace dragonmem::detail
