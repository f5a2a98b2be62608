// A pool's identity read from its shm object without attaching: no mapping, no process
// table entry, no write of any kind. For the remote agent, which checks a request's
// capability before it attaches the pool the request names (a forged request must not
// make it attach, and so register itself in, any pool its uid may open).
#pragma once

#include "pool/pool_layout.hpp"

#include <array>
#include <cstdint>
#include <string_view>

namespace dragonmem::detail {

struct PeekedPool {
    std::uint64_t nonce = 0;
    std::array<std::uint8_t, k_secret_bytes> secret{};
};

// True when `name`'s object opens read-only and holds a committed pool of this layout:
// then `out` has its instance and secret. False otherwise (no such object, no
// permission, not a pool, still being created, another layout): the caller attaches as
// usual, which says why with the proper error.
bool peek_pool(std::string_view name, PeekedPool& out) noexcept;

}  // namespace dragonmem::detail
