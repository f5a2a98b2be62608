// dragonmem write: copy stdin into an allocation.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace dragonmem::cli {
namespace {

// Reads all of stdin and returns its length; keeps at most `keep_bytes` of it in `kept`.
// The rest is counted, not stored, so the error for oversized input can say how big it was
// without buffering all of it.
std::size_t read_stdin(std::vector<std::byte>& kept, std::size_t keep_bytes) {
    std::vector<std::byte> chunk(1 << 16);
    std::size_t total = 0;
    for (;;) {
        const ssize_t got = ::read(STDIN_FILENO, chunk.data(), chunk.size());
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw Error(DRAGON_MEMORY_ERRNO, fmt::format("reading stdin failed: {}", std::strerror(errno)));
        if (got == 0) return total;
        const auto bytes = static_cast<std::size_t>(got);
        if (total < keep_bytes) {
            const std::size_t take = std::min(bytes, keep_bytes - total);
            kept.insert(kept.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(take));
        }
        total += bytes;
    }
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
                const Memory memory = std::move(open_allocations(args->target).front());
                // The library checks the offset against the allocation (INVALID_ARGUMENT).
                const Memory view = memory.clone(static_cast<std::ptrdiff_t>(start));
                const auto destination = view.bytes();
                std::vector<std::byte> input;
                const std::size_t input_bytes = read_stdin(input, destination.size());
                const std::string name = memory.pool().name();
                // Checked before anything is copied: a failed write leaves the allocation as it was.
                if (input_bytes > destination.size())
                    throw Error(DRAGON_INVALID_ARGUMENT,
                                fmt::format("stdin holds {} B but allocation {} of pool '{}' has room for {} B "
                                            "({} B from offset {})",
                                            input_bytes, memory.id(), name, destination.size(), memory.size(), start));
                if (!input.empty()) std::memcpy(destination.data(), input.data(), input.size());
                json document{{"pool", name},          {"id", memory.id()},          {"offset", start},
                              {"bytes_written", input_bytes}, {"size", memory.size()}};
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
