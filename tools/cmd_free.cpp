// dragonmem free: free allocations by id, by their serialized descriptor, by type, or all.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <vector>

namespace dragonmem::cli {
namespace {

// Handles to every live allocation of `pool` (of `type` when given), taken page by page.
// One freed by someone else before its handle is made is left out.
std::vector<Memory> select_allocations(const Pool& pool, std::optional<std::uint64_t> type) {
    std::vector<Memory> memories;
    std::vector<AllocationInfo> page;
    std::uint64_t cursor = 0;
    for (bool more = true; more;) {
        more = pool.allocations_page(cursor, 4096, page, type);
        for (const AllocationInfo& info : page) {
            try {
                memories.push_back(pool.from_id(info.id));
            } catch (const Error& e) {
                if (e.code() != DRAGON_KEY_NOT_FOUND) throw;
            }
        }
    }
    return memories;
}

}  // namespace

Command add_free(CLI::App& top) {
    struct Args {
        AllocationTarget target;
        std::string type;
        bool all = false;
        ListingOptions listing;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("free", "Free allocations");
    add_allocation_target(*cmd, args->target, true);
    auto* type = cmd->add_option("--type", args->type, "Free every live allocation of this type (not with ids)")
                     ->type_name("TYPE");
    auto* all = cmd->add_flag("--all", args->all, "Free every live allocation of the pool (not with ids)");
    type->excludes(all);
    add_listing_options(*cmd, args->listing);
    cmd->footer("Examples:\n"
                "  dragonmem free p1 3 4 | jq '.freed | length'\n"
                "  dragonmem free p1 $(dragonmem ls p1 --type 7 | jq -r '.allocations[].id')   # none: frees nothing\n"
                "  dragonmem free p1 --type channel_buffer | jq '.freed | length'\n"
                "  dragonmem free --serial \"$(dragonmem alloc p1 --size 64 --serialized | jq -r .allocations[0].serialized)\"");

    return {cmd, [=] {
                const bool selection = type->count() != 0 || args->all;
                if (selection && (!args->target.ids.empty() || !args->target.serial.empty()))
                    throw UsageError("--type and --all select the allocations themselves: not with ids or --serial");
                std::optional<std::uint64_t> only;
                if (type->count() != 0) only = parse_type(args->type, "--type");
                std::vector<Memory> memories;
                std::shared_ptr<Pool> pool;
                if (selection || (args->target.serial.empty() && args->target.ids.empty())) {
                    // A selection, or an empty list of ids (a script's empty selection):
                    // the pool must exist, and nothing else is asked.
                    if (args->target.pool.empty()) throw UsageError("name the allocations: POOL ID..., or --serial BASE64");
                    pool = std::make_shared<Pool>(Pool::attach_local(args->target.pool));
                    if (selection) memories = select_allocations(*pool, only);
                } else {
                    // Every id is resolved before the first free: an id that is not live
                    // fails the command with the pool untouched.
                    memories = open_allocations(args->target);
                    pool = std::make_shared<Pool>(memories.front().pool());
                }
                auto freed = std::make_shared<std::vector<std::pair<AllocationInfo, std::optional<std::string>>>>();
                freed->reserve(memories.size());
                for (Memory& memory : memories) {
                    // Described before the free: afterwards the allocation is gone.
                    auto described = std::make_pair(info_of(memory, *pool), serialized_if(args->listing.serialized, memory));
                    try {
                        memory.free();
                    } catch (const Error& e) {
                        // A selection races with other freers: one gone already is not ours to report.
                        if (!selection || e.code() != DRAGON_KEY_NOT_FOUND) throw;
                        continue;
                    }
                    freed->push_back(std::move(described));
                }
                Outcome outcome{std::nullopt, std::nullopt};
                outcome.layout = args->listing.layout();
                const json pool_object = pool_json(*pool);
                outcome.stream = [freed, pool_object](JsonStream& out) {
                    out.begin_object();
                    out.member("pool", pool_object);
                    out.begin_array("freed");
                    for (const auto& [info, serialized] : *freed) out.allocation(info, serialized);
                    out.end_array();
                    out.end_object();
                };
                return outcome;
            }};
}

}  // namespace dragonmem::cli
