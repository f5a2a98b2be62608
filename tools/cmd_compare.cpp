// dragonmem hash / equal: Dragon's hash of an allocation's bytes, and whether two
// allocations hold the same bytes (or are the same allocation). Both change nothing.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <memory>

namespace dragonmem::cli {

Command add_hash(CLI::App& top) {
    auto target = std::make_shared<AllocationTarget>();
    CLI::App* cmd = top.add_subcommand("hash", "Dragon's hash (32-bit MurmurHash3) of an allocation's bytes");
    add_allocation_target(*cmd, *target, false);
    cmd->footer("Example:\n  dragonmem hash p1 3 | jq .hash");
    return {cmd, [=] {
                if (target->ids.size() > 1) throw UsageError("hash takes one ID");
                const Memory memory = std::move(open_allocations(*target).front());
                json document{{"pool", memory.pool().name()},
                              {"id", memory.id()},
                              {"size", memory.size()},
                              {"hash", memory.hash()}};
                return Outcome{document, std::nullopt};
            }};
}

Command add_equal(CLI::App& top) {
    struct Args {
        AllocationTarget first;
        std::string other_pool, other_id;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("equal", "Whether two allocations hold the same bytes");
    add_allocation_target(*cmd, args->first, false);
    cmd->add_option("--with", args->other_pool, "Pool of the other allocation")->type_name("POOL")->required();
    cmd->add_option("--with-id", args->other_id, "Id of the other allocation")->type_name("ID")->required();
    cmd->footer("Example:\n  dragonmem equal p1 3 --with p2 --with-id 1 | jq .equal");
    return {cmd, [=] {
                if (args->first.ids.size() > 1) throw UsageError("equal takes one ID");
                const Memory first = std::move(open_allocations(args->first).front());
                AllocationTarget other;
                other.pool = args->other_pool;
                other.ids = {args->other_id};
                const Memory second = std::move(open_allocations(other).front());
                json document{{"pool", first.pool().name()},  {"id", first.id()},
                              {"with", second.pool().name()}, {"with_id", second.id()},
                              {"equal", first.bytes_equal(second)}, {"same_allocation", first.same_as(second)}};
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
