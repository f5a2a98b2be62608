// dragonmem dump: a pool in full (object, free blocks, space figures: internal waste,
// largest free block and request; every live allocation, streamed), or one allocation's
// bytes. The internal waste is summed in a first paged pass over the allocations, so
// that the head (the first line with --jsonl) can carry it.
#include "commands.hpp"
#include "common.hpp"
#include "table.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>

namespace dragonmem::cli {

Command add_dump(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string id;
        bool hex = false, raw = false, table = false;
        ListingOptions listing;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("dump", "Show a pool in full, or the bytes of one allocation");
    add_pool_target(*cmd, args->target);
    auto* id = cmd->add_option("--id", args->id, "Show this allocation's bytes instead")->type_name("ID");
    auto* hex = cmd->add_flag("--hex", args->hex, "Bytes as a hex string in JSON (the default)");
    cmd->add_flag("--raw", args->raw, "Bytes as they are on stdout, no JSON")->excludes(hex);
    add_listing_options(*cmd, args->listing);
    cmd->add_flag("--table", args->table, "Aligned columns for people (human sizes), not JSON");
    cmd->footer("Examples:\n"
                "  dragonmem dump p1 | jq '.free_blocks, .allocations'\n"
                "  dragonmem dump p1 --jsonl | tail -n +2 | jq -s length   # line 1: pool and free blocks\n"
                "  dragonmem dump p1 --id 3 | jq -r .hex\n"
                "  dragonmem dump p1 --id 3 --raw | od -c\n"
                "  dragonmem dump p1 --table");

    return {cmd, [=] {
                if (id->count() == 0 && (args->hex || args->raw)) throw UsageError("--hex and --raw need --id");
                if (id->count() != 0 && args->listing.jsonl) throw UsageError("--jsonl lists a pool: not with --id");
                if (args->table && (id->count() != 0 || args->listing.jsonl || args->listing.serialized))
                    throw UsageError("--table shows the pool: not with --id, --jsonl or --serialized");
                // Arguments are checked before the pool is touched: bad usage is exit 2
                // whatever the pool's state.
                const std::optional<std::uint64_t> allocation =
                    id->count() == 0 ? std::nullopt : std::optional(parse_id(args->id, "--id"));
                auto pool = std::make_shared<Pool>(open_pool(args->target));
                if (!allocation) {
                    const json pool_object = pool_json(*pool);
                    const json free_blocks = free_blocks_json(*pool);
                    const json space = space_figures(*pool, pool->attributes());
                    if (args->table) {
                        json figures = pool_object;
                        for (const auto& [key, value] : space.items()) figures[key] = value;
                        Outcome outcome{std::nullopt, std::nullopt};
                        outcome.text = pool_table(figures) + "\n" + free_blocks_table(free_blocks) + "\n" +
                                       allocations_table(*pool, std::nullopt);
                        return outcome;
                    }
                    Outcome outcome{std::nullopt, std::nullopt};
                    outcome.layout = args->listing.layout();
                    outcome.stream = [pool, pool_object, free_blocks, space,
                                      serialized = args->listing.serialized](JsonStream& out) {
                        json head{{"pool", pool_object}, {"free_blocks", free_blocks}};
                        for (const auto& [key, value] : space.items()) head[key] = value;
                        out.line(head);
                        out.begin_object();
                        out.member("pool", pool_object);
                        out.member("free_blocks", free_blocks);
                        for (const auto& [key, value] : space.items()) out.member(key, value);
                        out.begin_array("allocations");
                        stream_allocations(out, *pool, std::nullopt, serialized);
                        out.end_array();
                        out.end_object();
                    };
                    return outcome;
                }

                const Memory memory = pool->from_id(*allocation);
                if (args->raw) {
                    write_raw(memory.bytes());
                    return Outcome{std::nullopt, std::nullopt};
                }
                json document{{"pool", pool_json(*pool)},
                              {"allocation",
                               allocation_json(info_of(memory, *pool), serialized_if(args->listing.serialized, memory))},
                              {"hex", hex_bytes(memory.bytes())}};
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
