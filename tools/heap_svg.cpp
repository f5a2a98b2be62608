// dump --svg (heap_svg.hpp).
#include "heap_svg.hpp"

#include "common.hpp"
#include "table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>

namespace dragonmem::cli {
namespace {

constexpr int k_row_height = 18;
constexpr int k_row_gap = 4;
constexpr int k_margin = 16;
constexpr int k_caption_height = 64;

const char* const k_free_colour = "#e6e6e6";

// Colours for types: the named ones fixed, others from a palette by value.
std::string type_colour(std::uint64_t type) {
    static constexpr std::array<const char*, 8> palette{"#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                                        "#9c755f", "#bab0ac", "#8cd17d", "#86bcb6"};
    switch (type) {
        case DRAGON_MEMORY_ALLOC_DATA: return "#4e79a7";
        case DRAGON_MEMORY_ALLOC_CHANNEL: return "#f28e2b";
        case DRAGON_MEMORY_ALLOC_CHANNEL_BUFFER: return "#e15759";
        case DRAGON_MEMORY_ALLOC_BOOTSTRAP: return "#76b7b2";
        default: return palette[type % palette.size()];
    }
}

std::string kind_name(const HeapRun& run) {
    if (run.free) return "free";
    const auto name = type_name(run.type);
    return name ? std::string(*name) : fmt::format("type {}", run.type);
}

std::string xml_escaped(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

// Calls fn(run) for each run of the heap in address order: each used block on its own,
// and each gap between them as one free run.
template <typename Fn>
void for_each_run(const std::vector<UsedBlock>& used, std::uint64_t heap_bytes, Fn&& fn) {
    std::uint64_t at = 0;
    for (const UsedBlock& block : used) {
        if (block.offset > at) fn(HeapRun{at, block.offset - at, true, 0});
        fn(HeapRun{block.offset, block.bytes, false, block.type});
        at = block.offset + block.bytes;
    }
    if (at < heap_bytes) fn(HeapRun{at, heap_bytes - at, true, 0});
}

// Legend order: free first, then types by value.
using KindKey = std::pair<bool, std::uint64_t>;
KindKey key_of(const HeapRun& run) { return {!run.free, run.free ? 0 : run.type}; }

// Too many runs to draw one by one: one run per pixel, of the kind holding most of its
// bytes, neighbouring pixels of one kind merged.
std::vector<HeapRun> per_pixel(const std::vector<UsedBlock>& used, std::uint64_t heap_bytes) {
    const std::uint64_t cells = static_cast<std::uint64_t>(k_svg_width) * k_svg_rows;
    const auto cell_begin = [&](std::uint64_t cell) { return heap_bytes * cell / cells; };
    std::vector<HeapRun> out;
    std::map<KindKey, std::uint64_t> share;  // bytes per kind in the current pixel
    std::uint64_t cell = 0;
    const auto finish_cell = [&] {
        auto best = std::max_element(share.begin(), share.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
        HeapRun run{cell_begin(cell), cell_begin(cell + 1) - cell_begin(cell), true, 0};
        if (best != share.end() && best->first.first) {
            run.free = false;
            run.type = best->first.second;
        }
        if (run.bytes != 0) {
            if (!out.empty() && out.back().free == run.free && out.back().type == run.type)
                out.back().bytes += run.bytes;
            else
                out.push_back(run);
        }
        share.clear();
        ++cell;
    };
    for_each_run(used, heap_bytes, [&](const HeapRun& run) {
        std::uint64_t at = run.offset;
        const std::uint64_t end = run.offset + run.bytes;
        while (at < end && cell < cells) {
            const std::uint64_t piece_end = std::min(end, cell_begin(cell + 1));
            if (piece_end > at) share[key_of(run)] += piece_end - at;
            at = std::max(at, piece_end);
            if (at == cell_begin(cell + 1)) finish_cell();
        }
    });
    while (cell < cells) finish_cell();  // an empty tail (none: the runs cover the heap)
    return out;
}

}  // namespace

std::vector<UsedBlock> used_blocks(const dragonmem::Pool& pool) {
    // Live allocations in slot order, sorted by offset here.
    std::vector<UsedBlock> used;
    std::vector<AllocationInfo> page;
    std::uint64_t cursor = 0;
    for (bool more = true; more;) {
        more = pool.allocations_page(cursor, 4096, page);
        for (const AllocationInfo& info : page)
            if (info.block_bytes != 0) used.push_back(UsedBlock{info.offset, info.block_bytes, info.type});
    }
    std::sort(used.begin(), used.end(), [](const UsedBlock& a, const UsedBlock& b) { return a.offset < b.offset; });
    // Listed twice across pages, or overlapping (moved meanwhile): drawn once.
    std::uint64_t end = 0;
    std::erase_if(used, [&end](const UsedBlock& block) {
        if (block.offset < end) return true;
        end = block.offset + block.bytes;
        return false;
    });
    return used;
}

HeapPicture draw_heap(const std::vector<UsedBlock>& used, std::uint64_t heap_bytes, const json& figures) {
    HeapPicture picture;
    // Bytes per kind, for the legend (free first, then types by value), and the runs.
    std::map<KindKey, std::pair<std::uint64_t, HeapRun>> kinds;
    std::size_t run_count = 0;
    for_each_run(used, heap_bytes, [&](const HeapRun& run) {
        auto& entry = kinds[key_of(run)];
        entry.first += run.bytes;
        entry.second = run;
        ++run_count;
    });
    picture.exact = run_count <= k_svg_max_runs;
    const std::uint64_t row_bytes = std::max<std::uint64_t>(1, heap_bytes / k_svg_rows);
    picture.bytes_per_pixel = static_cast<double>(row_bytes) / k_svg_width;
    const int legend_top = k_margin + k_caption_height + k_svg_rows * (k_row_height + k_row_gap) + 8;
    const int height = legend_top + static_cast<int>(kinds.size()) * 20 + k_margin;
    const int width = k_svg_width + 2 * k_margin;
    std::string& svg = picture.svg;
    svg += fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
        "font-family=\"sans-serif\" font-size=\"13\" data-heap-bytes=\"{}\" data-rows=\"{}\" data-row-bytes=\"{}\" "
        "data-exact=\"{}\">\n",
        width, height, width, height, heap_bytes, k_svg_rows, row_bytes, picture.exact ? "true" : "false");
    svg += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n", width, height);

    // Caption: the pool's figures.
    const std::string name = figures.value("name", std::string("?"));
    const auto number = [&figures](const char* key) { return figures.value(key, std::uint64_t{0}); };
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"16\" font-weight=\"bold\">pool {}</text>\n", k_margin,
                       k_margin + 14, xml_escaped(name));
    svg += fmt::format(
        "<text x=\"{}\" y=\"{}\">heap {}, used {} ({:.1f}%), free {}, {} live allocations</text>\n", k_margin,
        k_margin + 34, human_size(heap_bytes), human_size(number("used_bytes")), figures.value("utilization", 0.0),
        human_size(number("free_bytes")), number("live_allocations"));
    svg += fmt::format(
        "<text x=\"{}\" y=\"{}\">largest free block {}, fragmentation {:.3f}; one row = {}, one pixel = {}{}</text>\n",
        k_margin, k_margin + 52, human_size(number("largest_free_block")), figures.value("fragmentation", 0.0),
        human_size(row_bytes), human_size(static_cast<std::uint64_t>(picture.bytes_per_pixel)),
        picture.exact ? "" : " (drawn per pixel: each pixel shows the kind holding most of it)");

    // The heap: each run cut at row ends.
    const int top = k_margin + k_caption_height;
    const auto draw = [&](const HeapRun& run) {
        std::uint64_t at = run.offset;
        const std::uint64_t end = run.offset + run.bytes;
        const std::string fill = run.free ? k_free_colour : type_colour(run.type);
        const std::string kind = kind_name(run);
        while (at < end) {
            const std::uint64_t row = at / row_bytes;
            const std::uint64_t piece_end = std::min(end, (row + 1) * row_bytes);
            const double x = k_margin + static_cast<double>(at - row * row_bytes) / picture.bytes_per_pixel;
            const double w = static_cast<double>(piece_end - at) / picture.bytes_per_pixel;
            const int y = top + static_cast<int>(row) * (k_row_height + k_row_gap);
            svg += fmt::format(
                "<rect class=\"heap\" x=\"{:.3f}\" y=\"{}\" width=\"{:.3f}\" height=\"{}\" fill=\"{}\"{} "
                "data-kind=\"{}\" data-offset=\"{}\" data-bytes=\"{}\"/>\n",
                x, y, w, k_row_height, fill, run.free ? "" : " stroke=\"white\" stroke-width=\"0.5\"", xml_escaped(kind),
                at, piece_end - at);
            ++picture.rectangles;
            at = piece_end;
        }
    };
    if (picture.exact) {
        for_each_run(used, heap_bytes, draw);
    } else {
        for (const HeapRun& run : per_pixel(used, heap_bytes)) draw(run);
    }
    // Legend.
    int y = legend_top;
    for (const auto& [key, entry] : kinds) {
        const HeapRun& sample = entry.second;
        svg += fmt::format("<rect class=\"legend\" x=\"{}\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{}\" "
                           "stroke=\"#888\" data-kind=\"{}\"/>\n",
                           k_margin, y, sample.free ? k_free_colour : type_colour(sample.type),
                           xml_escaped(kind_name(sample)));
        svg += fmt::format("<text x=\"{}\" y=\"{}\">{}: {} ({:.1f}% of the heap)</text>\n", k_margin + 20, y + 12,
                           xml_escaped(kind_name(sample)), human_size(entry.first),
                           100.0 * static_cast<double>(entry.first) / static_cast<double>(heap_bytes));
        y += 20;
    }
    svg += "</svg>\n";
    return picture;
}

}  // namespace dragonmem::cli
