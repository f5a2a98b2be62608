// dragonmem check: verify a pool's invariants (docs/design.md section 4.12) and print the verdict.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <memory>

namespace dragonmem::cli {

Command add_check(CLI::App& top) {
    auto target = std::make_shared<PoolTarget>();
    CLI::App* cmd = top.add_subcommand("check", "Verify a pool's invariants; exit 1 when one is broken");
    add_pool_target(*cmd, *target);
    cmd->footer("Example:\n  dragonmem check p1 | jq -e .ok && echo healthy");

    return {cmd, [=] {
                const Pool pool = open_pool(*target);
                const CheckReport report = pool.check();
                const std::string name = pool.name();
                Outcome outcome{json{{"pool", pool_json(pool)},
                                     {"ok", report.ok},
                                     {"problems", report.problems},
                                     {"notices", report.notices},
                                     {"free_bytes", report.free_bytes},
                                     {"used_bytes", report.used_bytes},
                                     {"live_allocations", report.live_allocations},
                                     {"free_block_count", report.free_blocks},
                                     {"cached_blocks", report.cached_blocks},
                                     {"cached_bytes", report.cached_bytes},
                                     {"orphaned_cached_blocks", report.orphaned_cached_blocks},
                                     {"orphaned_cached_bytes", report.orphaned_cached_bytes}},
                                std::nullopt};
                if (!report.ok)
                    outcome.failure = Failure{DRAGON_INVALID_STATE,
                                              fmt::format("pool '{}' breaks {} invariant(s); first: {}", name,
                                                          report.problems.size(),
                                                          report.problems.empty() ? "(none named)" : report.problems.front())};
                return outcome;
            }};
}

}  // namespace dragonmem::cli
