// dragonmem ls: every pool on this host, or the live allocations of one pool.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <memory>

namespace dragonmem::cli {
namespace {

// One entry per pool found in /dev/shm. A pool that cannot be attached (another user's,
// damaged, destroyed meanwhile) is listed with its error: one bad pool must not hide
// the others.
json list_pools() {
    std::vector<std::string> names = Pool::list_local();
    std::sort(names.begin(), names.end());
    json pools = json::array();
    for (const std::string& name : names) {
        try {
            pools.push_back(pool_json(Pool::attach_local(name)));
        } catch (const Error& e) {
            pools.push_back(json{{"name", name}, {"error", error_json(e.code_name(), e.code(), e.what())}});
        }
    }
    return json{{"pools", pools}};
}

}  // namespace

Command add_ls(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string type;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("ls", "List the pools of this host, or a pool's live allocations");
    add_pool_target(*cmd, args->target);
    auto* type = cmd->add_option("--type", args->type, "Only allocations of this type (with POOL)")->type_name("TYPE");
    cmd->footer("Examples:\n"
                "  dragonmem ls | jq -r '.pools[] | \"\\(.name) \\(.utilization)%\"'\n"
                "  dragonmem ls p1 --type channel | jq '[.allocations[].id]'");

    return {cmd, [=] {
                const bool whole_host = args->target.name.empty() && args->target.serial.empty();
                if (whole_host && type->count() != 0) throw UsageError("--type needs a POOL");
                if (whole_host) return Outcome{list_pools(), std::nullopt};
                std::optional<std::uint64_t> only;
                if (type->count() != 0) only = parse_type(args->type, "--type");
                const Pool pool = open_pool(args->target);
                json document{{"pool", pool.name()},
                              {"type", only ? json(*only) : json(nullptr)},
                              {"allocations", allocations_json(pool, only)}};
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
