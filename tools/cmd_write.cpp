// dragonmem write: copy stdin into an allocation.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <dragonmem/remote.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <ctime>
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

// An allocation on another node: written through its agent. The bytes replaced are read
// first, so that an unwritable stdout can still mean nothing changed.
Outcome write_remote(const Memory& view, const Memory& memory, std::size_t start, std::optional<timespec> limit) {
    const timespec* timeout = limit ? &*limit : nullptr;
    const std::vector<std::byte> input = read_stdin(view.size() + 1);
    const Pool pool = memory.pool();
    if (input.size() > view.size())
        throw Error(DRAGON_INVALID_ARGUMENT,
                    fmt::format("stdin holds more than the {} B that allocation {} of pool '{}' has room for ({} B "
                                "from offset {}); nothing was written",
                                view.size(), memory.id(), pool.name(), memory.size(), start));
    auto replaced = std::make_shared<std::vector<std::byte>>(input.size());
    read_bytes(view, 0, *replaced, timeout);
    write_bytes(view, 0, input, timeout);
    auto target = std::make_shared<const Memory>(view.clone(0));
    std::function<std::string()> undo = [target, replaced, limit, name = pool.name(), id = memory.id()] {
        write_bytes(*target, 0, *replaced, limit ? &*limit : nullptr);
        return fmt::format("the {} B written to allocation {} of pool '{}' were restored: nothing changed",
                           replaced->size(), id, name);
    };
    AllocationInfo info;
    info.id = memory.id();
    info.type = memory.type();
    info.offset = memory.block_offset();
    info.size = memory.size();
    json allocation = allocation_json(info, std::nullopt);
    allocation["block_size"] = nullptr;  // the pool's block sizes are not known off-node
    json document{{"pool", pool_json(pool)}, {"allocation", allocation}, {"offset", start},
                  {"bytes_written", input.size()}};
    return Outcome{document, std::nullopt, undo};
}

}  // namespace

Command add_write(CLI::App& top) {
    struct Args {
        AllocationTarget target;
        std::string offset, timeout;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("write", "Copy stdin into an allocation");
    add_allocation_target(*cmd, args->target, false);
    auto* offset = cmd->add_option("--offset", args->offset, "Start this many bytes into the allocation (a size)")
                       ->type_name("SIZE");
    auto* timeout = cmd->add_option("--timeout", args->timeout,
                                    "An allocation on another node (--serial): give up after SEC seconds")
                        ->type_name("SEC");
    cmd->footer("Example:\n  echo hello | dragonmem write p1 3 | jq .bytes_written\n"
                "  echo hello | dragonmem write --serial \"$DESCRIPTOR_FROM_ANOTHER_NODE\" --timeout 5");

    return {cmd, [=] {
                const std::size_t start = offset->count() != 0 ? parse_size(args->offset, "--offset") : 0;
                if (args->target.ids.size() > 1) throw UsageError("write takes one ID");
                std::optional<timespec> limit;
                if (timeout->count() != 0) limit = parse_timeout(args->timeout, "--timeout");
                auto memory = std::make_shared<const Memory>(std::move(open_allocations(args->target).front()));
                const std::string name = memory->pool().name();
                const Memory view = view_of(*memory, start, std::nullopt, "write");
                if (!view.is_local()) return write_remote(view, *memory, start, limit);
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
