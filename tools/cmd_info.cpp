// dragonmem info: one pool's object with the figures that say how usable its free memory
// is (largest free block, largest request that fits, fragmentation), what its blocks
// waste (internal waste: block bytes - requested bytes) and what its allocations hold,
// by type. No per-allocation list: cheap to print for any pool size.
#include "commands.hpp"
#include "common.hpp"
#include "table.hpp"

#include <CLI/CLI.hpp>

#include <map>
#include <memory>

namespace dragonmem::cli {
namespace {

struct TypeTotals {
    std::uint64_t allocations = 0;
    std::uint64_t bytes = 0;        // requested
    std::uint64_t block_bytes = 0;  // of their blocks
};

}  // namespace

Command add_info(CLI::App& top) {
    auto target = std::make_shared<PoolTarget>();
    auto table = std::make_shared<bool>(false);
    CLI::App* cmd = top.add_subcommand("info", "Show one pool: its object, largest free block, fragmentation, bytes by type");
    add_pool_target(*cmd, *target);
    cmd->add_flag("--table", *table, "Aligned columns for people (human sizes), not JSON");
    cmd->footer("Examples:\n"
                "  dragonmem info p1 | jq '{free: .pool.free_bytes, largest_free_block, largest_request, internal_waste}'\n"
                "  dragonmem info p1 --table");

    return {cmd, [=] {
                withhold_secrets();  // a listing: descriptors without the pool's secret
                const Pool pool = open_pool(*target);
                const json pool_object = pool_json(pool);
                // The largest block free now, and the largest request it can serve.
                const PoolAttributes attributes = pool.attributes();
                const std::uint64_t largest = attributes.largest_free_block;
                std::uint64_t waste = 0;
                std::map<std::uint64_t, TypeTotals> by_type;
                std::vector<AllocationInfo> page;
                std::uint64_t cursor = 0;
                for (bool more = true; more;) {
                    more = pool.allocations_page(cursor, 4096, page);
                    for (const AllocationInfo& info : page) {
                        TypeTotals& totals = by_type[info.type];
                        ++totals.allocations;
                        totals.bytes += info.size;
                        totals.block_bytes += info.block_bytes;
                        waste += info.block_bytes - info.size;
                    }
                }
                json types = json::array();
                for (const auto& [type, totals] : by_type) {
                    json entry = type_filter_json(type);
                    entry["allocations"] = totals.allocations;
                    entry["bytes"] = totals.bytes;
                    entry["block_bytes"] = totals.block_bytes;
                    types.push_back(std::move(entry));
                }
                const std::uint64_t free_bytes = pool_object["free_bytes"].get<std::uint64_t>();
                // 0: all free memory is one block; near 1: free memory in many small pieces.
                // The two figures are read under two holds of the lock: another process
                // may free between them, so the ratio is kept in [0, 1].
                const double fragmentation =
                    free_bytes == 0 || largest >= free_bytes
                        ? 0.0
                        : 1.0 - static_cast<double>(largest) / static_cast<double>(free_bytes);
                json document{{"pool", pool_object},
                              {"largest_free_block", largest},
                              {"largest_request", attributes.largest_request},
                              {"internal_waste", waste},
                              {"fragmentation", fragmentation},
                              {"types", types}};
                if (*table) {
                    json figures = pool_object;
                    figures["largest_free_block"] = largest;
                    figures["largest_request"] = attributes.largest_request;
                    figures["internal_waste"] = waste;
                    figures["fragmentation"] = fragmentation;
                    Outcome outcome{std::nullopt, std::nullopt};
                    outcome.text = pool_table(figures) + "\n" + types_table(types);
                    return outcome;
                }
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
