// dragonmem alloc: make allocations that outlive the command (they live in the pool).
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace dragonmem::cli {
namespace {

using Clock = std::chrono::steady_clock;

timespec to_timespec(Clock::duration remaining) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(remaining, Clock::duration::zero()));
    return timespec{static_cast<std::time_t>(ns.count() / 1'000'000'000),
                    static_cast<long>(ns.count() % 1'000'000'000)};
}

// Frees the allocations the command made, for a failure after they were made; says what
// it did, for the error message.
std::string free_again(std::vector<Memory>& made, const std::string& pool_name) {
    std::size_t freed = 0;
    for (Memory& memory : made) {
        try {
            memory.free();
            ++freed;
        } catch (const Error&) {
            // Someone freed it already: nothing of ours is left to undo.
        }
    }
    return fmt::format("the {} allocation(s) made in pool '{}' were freed again: nothing changed", freed, pool_name);
}

// The command is all or nothing: if allocation k fails, the k-1 made before are freed
// again, so a failed `alloc --count K` leaves the pool as it found it.
std::vector<Memory> allocate(const Pool& pool, std::size_t bytes, std::uint64_t type, std::uint64_t count,
                             std::optional<Clock::time_point> deadline) {
    std::vector<Memory> made;
    const std::string name = pool.name();
    try {
        for (std::uint64_t i = 0; i < count; ++i) {
            if (!deadline) {
                made.push_back(pool.alloc(bytes, type));
                continue;
            }
            // One deadline for the whole command, not SEC per allocation.
            const timespec remaining = to_timespec(*deadline - Clock::now());
            made.push_back(pool.alloc_blocking(bytes, type, &remaining));
        }
    } catch (...) {
        (void)free_again(made, name);
        throw;
    }
    return made;
}

}  // namespace

Command add_alloc(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string size, type = "data", timeout, count = "1";
        ListingOptions listing;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("alloc", "Allocate memory in a pool");
    add_pool_target(*cmd, args->target);
    cmd->add_option("--size", args->size, "Bytes per allocation (4096, 64K, 1M, 2G)")
        ->type_name("SIZE")
        ->required();
    cmd->add_option("--type", args->type, "data (default), channel, channel_buffer, bootstrap or a number")
        ->type_name("TYPE");
    auto* timeout = cmd->add_option("--timeout", args->timeout, "Wait up to SEC seconds for free space")->type_name("SEC");
    cmd->add_option("--count", args->count, "Number of allocations (default 1); all or none are made")
        ->type_name("K");
    add_listing_options(*cmd, args->listing);
    cmd->footer("Examples:\n"
                "  id=$(dragonmem alloc p1 --size 4K --type channel | jq -r '.allocations[0].id')\n"
                "  desc=$(dragonmem alloc p1 --size 64 --serialized | jq -r '.allocations[0].serialized')");

    return {cmd, [=] {
                const std::size_t bytes = parse_size(args->size, "--size");
                const std::uint64_t type = parse_type(args->type, "--type");
                const std::uint64_t count = parse_uint(args->count, "--count");
                if (count == 0) throw UsageError("--count: at least 1 allocation");
                std::optional<Clock::time_point> deadline;
                if (timeout->count() != 0) {
                    const double seconds = parse_seconds(args->timeout, "--timeout");
                    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(seconds));
                }
                const Pool pool = open_pool(args->target);
                const std::string name = pool.name();
                // More than the manifest holds can never succeed (and zero-byte ones, which
                // hold no record, would only pile up handles until memory runs out).
                // Reading max_allocations takes the pool lock: a single allocation (which
                // every pool can hold) skips it, so `--timeout` alone bounds its wait.
                const std::size_t capacity = count > 1 ? pool.attributes().max_allocations : 1;
                if (count > capacity)
                    throw UsageError(fmt::format("--count: {} allocations is more than pool '{}' can hold at once ({}, "
                                                 "its max_allocations)",
                                                 count, name, capacity));
                auto made = std::make_shared<std::vector<Memory>>(allocate(pool, bytes, type, count, deadline));
                // Exit 1 must mean no allocation: if describing or printing them fails, they go again.
                std::function<std::string()> undo = [made, name] { return free_again(*made, name); };
                try {
                    Outcome outcome{std::nullopt, std::nullopt, undo};
                    outcome.layout = args->listing.layout();
                    const json pool_object = pool_json(pool);
                    // Every allocation of the command has the same block size.
                    const std::size_t block = pool.block_bytes_for(bytes);
                    outcome.stream = [made, pool_object, block, serialized = args->listing.serialized](JsonStream& out) {
                        out.begin_object();
                        out.member("pool", pool_object);
                        out.begin_array("allocations");
                        for (const Memory& memory : *made) {
                            const AllocationInfo info{memory.id(), memory.type(), memory.block_offset(), memory.size(),
                                                      memory.id() == 0 ? 0 : block};
                            out.allocation(info, serialized_if(serialized, memory));
                        }
                        out.end_array();
                        out.end_object();
                    };
                    return outcome;
                } catch (const Error& e) {
                    throw Error(e.code(), fmt::format("{}; {}", e.what(), undo()));
                }
            }};
}

}  // namespace dragonmem::cli
