// Random 64-bit values from the kernel (getrandom): pool nonces and the heap's tag secret.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dragonmem::detail {

// Never 0. Waits for the kernel's entropy pool at boot; if getrandom fails, mixes the
// clock and the pid instead (unique enough for a nonce, which only needs to differ).
std::uint64_t random_u64() noexcept;
// Without waiting: false when the kernel has no entropy to give yet.
bool random_u64_now(std::uint64_t& out) noexcept;
// `bytes` random bytes for a secret: getrandom only, never a clock fallback. Returns 0, or
// the errno of the failure.
int random_fill(void* out, std::size_t bytes) noexcept;

}  // namespace dragonmem::detail
