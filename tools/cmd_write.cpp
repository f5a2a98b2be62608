// dragonmem write: copy stdin into an allocation.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

namespace dragonmem::cli {
namespace {

// Reads stdin up to its end or `limit_bytes`, whichever comes first. The caller passes
// one byte more than fits, so that it can tell oversized input without reading all of it
// (an endless stdin, such as /dev/zero, must not hold the command forever).
std::vector<std::byte> read_stdin(std::size_t limit_bytes) {
    std::vector<std::byte> input;
    std::byte chunk[1 << 16];
    while (input.size() < limit_bytes) {
        const std::size_t want = std::min(sizeof chunk, limit_bytes - input.size());
        const ssize_t got = ::read(STDIN_FILENO, chunk, want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw Error(DRAGON_MEMORY_ERRNO, fmt::format("reading stdin failed: {}", std::strerror(errno)));
        if (got == 0) break;
        input.insert(input.end(), chunk, chunk + got);
    }
    return input;
}

}  // namespace

Command add_write(CLI::App& top) {
    struct Args {
        AllocationTarget target;
        std::string offset;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("write", "Copy stdin into an allocation");
    add_allocation_target(*cmd, args->target, false);
    auto* offset = cmd->add_option("--offset", args->offset, "Start this many bytes into the allocation (a size)")
                       ->type_name("SIZE");
    cmd->footer("Example:\n  echo hello | dragonmem write p1 3 | jq .bytes_written");

    return {cmd, [=] {
                const std::size_t start = offset->count() != 0 ? parse_size(args->offset, "--offset") : 0;
                if (args->target.ids.size() > 1) throw UsageError("write takes one ID");
                auto memory = std::make_shared<const Memory>(std::move(open_allocations(args->target).front()));
                const std::string name = memory->pool().name();
                const Memory view = view_of(*memory, start, std::nullopt, "write");
                const std::size_t room = view.size();
                const std::vector<std::byte> input = read_stdin(room + 1);
                // Checked before anything is copied: a failed write leaves the allocation as it was.
                if (input.size() > room)
                    throw Error(DRAGON_INVALID_ARGUMENT,
                                fmt::format("stdin holds more than the {} B that allocation {} of pool '{}' has room "
                                            "for ({} B from offset {}); nothing was written",
                                            room, memory->id(), name, memory->size(), start));
                // The bytes replaced, kept so that exit 1 (stdout unwritable) can mean nothing changed.
                // Read and written through the API (a GPU pool's bytes are device memory).
                auto replaced = std::make_shared<std::vector<std::byte>>(input.size());
                view.read(0, *replaced);
                view.write(0, input);
                std::function<std::string()> undo = [memory, replaced, start, name] {
                    // `memory` keeps the pool mapped; the write back can still fail (the pool
                    // destroyed meanwhile, a CUDA error), which the message then says.
                    try {
                        if (!replaced->empty()) memory->write(start, *replaced);
                    } catch (const Error& e) {
                        return fmt::format("the {} B written to allocation {} of pool '{}' could not be restored: {}",
                                           replaced->size(), memory->id(), name, e.what());
                    }
                    return fmt::format("the {} B written to allocation {} of pool '{}' were restored: nothing changed",
                                       replaced->size(), memory->id(), name);
                };
                const Pool pool = memory->pool();
                json document{{"pool", pool_json(pool)},
                              {"allocation", allocation_json(info_of(*memory, pool), std::nullopt)},
                              {"offset", start},
                              {"bytes_written", input.size()}};
                return Outcome{document, std::nullopt, undo};
            }};
}

}  // namespace dragonmem::cli
