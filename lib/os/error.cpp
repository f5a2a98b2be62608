// Thread-local last-error storage and the C++ exception bridge.
#include "os/error.hpp"
#include "os/errno_text.hpp"

#include <dragonmem/error.hpp>
#include <dragonmem/system_error.hpp>

#include <algorithm>
#include <cstring>

namespace dragonmem::detail {

namespace {
thread_local std::string t_last_message;
thread_local int t_last_errno = 0;
}

dragonError_t fail(dragonError_t code, std::string_view message) noexcept {
    t_last_errno = 0;
    try {
        t_last_message.assign(message);
    } catch (...) {
        // Within its current capacity (at least the small-string buffer) a string's
        // assign does not allocate.
        t_last_message.assign(message.substr(0, std::min(message.size(), t_last_message.capacity())));
    }
    return code;
}

dragonError_t fail_truncated(dragonError_t code, fmt::string_view format, fmt::format_args args) noexcept {
    char text[512];
    try {
        auto written = fmt::vformat_to_n(text, sizeof text - 1, format, args);
        *written.out = '\0';
    } catch (...) {
        return fail(code, "(no memory left to format the error message)");
    }
    return fail(code, text);
}

dragonError_t fail_errno(dragonError_t code, int errno_value, std::string_view what) noexcept {
    return with_errno(failf(code, "{}: {} (errno {})", what, errno_text(errno_value), errno_value), errno_value);
}

dragonError_t with_errno(dragonError_t code, int errno_value) noexcept {
    t_last_errno = errno_value;
    return code;
}

int last_error_errno() noexcept { return t_last_errno; }

const std::string& last_error_message() { return t_last_message; }

void throw_if_failed(dragonError_t code) {
    if (code == DRAGON_SUCCESS) return;
    if (t_last_errno != 0) throw SystemError(code, t_last_message, t_last_errno);
    throw Error(code, t_last_message);
}

}  // namespace dragonmem::detail
