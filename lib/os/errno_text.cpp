// errno_text(): strerror_r into a buffer of the calling thread.
#include "os/errno_text.hpp"

#include <cstdio>
#include <cstring>

namespace dragonmem::detail {

namespace {

// The GNU strerror_r returns the text (a static string, or the buffer); the POSIX one
// fills the buffer and returns 0. Overloads pick whichever this C library declares.
[[maybe_unused]] const char* text_of(const char* gnu_result, const char*) noexcept { return gnu_result; }
[[maybe_unused]] const char* text_of(int posix_result, const char* buffer) noexcept {
    return posix_result == 0 ? buffer : nullptr;
}

}  // namespace

const char* errno_text(int err) noexcept {
    thread_local char buffer[128];
    const char* text = text_of(::strerror_r(err, buffer, sizeof buffer), buffer);
    if (text != nullptr) return text;
    std::snprintf(buffer, sizeof buffer, "unknown error %d", err);
    return buffer;
}

}  // namespace dragonmem::detail
