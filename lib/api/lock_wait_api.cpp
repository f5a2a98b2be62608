// The lock-wait limit's public faces: C++ (dragonmem/lock_wait.hpp) and the C extension
// (dragonmem/lock_wait.h). Both are thin: the setting lives in lock_wait_limit.cpp.
#include <dragonmem/error.hpp>
#include <dragonmem/lock_wait.h>
#include <dragonmem/lock_wait.hpp>

#include "os/error.hpp"
#include "pool/lock_wait_limit.hpp"

namespace dragonmem {

namespace {

std::int64_t to_limit_ns(std::optional<std::chrono::nanoseconds> limit, const char* op) {
    if (!limit) return detail::k_no_lock_wait_limit;
    if (limit->count() < 0) {
        detail::failf(DRAGON_INVALID_ARGUMENT, "{}: the lock-wait limit must not be negative ({} ns)", op,
                      static_cast<long long>(limit->count()));
        detail::throw_if_failed(DRAGON_INVALID_ARGUMENT);
    }
    return static_cast<std::int64_t>(limit->count());
}

std::optional<std::chrono::nanoseconds> from_limit_ns(std::int64_t ns) {
    if (ns < 0) return std::nullopt;
    return std::chrono::nanoseconds(ns);
}

}  // namespace

void set_lock_wait_limit(std::optional<std::chrono::nanoseconds> limit) {
    detail::set_process_lock_wait_limit_ns(to_limit_ns(limit, "set_lock_wait_limit"));
}

std::optional<std::chrono::nanoseconds> lock_wait_limit() {
    return from_limit_ns(detail::process_lock_wait_limit_ns());
}

ThreadLockWaitLimit::ThreadLockWaitLimit(std::optional<std::chrono::nanoseconds> limit)
    : previous_ns_(detail::exchange_thread_lock_wait_limit_ns(to_limit_ns(limit, "ThreadLockWaitLimit"))) {}

ThreadLockWaitLimit::~ThreadLockWaitLimit() { detail::exchange_thread_lock_wait_limit_ns(previous_ns_); }

}  // namespace dragonmem

namespace {

// No exception may cross into C: formatting an error message can run out of memory.
template <typename Fn>
dragonError_t c_call(Fn&& fn) noexcept {
    try {
        return fn();
    } catch (...) {
        return DRAGON_INTERNAL_MALLOC_FAIL;
    }
}

}  // namespace

extern "C" {

dragonError_t dragonmem_set_lock_wait_limit(const struct timespec* limit) {
    return c_call([&] {
        std::int64_t ns = 0;
        if (dragonError_t rc =
                dragonmem::detail::lock_wait_limit_from_timespec(limit, "dragonmem_set_lock_wait_limit", ns))
            return rc;
        dragonmem::detail::set_process_lock_wait_limit_ns(ns);
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragonmem_set_thread_lock_wait_limit(const struct timespec* limit) {
    return c_call([&] {
        std::int64_t ns = 0;
        if (dragonError_t rc =
                dragonmem::detail::lock_wait_limit_from_timespec(limit, "dragonmem_set_thread_lock_wait_limit", ns))
            return rc;
        dragonmem::detail::exchange_thread_lock_wait_limit_ns(ns);
        return DRAGON_SUCCESS;
    });
}

void dragonmem_clear_thread_lock_wait_limit(void) {
    dragonmem::detail::exchange_thread_lock_wait_limit_ns(dragonmem::detail::k_inherit_lock_wait_limit);
}

}  // extern "C"
