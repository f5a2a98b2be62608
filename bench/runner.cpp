// Calibration and interleaved repetition of one figure.
#include "runner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cstdio>

namespace bench {
namespace {

// Grows the batch until it takes about `target_ns`, then re-measures at the chosen
// size: the first batches run cold (fresh segment pages, glibc's mmap threshold) and
// would otherwise leave a batch far shorter than the target. These batches double as
// the warm-up.
std::uint64_t calibrate(const Lane& lane, std::uint64_t target_ns) {
    auto elapsed_ns = [&](std::uint64_t units) { return std::max<std::uint64_t>(lane.run(units).elapsed_ns, 1); };
    std::uint64_t units = 1;
    for (int step = 0; step < 40; ++step) {
        const std::uint64_t elapsed = elapsed_ns(units);
        if (elapsed >= target_ns / 2) {
            units = std::max<std::uint64_t>(1, units * target_ns / elapsed);
            break;
        }
        // At most 64x per step: the first tiny batches are noisy and may overshoot.
        units *= std::clamp<std::uint64_t>(target_ns / elapsed, 2, 64);
    }
    for (int check = 0; check < 4; ++check) {
        const std::uint64_t elapsed = elapsed_ns(units);
        if (elapsed >= target_ns / 2 && elapsed <= target_ns * 2) {
            break;
        }
        units = std::max<std::uint64_t>(1, units * target_ns / elapsed);
    }
    return units;
}

double value_of(const BatchTime& batch, Metric metric) {
    const double ops = static_cast<double>(std::max<std::uint64_t>(batch.ops, 1));
    const double elapsed_ns = static_cast<double>(std::max<std::uint64_t>(batch.elapsed_ns, 1));
    return metric == Metric::ns_per_op ? elapsed_ns / ops : ops * 1e9 / elapsed_ns;
}

std::string format_value(double value, const std::string& unit) {
    const std::string number = value >= 1e5 ? fmt::format("{:.3g}", value) : fmt::format("{:.1f}", value);
    return unit.empty() ? number : number + " " + unit;
}

void print_summary(const FigureResult& result) {
    std::string line = fmt::format("{:<22}", result.spec.name);
    for (const auto& lane : result.lanes) {
        if (!lane.error.empty()) {
            line += fmt::format("  {} FAILED", lane.contender);
        } else if (lane.value) {
            line += fmt::format("  {} {} [{}..{}]", lane.contender, format_value(lane.value->median, result.spec.unit),
                                format_value(lane.value->min, ""), format_value(lane.value->max, ""));
            // Latency figures also say their CPU time (phase "cpu").
            const auto cpu = lane.phases.find("cpu");
            if (result.spec.metric == Metric::ns_per_op && cpu != lane.phases.end()) {
                line += fmt::format(" cpu {}", format_value(cpu->second.median, ""));
            }
        }
    }
    std::fprintf(stderr, "%s\n", line.c_str());
    for (const auto& lane : result.lanes) {
        if (!lane.error.empty()) {
            std::fprintf(stderr, "  %s: %s\n", lane.contender.c_str(), lane.error.c_str());
        }
    }
}

}  // namespace

Summary summarize(std::vector<double> reps) {
    assert(!reps.empty());
    Summary summary;
    summary.reps = reps;
    std::sort(reps.begin(), reps.end());
    const std::size_t middle = reps.size() / 2;
    summary.median = reps.size() % 2 == 1 ? reps[middle] : (reps[middle - 1] + reps[middle]) / 2;
    summary.min = reps.front();
    summary.max = reps.back();
    return summary;
}

FigureResult run_figure(const FigureSpec& spec, std::vector<Lane> lanes, const RunConfig& config) {
    FigureResult result{spec, {}};
    std::vector<std::vector<double>> values(lanes.size());
    std::vector<std::map<std::string, std::vector<double>>> phase_values(lanes.size());
    for (const auto& lane : lanes) {
        result.lanes.push_back(LaneResult{lane.contender->name(), {}, {}, 0, 0, {}});
    }

    auto guarded = [&](std::size_t index, auto&& action) {
        if (!result.lanes[index].error.empty()) {
            return;
        }
        try {
            action();
        } catch (const std::exception& error) {
            result.lanes[index].error = error.what();
        }
    };

    for (std::size_t i = 0; i < lanes.size(); ++i) {
        guarded(i, [&] {
            if (lanes[i].prepare) {
                lanes[i].prepare();
            }
            if (spec.metric == Metric::ns_per_op) {
                result.lanes[i].units_per_rep = calibrate(lanes[i], config.target_rep_ns);
            } else {
                result.lanes[i].units_per_rep = 1;
                lanes[i].run(1);  // warm-up rep, not recorded: fixed-time figures need no calibration
            }
        });
    }
    for (int rep = 0; rep < config.reps; ++rep) {
        for (std::size_t i = 0; i < lanes.size(); ++i) {
            guarded(i, [&] {
                // Latency figures run in this thread: its CPU time is phase "cpu", which a
                // loaded machine does not inflate (wall time counts waiting for a CPU).
                const std::uint64_t cpu_start_ns = thread_cpu_ns();
                BatchTime batch = lanes[i].run(result.lanes[i].units_per_rep);
                if (spec.metric == Metric::ns_per_op) {
                    batch.phases.push_back({"cpu", thread_cpu_ns() - cpu_start_ns, batch.ops});
                }
                values[i].push_back(value_of(batch, spec.metric));
                result.lanes[i].ops_per_rep = batch.ops;
                for (const auto& phase : batch.phases) {
                    phase_values[i][phase.name].push_back(static_cast<double>(phase.elapsed_ns) /
                                                          static_cast<double>(std::max<std::uint64_t>(phase.ops, 1)));
                }
            });
        }
    }
    for (std::size_t i = 0; i < lanes.size(); ++i) {
        try {
            lanes[i].contender->release();
        } catch (const std::exception& error) {
            if (result.lanes[i].error.empty()) {
                result.lanes[i].error = fmt::format("release: {}", error.what());
            }
        }
        if (result.lanes[i].error.empty() && !values[i].empty()) {
            result.lanes[i].value = summarize(values[i]);
            for (auto& [name, phase_reps] : phase_values[i]) {
                result.lanes[i].phases.emplace(name, summarize(phase_reps));
            }
        }
    }
    print_summary(result);
    return result;
}

}  // namespace bench
