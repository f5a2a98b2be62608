// --table: the human view of ls, ls POOL, info and dump. Aligned columns (like lsblk or
// ipcs) and sizes as people read them ("64.0 MiB"); JSON stays the default and the
// contract for scripts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dragonmem::cli {

// "512 B", "1.5 KiB", "64.0 MiB": one decimal from KiB up.
std::string human_size(std::uint64_t bytes);

// Rows of text cells under a header, printed with every column as wide as its widest
// cell; `right` columns (numbers, sizes) align right.
class Table {
public:
    Table(std::vector<std::string> header, std::vector<bool> right);
    void add(std::vector<std::string> row);
    std::string text() const;

private:
    std::vector<std::string> header_;
    std::vector<bool> right_;
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace dragonmem::cli

#include "output.hpp"

namespace dragonmem::cli {

// The --table views, built from the same objects the JSON shows.
// ls: one row per pool (a pool that cannot be read shows its error code).
std::string pools_table(const json& pools);
// ls POOL, and the allocations part of dump: one row per live allocation.
std::string allocations_table(const dragonmem::Pool& pool, std::optional<std::uint64_t> type);
// info and the head of dump: the pool's figures as NAME VALUE rows.
std::string pool_table(const json& pool_object);
// dump: free blocks per block size.
std::string free_blocks_table(const json& free_blocks);
// info: bytes per allocation type.
std::string types_table(const json& types);

}  // namespace dragonmem::cli
