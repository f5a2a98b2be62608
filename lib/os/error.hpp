// Failure reporting inside the library: every failing path records a thread-local
// message (what failed, why, the values involved) and returns a dragonError_t.
#pragma once

#include <dragon/return_codes.h>

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace dragonmem::detail {

// Records `message` as this thread's last error and returns `code`. Never throws:
// reporting a failure must not fail itself (it runs under the pool lock, and when memory
// is short). If the message cannot be stored whole, as much of it as fits the storage
// already there is kept.
dragonError_t fail(dragonError_t code, std::string_view message) noexcept;

// failf's fallback: formats into a fixed buffer on the stack.
dragonError_t fail_truncated(dragonError_t code, fmt::string_view format, fmt::format_args args) noexcept;

// fail() with a formatted message; never throws either (when the heap cannot hold the
// message, it is formatted into a fixed buffer on the stack, truncated).
template <typename... Args>
dragonError_t failf(dragonError_t code, fmt::format_string<Args...> format, Args&&... args) noexcept {
    try {
        return fail(code, fmt::format(format, std::forward<Args>(args)...));
    } catch (...) {
        return fail_truncated(code, static_cast<fmt::string_view>(format), fmt::make_format_args(args...));
    }
}

// Same, with strerror(errno_value) appended: for failed system calls.
dragonError_t fail_errno(dragonError_t code, int errno_value, std::string_view what) noexcept;

// Records `errno_value` as the cause of this thread's last error (after fail*/failf, for
// a failed system call) and returns `code`. fail() clears it; fail_errno sets it.
dragonError_t with_errno(dragonError_t code, int errno_value) noexcept;
int last_error_errno() noexcept;

const std::string& last_error_message();

// Throws dragonmem::Error(code, last message) when code is not DRAGON_SUCCESS; a
// dragonmem::SystemError when the last error has an errno.
void throw_if_failed(dragonError_t code);

}  // namespace dragonmem::detail
