// The library's version, as a string and as numbers: those of the headers compiled
// against (from <dragonmem/version.h>), and version() for the library loaded at run time.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>
#include <dragonmem/version.h>

namespace dragonmem {
inline constexpr const char* version_string = DRAGONMEM_VERSION_STRING;
inline constexpr int version_major = DRAGONMEM_VERSION_MAJOR;
inline constexpr int version_minor = DRAGONMEM_VERSION_MINOR;
inline constexpr int version_patch = DRAGONMEM_VERSION_PATCH;

// The loaded library's version, e.g. "0.1.0" (the same string as dragonmem_version()).
const char* version() noexcept;
}  // namespace dragonmem
