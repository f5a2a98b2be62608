// The process-wide and per-thread lock-wait limits (see lock_wait_limit.hpp).
#include "pool/lock_wait_limit.hpp"

#include "os/error.hpp"

#include <atomic>
#include <limits>

namespace dragonmem::detail {

namespace {

std::atomic<std::int64_t> g_process_limit_ns{k_no_lock_wait_limit};

// Dynamic TLS (no initial-exec model): this library may be loaded with dlopen, and the
// value is read only on the contended path.
thread_local std::int64_t t_thread_limit_ns = k_inherit_lock_wait_limit;

}  // namespace

std::int64_t lock_wait_limit_ns() noexcept {
    std::int64_t mine = t_thread_limit_ns;
    return mine != k_inherit_lock_wait_limit ? mine : g_process_limit_ns.load(std::memory_order_relaxed);
}

void set_process_lock_wait_limit_ns(std::int64_t limit_ns) noexcept {
    g_process_limit_ns.store(limit_ns, std::memory_order_relaxed);
}

std::int64_t process_lock_wait_limit_ns() noexcept { return g_process_limit_ns.load(std::memory_order_relaxed); }

std::int64_t exchange_thread_lock_wait_limit_ns(std::int64_t limit_ns) noexcept {
    std::int64_t previous = t_thread_limit_ns;
    t_thread_limit_ns = limit_ns;
    return previous;
}

dragonError_t lock_wait_limit_from_timespec(const timespec* limit, const char* op, std::int64_t& out_ns) {
    if (limit == nullptr) {
        out_ns = k_no_lock_wait_limit;
        return DRAGON_SUCCESS;
    }
    if (limit->tv_sec < 0 || limit->tv_nsec < 0 || limit->tv_nsec >= 1000000000L)
        return failf(DRAGON_INVALID_ARGUMENT, "{}: lock-wait limit {{{}, {}}} is not a valid timespec", op,
                     static_cast<long long>(limit->tv_sec), static_cast<long long>(limit->tv_nsec));
    constexpr std::int64_t max_ns = std::numeric_limits<std::int64_t>::max();
    if (limit->tv_sec > (max_ns - limit->tv_nsec) / 1000000000L) {
        out_ns = k_no_lock_wait_limit;  // longer than any process lives: no limit
        return DRAGON_SUCCESS;
    }
    out_ns = static_cast<std::int64_t>(limit->tv_sec) * 1000000000L + limit->tv_nsec;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
