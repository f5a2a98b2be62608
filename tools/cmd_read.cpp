// dragonmem read: copy an allocation's bytes to stdout, raw.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <dragonmem/remote.hpp>

#include <ctime>
#include <memory>
#include <optional>
#include <vector>

namespace dragonmem::cli {

Command add_read(CLI::App& top) {
    struct Args {
        AllocationTarget target;
        std::string offset, length, timeout;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("read", "Copy an allocation's bytes to stdout (raw, not JSON)");
    add_allocation_target(*cmd, args->target, false);
    auto* offset = cmd->add_option("--offset", args->offset, "Start this many bytes into the allocation (a size)")
                       ->type_name("SIZE");
    auto* length = cmd->add_option("--length", args->length, "Copy at most this many bytes (a size; default: to the end)")
                       ->type_name("SIZE");
    auto* timeout = cmd->add_option("--timeout", args->timeout,
                                    "An allocation on another node (--serial): give up after SEC seconds")
                        ->type_name("SEC");
    cmd->footer("Example:\n  dragonmem read p1 3 --length 5 | od -c\n"
                "  dragonmem read --serial \"$DESCRIPTOR_FROM_ANOTHER_NODE\" --timeout 5 > bytes");

    return {cmd, [=] {
                const std::size_t start = offset->count() != 0 ? parse_size(args->offset, "--offset") : 0;
                std::optional<std::size_t> bytes;
                if (length->count() != 0) bytes = parse_size(args->length, "--length");
                if (args->target.ids.size() > 1) throw UsageError("read takes one ID");
                std::optional<timespec> limit;
                if (timeout->count() != 0) limit = parse_timeout(args->timeout, "--timeout");
                const Memory memory = std::move(open_allocations(args->target).front());
                const Memory view = view_of(memory, start, bytes, "read");
                if (view.is_local()) {
                    std::vector<std::byte> copy;  // a GPU pool's bytes, read to the host
                    write_raw(host_bytes(view, copy));
                } else {
                    // Off-node: fetched from the node's agent, then printed.
                    std::vector<std::byte> fetched(view.size());
                    read_bytes(view, 0, fetched, limit ? &*limit : nullptr);
                    write_raw(fetched);
                }
                return Outcome{std::nullopt, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
