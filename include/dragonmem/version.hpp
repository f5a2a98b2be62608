// The library's version, as a string and as numbers.
#pragma once

namespace dragonmem {
inline constexpr const char* version_string = "0.1.0";
inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;
}  // namespace dragonmem
