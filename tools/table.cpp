// Aligned text tables and human sizes for --table.
#include "table.hpp"

#include "common.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace dragonmem::cli {

std::string human_size(std::uint64_t bytes) {
    constexpr std::array<const char*, 6> units{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) return fmt::format("{} B", bytes);
    double value = static_cast<double>(bytes) / 1024.0;
    std::size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < units.size()) {
        value /= 1024.0;
        ++unit;
    }
    return fmt::format("{:.1f} {}", value, units[unit]);
}

Table::Table(std::vector<std::string> header, std::vector<bool> right)
    : header_(std::move(header)), right_(std::move(right)) {
    right_.resize(header_.size(), false);
}

void Table::add(std::vector<std::string> row) {
    row.resize(header_.size());
    rows_.push_back(std::move(row));
}

std::string Table::text() const {
    std::vector<std::size_t> width(header_.size());
    for (std::size_t c = 0; c < header_.size(); ++c) {
        width[c] = header_[c].size();
        for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
    }
    std::string out;
    auto line = [&](const std::vector<std::string>& cells) {
        std::string text;
        for (std::size_t c = 0; c < cells.size(); ++c) {
            if (c != 0) text += "  ";
            const std::size_t pad = width[c] - cells[c].size();
            if (right_[c]) text.append(pad, ' ');
            text += cells[c];
            if (!right_[c] && c + 1 < cells.size()) text.append(pad, ' ');
        }
        out += text;
        out += '\n';
    };
    line(header_);
    for (const auto& row : rows_) line(row);
    return out;
}

}  // namespace dragonmem::cli

namespace dragonmem::cli {
namespace {

std::string cell(const json& value) {
    if (value.is_null()) return "-";
    if (value.is_string()) return value.get<std::string>();
    return value.dump();
}

std::string size_cell(const json& value) { return value.is_number_unsigned() ? human_size(value.get<std::uint64_t>()) : cell(value); }

}  // namespace

std::string pools_table(const json& pools) {
    // ATTACHED: live processes attached (the listing command left out); ORPHANED: no live
    // process uses the pool (docs/design.md "Who is alive").
    Table table({"NAME", "SIZE", "USED", "FREE", "UTIL", "LIVE", "MAX", "MODE", "OWNER", "ATTACHED", "ORPHANED"},
                {false, true, true, true, true, true, true, false, true, true, false});
    for (const json& pool : pools) {
        if (pool.contains("error")) {
            table.add({cell(pool["name"]), "-", "-", "-", "-", "-", "-", "-", cell(pool["error"]["code"]), "-", "-"});
            continue;
        }
        table.add({cell(pool["name"]), size_cell(pool["size"]), size_cell(pool["used_bytes"]),
                   size_cell(pool["free_bytes"]), fmt::format("{:.1f}%", pool["utilization"].get<double>()),
                   cell(pool["live_allocations"]), cell(pool["max_allocations"]), cell(pool["mode"]),
                   cell(pool["owner_uid"]), cell(pool["attached"]["count"]),
                   pool["orphaned"].get<bool>() ? "yes" : "no"});
    }
    return table.text();
}

std::string allocations_table(const dragonmem::Pool& pool, std::optional<std::uint64_t> type) {
    Table table({"ID", "TYPE", "OFFSET", "SIZE", "BLOCK"}, {true, false, true, true, true});
    std::vector<AllocationInfo> page;
    std::uint64_t cursor = 0;
    for (bool more = true; more;) {
        more = pool.allocations_page(cursor, 4096, page, type);
        for (const AllocationInfo& info : page) {
            const auto name = type_name(info.type);
            table.add({std::to_string(info.id), name ? std::string(*name) : std::to_string(info.type),
                       std::to_string(info.offset), human_size(info.size), human_size(info.block_bytes)});
        }
    }
    return table.text();
}

std::string pool_table(const json& pool_object) {
    Table table({"FIELD", "VALUE"}, {false, false});
    for (const auto& [key, value] : pool_object.items()) {
        if (key == "serialized") continue;  // a long base64 line helps no eye
        const bool bytes = key == "size" || key.ends_with("_bytes") || key == "min_block" || key == "max_block" ||
                           key == "segment_size" || key == "max_size" || key == "largest_free_block" ||
                           key == "largest_request" || key == "internal_waste";
        table.add({key, bytes ? size_cell(value) : cell(value)});
    }
    return table.text();
}

std::string free_blocks_table(const json& free_blocks) {
    Table table({"BLOCK", "FREE", "BYTES"}, {true, true, true});
    for (const json& entry : free_blocks) {
        const auto block = entry["block_size"].get<std::uint64_t>();
        const auto count = entry["count"].get<std::uint64_t>();
        table.add({human_size(block), std::to_string(count), human_size(block * count)});
    }
    return table.text();
}

std::string types_table(const json& types) {
    Table table({"TYPE", "LIVE", "BYTES", "BLOCK_BYTES"}, {false, true, true, true});
    for (const json& entry : types)
        table.add({entry["type_name"].is_null() ? cell(entry["type"]) : cell(entry["type_name"]),
                   cell(entry["allocations"]), size_cell(entry["bytes"]), size_cell(entry["block_bytes"])});
    return table.text();
}

}  // namespace dragonmem::cli
