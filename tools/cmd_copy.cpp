// dragonmem copy: copy an allocation into a new allocation of another (or the same) pool.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <ctime>
#include <functional>
#include <memory>

namespace dragonmem::cli {

Command add_copy(CLI::App& top) {
    struct Args {
        AllocationTarget target;
        std::string to;
        std::string timeout;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("copy", "Copy an allocation into a new allocation of pool --to");
    add_allocation_target(*cmd, args->target, false);
    cmd->add_option("--to", args->to, "Base name of the pool that gets the copy")->type_name("POOL")->required();
    auto* timeout = cmd->add_option("--timeout", args->timeout, "Wait up to SEC seconds for free space in --to")
                        ->type_name("SEC");
    cmd->footer("Example:\n  dragonmem copy p1 3 --to p2 | jq .copy.id");

    return {cmd, [=] {
                if (args->target.ids.size() > 1) throw UsageError("copy takes one ID");
                std::optional<timespec> wait;
                if (timeout->count() != 0) {
                    const double seconds = parse_seconds(args->timeout, "--timeout");
                    timespec ts{};
                    ts.tv_sec = static_cast<time_t>(seconds);
                    ts.tv_nsec = static_cast<long>((seconds - std::floor(seconds)) * 1e9);
                    wait = ts;
                }
                const Memory source = std::move(open_allocations(args->target).front());
                const std::string from_name = source.pool().name();
                const Pool target = Pool::attach_local(args->to);
                const std::string to_name = target.name();
                auto copy = std::make_shared<Memory>(source.copy_to_pool(target, wait ? &*wait : nullptr));
                // Exit 1 must mean no copy: if describing or printing fails, it is freed again.
                std::function<std::string()> undo = [copy, to_name] {
                    const std::uint64_t id = copy->id();
                    copy->free();
                    return fmt::format("the copy (allocation {} of pool '{}') was freed: nothing changed", id, to_name);
                };
                try {
                    const AllocationIndex index = index_allocations(target);
                    json document{{"pool", from_name},
                                  {"id", source.id()},
                                  {"size", source.size()},
                                  {"to", to_name},
                                  {"copy", allocation_json(info_of(*copy, index, to_name), copy->serialize_base64())}};
                    return Outcome{document, std::nullopt, undo};
                } catch (const Error& e) {
                    throw Error(e.code(), fmt::format("{}; {}", e.what(), undo()));
                }
            }};
}

}  // namespace dragonmem::cli
