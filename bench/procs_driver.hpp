// Several processes hammering one shared pool: forks the children, starts them
// together, stops them after a fixed time and measures their aggregate rate.
#pragma once

#include "contender.hpp"

#include <cstddef>
#include <cstdint>

namespace bench {

struct HammerOutcome {
    std::uint64_t pairs = 0;      // alloc+free pairs done by all children together
    std::uint64_t window_ns = 0;  // from the common start to the last child's stop
};

// `contender` must have been share()d. Each child opens the shared pool itself
// (open_in_child), reports ready, waits for the common start, runs alloc+free pairs of
// `size_bytes` for `duration_ns`, then detaches. Throws BenchError when a child fails,
// hangs (it is killed) or dies.
HammerOutcome hammer(Contender& contender, int processes, std::size_t size_bytes, std::uint64_t duration_ns);

constexpr int kMaxHammerProcesses = 16;

}  // namespace bench
