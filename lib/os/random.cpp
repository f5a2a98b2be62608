// getrandom(2) (random.hpp).
#include "os/random.hpp"

#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace dragonmem::detail {

std::uint64_t random_u64() noexcept {
    std::uint64_t value = 0;
    if (::getrandom(&value, sizeof value, 0) != sizeof value)
        value = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                (static_cast<std::uint64_t>(::getpid()) << 32);
    return value == 0 ? 1 : value;
}

bool random_u64_now(std::uint64_t& out) noexcept {
    return ::getrandom(&out, sizeof out, GRND_NONBLOCK) == sizeof out;
}

int random_fill(void* out, std::size_t bytes) noexcept {
    auto* at = static_cast<unsigned char*>(out);
    while (bytes > 0) {
        const ssize_t got = ::getrandom(at, bytes, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        at += got;
        bytes -= static_cast<std::size_t>(got);
    }
    return 0;
}

}  // namespace dragonmem::detail
