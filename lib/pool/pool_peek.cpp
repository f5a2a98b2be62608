// A pool's identity without attaching (pool_peek.hpp).
#include "pool/pool_peek.hpp"

#include "pool/pool_name.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace dragonmem::detail {

namespace {

template <typename T>
T field_at(const unsigned char* header, std::size_t offset) {
    T value{};
    std::memcpy(&value, header + offset, sizeof value);
    return value;
}

}  // namespace

bool peek_pool(std::string_view name, PeekedPool& out) noexcept {
    try {
        const std::string shm_name = shm_name_for(name);
        const int fd = ::shm_open(shm_name.c_str(), O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return false;
        // A plain read of the identity, written once before `ready` and never changed.
        // Read while the creator still writes, it fails the magic or `ready` test below.
        unsigned char header[sizeof(PoolHeader)];
        const ssize_t got = ::pread(fd, header, sizeof header, 0);
        ::close(fd);
        if (got != static_cast<ssize_t>(sizeof header)) return false;
        if (field_at<std::uint64_t>(header, offsetof(PoolHeader, magic)) != k_pool_magic ||
            field_at<std::uint32_t>(header, offsetof(PoolHeader, layout_version)) != k_layout_version ||
            field_at<std::uint32_t>(header, offsetof(PoolHeader, ready)) != k_pool_ready)
            return false;
        out.nonce = field_at<std::uint64_t>(header, offsetof(PoolHeader, nonce));
        std::memcpy(out.secret.data(), header + offsetof(PoolHeader, secret), out.secret.size());
        return true;
    } catch (...) {  // the name's string: out of memory
        return false;
    }
}

}  // namespace dragonmem::detail
