// The figure table: every measurement of the benchmark, its parameters, and which
// contenders take part (dragonmem first, then the peer, then the floor).
#pragma once

#include "contender.hpp"
#include "runner.hpp"

#include <memory>
#include <string>
#include <vector>

namespace bench {

struct Contenders {
    std::unique_ptr<Contender> dragonmem;
    std::unique_ptr<Contender> boost;  // null when built without Boost
    std::unique_ptr<Contender> malloc;
    std::unique_ptr<Contender> raw_shm;
};

// Size of the pool (and Boost segment) of the allocation figures: Dragon's documented
// case (4 GiB heap, 32 B blocks), so per-level work of a buddy allocator shows.
constexpr std::size_t kHeapPoolBytes = std::size_t{4} << 30;
// Blocks kept live by the "many live" figures.
constexpr std::size_t kLiveCount = 1000;
// Pool and block size of the scaling figures (procs/…, threads/…).
constexpr std::size_t kSharedPoolBytes = std::size_t{64} << 20;
constexpr std::size_t kHammerBlockBytes = 64;

Contenders make_contenders();

// Names of every figure, in run order.
std::vector<std::string> figure_names(const Contenders& contenders, const RunConfig& config);

// Runs the figures whose name matches `filter` (ECMAScript regex, searched; empty: all).
std::vector<FigureResult> run_figures(const Contenders& contenders, const RunConfig& config,
                                      const std::string& filter);

// "64B", "4KiB", "1MiB", "16GiB".
std::string size_label(std::size_t bytes);

}  // namespace bench
