// dragonmem read: copy an allocation's bytes to stdout, raw.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>

namespace dragonmem::cli {

Command add_read(CLI::App& top) {
    struct Args {
        AllocationTarget target;
        std::string offset, length;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("read", "Copy an allocation's bytes to stdout (raw, not JSON)");
    add_allocation_target(*cmd, args->target, false);
    auto* offset = cmd->add_option("--offset", args->offset, "Start this many bytes into the allocation (a size)")
                       ->type_name("SIZE");
    auto* length = cmd->add_option("--length", args->length, "Copy at most this many bytes (a size; default: to the end)")
                       ->type_name("SIZE");
    cmd->footer("Example:\n  dragonmem read p1 3 --length 5 | od -c");

    return {cmd, [=] {
                const std::size_t start = offset->count() != 0 ? parse_size(args->offset, "--offset") : 0;
                std::optional<std::size_t> bytes;
                if (length->count() != 0) bytes = parse_size(args->length, "--length");
                if (args->target.ids.size() > 1) throw UsageError("read takes one ID");
                const Memory memory = std::move(open_allocations(args->target).front());
                const Memory view = view_of(memory, start, bytes, "read");
                std::vector<std::byte> copy;  // a GPU pool's bytes, read to the host
                write_raw(host_bytes(view, copy));
                return Outcome{std::nullopt, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
