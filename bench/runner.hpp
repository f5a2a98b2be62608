// Runs one figure: calibrates each contender's batch size, then times the reps
// interleaved contender by contender (dragonmem rep 1, boost rep 1, malloc rep 1,
// dragonmem rep 2, ...), so drift of a noisy machine hits every contender alike.
#pragma once

#include "contender.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bench {

// Median and min-max of a figure's repetitions, nothing fancier: medians of interleaved
// reps are what stays comparable on a noisy machine.
struct Summary {
    double median = 0;
    double min = 0;
    double max = 0;
    std::vector<double> reps;  // in run order, so drift over the run stays visible
};

// `reps` must not be empty.
Summary summarize(std::vector<double> reps);

struct RunConfig {
    int reps = 15;
    std::uint64_t target_rep_ns = 20'000'000;  // latency figures: batch size is calibrated to this
    std::uint64_t procs_rep_ns = 100'000'000;  // scaling and mixed figures: workers run this long
    int max_workers = 0;                        // scaling figures go up to this; 0: the usable CPUs
};

// A named part of a batch (the alloc and free halves of the many-live figure).
struct Phase {
    std::string name;
    std::uint64_t elapsed_ns = 0;
    std::uint64_t ops = 0;
};

// What one batch did: `ops` operations in `elapsed_ns`.
struct BatchTime {
    std::uint64_t elapsed_ns = 0;
    std::uint64_t ops = 0;
    std::vector<Phase> phases;
};

enum class Metric {
    ns_per_op,   // latency: lower is better; the batch size is calibrated
    ops_per_s,   // throughput: higher is better; each rep runs for a fixed time
};

struct FigureSpec {
    std::string name;   // "pair/64B": unique, what --filter matches
    std::string group;  // "pair", "live", "handle", "create_destroy", "attach", "procs", "threads", "mixed", ...
    std::string what;   // one line for a human
    std::string unit;   // "ns/pair", "pairs/s", ...
    Metric metric = Metric::ns_per_op;
    std::string floor;  // the contender that is the floor of this figure, or ""
    std::map<std::string, double> params;  // size_bytes, pool_bytes, processes, live_count
};

// One contender in a figure. `prepare` (optional) runs once before calibration;
// `run(units)` runs a batch of `units` units (ignored by throughput figures).
struct Lane {
    Contender* contender = nullptr;
    std::function<void()> prepare;
    std::function<BatchTime(std::uint64_t units)> run;
};

struct LaneResult {
    std::string contender;
    std::optional<Summary> value;          // per rep: ns/op or ops/s
    std::map<std::string, Summary> phases;  // per rep: ns/op of each phase
    std::uint64_t units_per_rep = 0;
    std::uint64_t ops_per_rep = 0;         // of the last rep
    std::string error;                     // non-empty: this contender failed
};

struct FigureResult {
    FigureSpec spec;
    std::vector<LaneResult> lanes;
};

// Runs the figure; every contender's failure is recorded in its LaneResult, never thrown.
// Calls release() on every lane's contender at the end.
FigureResult run_figure(const FigureSpec& spec, std::vector<Lane> lanes, const RunConfig& config);

}  // namespace bench
