// The C API's exception barrier. No C++ exception may cross an extern "C" function: a C
// caller cannot catch one, so it would end the process mid-operation (std::terminate).
// Every entry point that can fail runs its body through c_call(), which turns whatever
// escapes (std::bad_alloc from a container, fmt, a map insert...) into an error code and
// the thread's last-error message. Entry points that cannot throw (return-code names,
// maximum serialized lengths) run bare.
#pragma once

#include <dragon/return_codes.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace dragonmem::detail {

// Call only from a catch block: records the exception in flight as the thread's last
// error, as "`op`: ...", and returns its code: DRAGON_INTERNAL_MALLOC_FAIL for
// std::bad_alloc, a dragonmem::Error's own code, DRAGON_FAILURE for anything else.
// Allocates nothing and never throws (it runs when memory is short).
dragonError_t fail_from_exception(const char* op) noexcept;

template <typename Body>
dragonError_t c_call(const char* op, Body&& body) noexcept {
    try {
        return body();
    } catch (...) {
        return fail_from_exception(op);
    }
}

// For the entry points that return a value rather than a code: `fallback` on an exception.
template <typename T, typename Body>
T c_call_or(T fallback, const char* op, Body&& body) noexcept {
    try {
        return body();
    } catch (...) {
        (void)fail_from_exception(op);
        return fallback;
    }
}

// An enum parameter as the integer the C caller passed. C lets any int through (Dragon's
// alloc_type takes any type value), but loading an out-of-range value as the C++ enum type
// is undefined (UBSan's -fsanitize=enum flags it): copy its bytes instead.
template <class Enum>
std::uint64_t raw_enum(const Enum& value) noexcept {
    std::underlying_type_t<Enum> raw;
    std::memcpy(&raw, &value, sizeof raw);
    return static_cast<std::uint64_t>(raw);
}

}  // namespace dragonmem::detail
