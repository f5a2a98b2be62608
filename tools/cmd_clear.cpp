// dragonmem clear: zero (part of) an allocation.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

namespace dragonmem::cli {

Command add_clear(CLI::App& top) {
    struct Args {
        AllocationTarget target;
        std::string start, stop;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("clear", "Zero the bytes [--start, --stop) of an allocation");
    add_allocation_target(*cmd, args->target, false);
    auto* start = cmd->add_option("--start", args->start, "First byte to zero (default 0)")->type_name("SIZE");
    auto* stop = cmd->add_option("--stop", args->stop, "Byte after the last to zero (default: the end; clamped to it)")
                     ->type_name("SIZE");
    cmd->footer("Example:\n  dragonmem clear p1 3 --start 16 | jq .cleared");

    return {cmd, [=] {
                if (args->target.ids.size() > 1) throw UsageError("clear takes one ID");
                const std::size_t from = start->count() != 0 ? parse_size(args->start, "--start") : 0;
                const std::size_t to = stop->count() != 0 ? parse_size(args->stop, "--stop") : SIZE_MAX;
                auto memory = std::make_shared<const Memory>(std::move(open_allocations(args->target).front()));
                const std::string name = memory->pool().name();
                const std::size_t end = std::min(to, memory->size());
                // The bytes zeroed, kept so that exit 1 (stdout unwritable) can mean nothing changed.
                // Through the API: a GPU pool's bytes are device memory.
                auto before = std::make_shared<std::vector<std::byte>>();
                if (from < end) {
                    before->resize(end - from);
                    memory->read(from, *before);
                }
                memory->clear(from, to);  // checks start and stop itself
                std::function<std::string()> undo = [memory, before, from, name] {
                    if (!before->empty()) memory->write(from, *before);
                    return fmt::format("the {} B cleared in allocation {} of pool '{}' were restored: nothing changed",
                                       before->size(), memory->id(), name);
                };
                const Pool pool = memory->pool();
                json document{{"pool", pool_json(pool)},
                              {"allocation", allocation_json(info_of(*memory, pool), std::nullopt)},
                              {"start", from},
                              {"stop", end},
                              {"cleared", before->size()}};
                return Outcome{document, std::nullopt, undo};
            }};
}

}  // namespace dragonmem::cli
