// Clock and optimizer barriers for the timed loops of every contender.
#pragma once

#include <cstdint>
#include <ctime>

namespace bench {

// CLOCK_MONOTONIC through the vDSO (~20 ns, no system call). It is read at batch
// boundaries only, never per operation, and it is the same clock in every process, so
// a parent can compare timestamps taken by its children.
inline std::uint64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// Makes `p` escape to memory the compiler cannot see: without it GCC deletes a
// malloc/free pair whose pointer is unused, and the floor would measure nothing.
inline void escape(const void* p) noexcept {
    asm volatile("" : : "g"(p) : "memory");
}

}  // namespace bench
