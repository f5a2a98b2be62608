// Thread-local last-error storage and the C++ exception bridge.
#include "error.hpp"

#include <dragonmem/error.hpp>

#include <cstring>

namespace dragonmem::detail {

namespace {
thread_local std::string t_last_message;
}

dragonError_t fail(dragonError_t code, std::string message) {
    t_last_message = std::move(message);
    return code;
}

dragonError_t fail_errno(dragonError_t code, int errno_value, const std::string& what) {
    return fail(code, fmt::format("{}: {} (errno {})", what, std::strerror(errno_value), errno_value));
}

const std::string& last_error_message() { return t_last_message; }

void throw_if_failed(dragonError_t code) {
    if (code != DRAGON_SUCCESS) throw Error(code, t_last_message);
}

}  // namespace dragonmem::detail
