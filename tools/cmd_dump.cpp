// dragonmem dump: a pool's attributes, free blocks and manifest, or one allocation's bytes.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>

namespace dragonmem::cli {
namespace {

json dump_pool(const Pool& pool) {
    json free_blocks = json::array();
    for (const FreeBlockCount& entry : pool.free_blocks())
        free_blocks.push_back(json{{"block_size", entry.block_bytes}, {"count", entry.count}});
    return json{{"pool", pool_json(pool)}, {"free_blocks", free_blocks}, {"manifest", allocations_json(pool)}};
}

}  // namespace

Command add_dump(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string id;
        bool hex = false, raw = false;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("dump", "Show a pool in full, or the bytes of one allocation");
    add_pool_target(*cmd, args->target);
    auto* id = cmd->add_option("--id", args->id, "Show this allocation's bytes instead")->type_name("ID");
    auto* hex = cmd->add_flag("--hex", args->hex, "Bytes as a hex string in JSON (the default)");
    cmd->add_flag("--raw", args->raw, "Bytes as they are on stdout, no JSON")->excludes(hex);
    cmd->footer("Examples:\n"
                "  dragonmem dump p1 | jq '.free_blocks, .manifest'\n"
                "  dragonmem dump p1 --id 3 | jq -r .hex\n"
                "  dragonmem dump p1 --id 3 --raw | od -c");

    return {cmd, [=] {
                if (id->count() == 0 && (args->hex || args->raw)) throw UsageError("--hex and --raw need --id");
                // Arguments are checked before the pool is touched: bad usage is exit 2
                // whatever the pool's state.
                const std::optional<std::uint64_t> allocation =
                    id->count() == 0 ? std::nullopt : std::optional(parse_id(args->id, "--id"));
                const Pool pool = open_pool(args->target);
                if (!allocation) return Outcome{dump_pool(pool), std::nullopt};

                const Memory memory = pool.from_id(*allocation);
                if (args->raw) {
                    write_raw(memory.bytes());
                    return Outcome{std::nullopt, std::nullopt};
                }
                const std::string name = pool.name();
                json document{{"pool", name},
                              {"allocation", allocation_json(info_of(memory, index_allocations(pool), name),
                                                             memory.serialize_base64())},
                              {"hex", hex_bytes(memory.bytes())}};
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
