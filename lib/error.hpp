// Failure reporting inside the library: every failing path records a thread-local
// message (what failed, why, the values involved) and returns a dragonError_t.
#pragma once

#include <dragon/return_codes.h>

#include <fmt/format.h>

#include <string>

namespace dragonmem::detail {

// Records `message` as this thread's last error and returns `code`.
dragonError_t fail(dragonError_t code, std::string message);

template <typename... Args>
dragonError_t failf(dragonError_t code, fmt::format_string<Args...> format, Args&&... args) {
    return fail(code, fmt::format(format, std::forward<Args>(args)...));
}

// Same, with strerror(errno_value) appended: for failed system calls.
dragonError_t fail_errno(dragonError_t code, int errno_value, const std::string& what);

const std::string& last_error_message();

// Throws dragonmem::Error(code, last message) when code is not DRAGON_SUCCESS.
void throw_if_failed(dragonError_t code);

}  // namespace dragonmem::detail
