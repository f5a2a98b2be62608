// dragonmem ls: every pool on this host (with --type, their allocations of that type), or
// the live allocations of one pool, streamed.
#include "commands.hpp"
#include "common.hpp"
#include "table.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <memory>

namespace dragonmem::cli {
namespace {

// One entry per pool found in /dev/shm. A pool that cannot be attached (another user's,
// damaged, destroyed meanwhile) is listed with its error: one bad pool must not hide
// the others.
void list_pools(JsonStream& out) {
    out.begin_object();
    out.begin_array("pools");
    for (const std::string& name : sorted_pool_names()) {
        try {
            out.element(pool_json(Pool::attach_local(name)));
        } catch (const Error& e) {
            out.element(json{{"name", name}, {"error", error_json(e)}});
        }
    }
    out.end_array();
    out.end_object();
}

// `ls --type T`: every pool of the host with its allocations of type T (pools without
// any are left out; one that cannot be attached is listed with its error).
void list_type_across_pools(JsonStream& out, std::uint64_t type, bool serialized) {
    out.begin_object();
    const json filter = type_filter_json(type);
    out.member("type", filter["type"]);
    out.member("type_name", filter["type_name"]);
    out.begin_array("pools");
    for (const std::string& name : sorted_pool_names()) {
        try {
            const Pool pool = Pool::attach_local(name);
            std::vector<AllocationInfo> probe;
            std::uint64_t cursor = 0;
            bool any = false;
            for (bool more = true; more && !any;) {
                more = pool.allocations_page(cursor, 4096, probe, type);
                any = !probe.empty();
            }
            if (!any) continue;
            const json pool_object = pool_json(pool);
            if (out.layout() == Layout::lines) {
                // One line per allocation, each naming its pool.
                std::vector<AllocationInfo> page;
                std::uint64_t at = 0;
                for (bool more = true; more;) {
                    more = pool.allocations_page(at, 4096, page, type);
                    for (const AllocationInfo& info : page) {
                        std::optional<std::string> descriptor;
                        if (serialized) descriptor = printed_descriptor(pool.from_id(info.id));
                        out.element(json{{"pool", name}, {"allocation", allocation_json(info, descriptor)}});
                    }
                }
                continue;
            }
            out.begin_object();
            out.member("pool", pool_object);
            out.begin_array("allocations");
            stream_allocations(out, pool, type, serialized);
            out.end_array();
            out.end_object();
        } catch (const Error& e) {
            out.element(json{{"name", name}, {"error", error_json(e)}});
        }
    }
    out.end_array();
    out.end_object();
}

}  // namespace

Command add_ls(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string type;
        ListingOptions listing;
        bool table = false;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("ls", "List the pools of this host, or a pool's live allocations");
    add_pool_target(*cmd, args->target);
    auto* type = cmd->add_option("--type", args->type, "Only allocations of this type (without POOL: in every pool)")
                     ->type_name("TYPE");
    add_listing_options(*cmd, args->listing);
    cmd->add_flag("--table", args->table, "Aligned columns for people (human sizes), not JSON");
    cmd->footer("Examples:\n"
                "  dragonmem ls | jq -r '.pools[] | \"\\(.name) \\(.utilization)%\"'\n"
                "  dragonmem ls p1 --type channel | jq '[.allocations[].id]'\n"
                "  dragonmem ls --type channel | jq '.pools[] | {name: .pool.name, n: (.allocations | length)}'\n"
                "  dragonmem ls p1 --jsonl | wc -l\n"
                "  dragonmem ls --table");

    return {cmd, [=] {
                withhold_secrets();  // a listing: descriptors without the pool's secret
                const bool whole_host = args->target.name.empty() && args->target.serial.empty();
                std::optional<std::uint64_t> only;
                if (type->count() != 0) only = parse_type(args->type, "--type");
                Outcome outcome{std::nullopt, std::nullopt};
                outcome.layout = args->listing.layout();
                const bool serialized = args->listing.serialized;
                if (args->table) {
                    if (args->listing.jsonl || serialized) throw UsageError("--table: not with --jsonl or --serialized");
                    if (whole_host && only) throw UsageError("--table: not with --type across pools (name a POOL)");
                    if (whole_host) {
                        json pools = json::array();
                        for (const std::string& name : sorted_pool_names()) {
                            try {
                                pools.push_back(pool_json(Pool::attach_local(name)));
                            } catch (const Error& e) {
                                pools.push_back(json{{"name", name}, {"error", error_json(e)}});
                            }
                        }
                        outcome.text = pools_table(pools);
                    } else {
                        outcome.text = allocations_table(open_pool(args->target), only);
                    }
                    return outcome;
                }
                if (whole_host && only) {
                    outcome.stream = [type = *only, serialized](JsonStream& out) {
                        list_type_across_pools(out, type, serialized);
                    };
                    return outcome;
                }
                if (whole_host) {
                    outcome.stream = list_pools;
                    return outcome;
                }
                auto pool = std::make_shared<Pool>(open_pool(args->target));
                // Read before the first byte is printed: a pool that cannot be read fails
                // the command with nothing on stdout.
                const json pool_object = pool_json(*pool);
                outcome.stream = [pool, pool_object, only, serialized](JsonStream& out) {
                    out.begin_object();
                    out.member("pool", pool_object);
                    const json filter = type_filter_json(only);
                    out.member("type", filter["type"]);
                    out.member("type_name", filter["type_name"]);
                    out.begin_array("allocations");
                    stream_allocations(out, *pool, only, serialized);
                    out.end_array();
                    out.end_object();
                };
                return outcome;
            }};
}

}  // namespace dragonmem::cli
