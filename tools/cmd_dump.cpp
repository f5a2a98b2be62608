// dragonmem dump: a pool in full (object, free blocks, space figures: internal waste,
// largest free block and request; every live allocation, streamed), or one allocation's
// bytes. The internal waste is summed in a first paged pass over the allocations, so
// that the head (the first line with --jsonl) can carry it.
#include "commands.hpp"
#include "common.hpp"
#include "heap_svg.hpp"
#include "table.hpp"

#include <dragonmem/system_error.hpp>
#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>

namespace dragonmem::cli {
namespace {

// Writes `text` to `path` (created, or truncated; mode 0644 less the umask). A failure
// removes what was written and throws naming the file and the system's reason.
void write_file(const std::string& path, const std::string& text) {
    const auto failure = [&path](int err, const char* what) {
        return SystemError(DRAGON_INVALID_ARGUMENT,
                           fmt::format("--svg: cannot {} '{}': {} (errno {})", what, path, std::strerror(err), err), err);
    };
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw failure(errno, "create");
    std::size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : EIO;
            ::close(fd);
            ::unlink(path.c_str());
            throw failure(err, "write");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(path.c_str());
        throw failure(err, "write");
    }
}

// The pool's figures for the picture's caption: the pool object, the largest free
// block and the fragmentation (as `info` computes them).
json picture_figures(const Pool& pool) {
    json figures = pool_json(pool);
    std::uint64_t largest = 0;
    for (const FreeBlockCount& entry : pool.free_blocks())
        if (entry.count != 0) largest = entry.block_bytes;
    const std::uint64_t free_bytes = figures.value("free_bytes", std::uint64_t{0});
    figures["largest_free_block"] = largest;
    figures["fragmentation"] = free_bytes == 0 || largest >= free_bytes
                                   ? 0.0
                                   : 1.0 - static_cast<double>(largest) / static_cast<double>(free_bytes);
    return figures;
}

}  // namespace

Command add_dump(CLI::App& top) {
    struct Args {
        PoolTarget target;
        std::string id;
        bool hex = false, raw = false, table = false;
        std::string svg;
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
    auto* svg = cmd->add_option("--svg", args->svg,
                                "Draw the heap along its address space (free, used by type) into FILE as SVG")
                    ->type_name("FILE");
    cmd->footer("Examples:\n"
                "  dragonmem dump p1 | jq '.free_blocks, .allocations'\n"
                "  dragonmem dump p1 --jsonl | tail -n +2 | jq -s length   # line 1: pool and free blocks\n"
                "  dragonmem dump p1 --id 3 | jq -r .hex\n"
                "  dragonmem dump p1 --id 3 --raw | od -c\n"
                "  dragonmem dump p1 --table\n"
                "  dragonmem dump p1 --svg heap.svg && rsvg-convert heap.svg -o heap.png");

    return {cmd, [=] {
                withhold_secrets();  // a listing: descriptors without the pool's secret
                if (id->count() == 0 && (args->hex || args->raw)) throw UsageError("--hex and --raw need --id");
                if (id->count() != 0 && args->listing.jsonl) throw UsageError("--jsonl lists a pool: not with --id");
                if (args->table && (id->count() != 0 || args->listing.jsonl || args->listing.serialized))
                    throw UsageError("--table shows the pool: not with --id, --jsonl or --serialized");
                if (svg->count() != 0) {
                    if (args->svg.empty()) throw UsageError("--svg: give a FILE name, not ''");
                    if (id->count() != 0 || args->listing.jsonl || args->listing.serialized || args->table)
                        throw UsageError("--svg draws the pool: not with --id, --jsonl, --serialized or --table");
                }
                // Arguments are checked before the pool is touched: bad usage is exit 2
                // whatever the pool's state.
                const std::optional<std::uint64_t> allocation =
                    id->count() == 0 ? std::nullopt : std::optional(parse_id(args->id, "--id"));
                auto pool = std::make_shared<Pool>(open_pool(args->target));
                if (svg->count() != 0) {
                    const json figures = picture_figures(*pool);
                    const HeapPicture picture = draw_heap(used_blocks(*pool), pool->heap_bytes(), figures);
                    write_file(args->svg, picture.svg);
                    json pool_object = figures;
                    pool_object.erase("largest_free_block");
                    pool_object.erase("fragmentation");
                    return Outcome{json{{"pool", pool_object},
                                        {"svg", args->svg},
                                        {"rectangles", picture.rectangles},
                                        {"exact", picture.exact},
                                        {"bytes_per_pixel", picture.bytes_per_pixel},
                                        {"largest_free_block", figures["largest_free_block"]},
                                        {"fragmentation", figures["fragmentation"]}},
                                   std::nullopt};
                }
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
                std::vector<std::byte> copy;  // a GPU pool's bytes, read to the host
                if (args->raw) {
                    write_raw(host_bytes(memory, copy));
                    return Outcome{std::nullopt, std::nullopt};
                }
                json document{{"pool", pool_json(*pool)},
                              {"allocation",
                               allocation_json(info_of(memory, *pool), serialized_if(args->listing.serialized, memory))},
                              {"hex", hex_bytes(host_bytes(memory, copy))}};
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
