// dragonmem stat: one pool's live figures as one JSON line per interval (utilization,
// live allocations, allocations and frees per second, waiters, recoveries), for
// `watch`-style monitoring. Rates are the difference of the library's running totals
// (PoolAttributes::allocations_total / frees_total) over the measured interval.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <thread>

namespace dragonmem::cli {
namespace {

constexpr double k_max_interval_s = 86400;  // a day: longer is surely a typo

std::uint64_t now_realtime_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

// One line: the figures now, and the rates since `before` (taken `seconds` ago).
json stat_line(const PoolAttributes& now, const PoolAttributes& before, double seconds) {
    const auto rate = [seconds](std::uint64_t after, std::uint64_t earlier) {
        return after >= earlier && seconds > 0 ? static_cast<double>(after - earlier) / seconds : 0.0;
    };
    return json{{"name", now.name},
                {"time", utc_text(now_realtime_ns())},
                {"interval_s", seconds},
                {"utilization", now.utilization_pct},
                {"used_bytes", now.heap_bytes - now.free_bytes},
                {"free_bytes", now.free_bytes},
                {"live_allocations", now.live_allocations},
                {"allocations_per_s", rate(now.allocations_total, before.allocations_total)},
                {"frees_per_s", rate(now.frees_total, before.frees_total)},
                {"allocations_total", now.allocations_total},
                {"frees_total", now.frees_total},
                {"waiters", now.waiters},
                {"recoveries", now.recoveries}};
}

}  // namespace

Command add_stat(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string interval = "1";
        std::string count;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("stat", "Print one pool's live figures as one JSON line per interval");
    add_pool_target(*cmd, args->target);
    cmd->add_option("--interval", args->interval, "Seconds between lines, fractions allowed (default 1)")
        ->type_name("S");
    auto* count = cmd->add_option("--count", args->count, "Stop after N lines (default: until interrupted)")
                      ->type_name("N");
    cmd->footer("Examples:\n"
                "  dragonmem stat p1 --interval 0.5 --count 10 | jq -c '{utilization, allocations_per_s}'\n"
                "  dragonmem stat p1 --interval 5 | jq --unbuffered -r '\"\\(.time) \\(.live_allocations)\"'");

    return {cmd, [=] {
                withhold_secrets();  // a listing: descriptors without the pool's secret
                const double interval = parse_seconds(args->interval, "--interval");
                if (!(interval > 0) || interval > k_max_interval_s)
                    throw UsageError(fmt::format("--interval: '{}' must be more than 0 and at most {} seconds",
                                                 args->interval, k_max_interval_s));
                std::optional<std::uint64_t> lines;
                if (count->count() != 0) {
                    lines = parse_uint(args->count, "--count");
                    if (*lines == 0) throw UsageError(fmt::format("--count: '{}' must be at least 1", args->count));
                }
                auto pool = std::make_shared<Pool>(open_pool(args->target));
                // The first figures before anything is printed: a pool that cannot be read
                // fails the command with nothing on stdout.
                auto first = std::make_shared<PoolAttributes>(pool->attributes());
                Outcome outcome{std::nullopt, std::nullopt};
                outcome.layout = Layout::lines;
                outcome.stream = [pool, first, interval, lines](JsonStream& out) {
                    using clock = std::chrono::steady_clock;
                    const auto step = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(interval));
                    PoolAttributes before = *first;
                    clock::time_point taken = clock::now();
                    const clock::time_point start = taken;
                    for (std::uint64_t n = 1; !lines || n <= *lines; ++n) {
                        // On a fixed grid from the start: lines do not drift by the time
                        // each takes.
                        std::this_thread::sleep_until(start + step * static_cast<clock::rep>(n));
                        PoolAttributes now = pool->attributes();
                        const clock::time_point at = clock::now();
                        out.line(stat_line(now, before, std::chrono::duration<double>(at - taken).count()));
                        out.finish();  // each line as it is made
                        before = std::move(now);
                        taken = at;
                    }
                };
                return outcome;
            }};
}

}  // namespace dragonmem::cli
