// dragonmem serialize: the base64 descriptor of a pool or of one of its allocations.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <memory>

namespace dragonmem::cli {

Command add_serialize(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string id;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("serialize", "Print the base64 descriptor of a pool or an allocation");
    add_pool_target(*cmd, args->target);
    auto* id = cmd->add_option("--id", args->id, "The allocation's descriptor instead of the pool's")->type_name("ID");
    cmd->footer("Examples:\n"
                "  POOL=$(dragonmem serialize p1 | jq -r .serialized) ./consumer   # attach_from_env(\"POOL\")\n"
                "  dragonmem serialize p1 --id 3 | jq -r .serialized");

    return {cmd, [=] {
                const bool of_allocation = id->count() != 0;
                const std::uint64_t allocation = of_allocation ? parse_id(args->id, "--id") : 0;
                const Pool pool = open_pool(args->target);
                json document{{"pool", pool_json(pool)}, {"allocation", nullptr}, {"serialized", nullptr}};
                if (of_allocation) {
                    const Memory memory = pool.from_id(allocation);
                    document["serialized"] = memory.serialize_base64();
                    document["allocation"] = allocation_json(info_of(memory, pool), std::nullopt);
                } else {
                    document["serialized"] = pool.serialize_base64();
                }
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
