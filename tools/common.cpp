// Shared helpers of the dragonmem command: argument parsers, pool resolution, lookups.
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

namespace dragonmem::cli {
namespace {

// The named allocation types, in the order of dragonMemoryAllocationType_t.
constexpr std::array<std::pair<std::string_view, std::uint64_t>, 4> named_types{{
    {"data", DRAGON_MEMORY_ALLOC_DATA},
    {"channel", DRAGON_MEMORY_ALLOC_CHANNEL},
    {"channel_buffer", DRAGON_MEMORY_ALLOC_CHANNEL_BUFFER},
    {"bootstrap", DRAGON_MEMORY_ALLOC_BOOTSTRAP},
}};

// Longest timeout accepted: far beyond any use, and small enough that the conversion to
// a timespec cannot overflow.
constexpr double max_seconds = 1e9;

bool all_digits(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text)
        if (c < '0' || c > '9') return false;
    return true;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

}  // namespace

std::uint64_t parse_uint(std::string_view text, std::string_view what) {
    // from_chars alone would accept a prefix ("12abc"); digits only, all of them.
    std::uint64_t value = 0;
    if (!all_digits(text))
        throw UsageError(fmt::format("{}: '{}' is not an unsigned decimal integer", what, text));
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc::result_out_of_range)
        throw UsageError(fmt::format("{}: '{}' is larger than {}", what, text,
                                     std::numeric_limits<std::uint64_t>::max()));
    if (ec != std::errc() || end != text.data() + text.size())
        throw UsageError(fmt::format("{}: '{}' is not an unsigned decimal integer", what, text));
    return value;
}

std::size_t parse_size(std::string_view text, std::string_view what) {
    unsigned shift = 0;
    std::string_view digits = text;
    if (!text.empty()) {
        switch (std::toupper(static_cast<unsigned char>(text.back()))) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: break;
        }
        if (shift != 0) digits.remove_suffix(1);
    }
    if (!all_digits(digits))
        throw UsageError(fmt::format("{}: '{}' is not a size (examples: 4096, 64K, 1M, 2G)", what, text));
    const std::uint64_t count = parse_uint(digits, what);
    const std::uint64_t limit = std::numeric_limits<std::size_t>::max() >> shift;
    if (count > limit)
        throw UsageError(fmt::format("{}: '{}' does not fit in {} bits", what, text,
                                     std::numeric_limits<std::size_t>::digits));
    return static_cast<std::size_t>(count << shift);
}

double parse_seconds(std::string_view text, std::string_view what) {
    const std::string copy(text);  // strtod needs a terminated string
    char* end = nullptr;
    const double seconds = copy.empty() ? -1.0 : std::strtod(copy.c_str(), &end);
    // Digits and a dot only: strtod would also take "inf", "0x1p3" and leading blanks.
    const bool plain = copy.find_first_not_of("0123456789.") == std::string::npos;
    if (copy.empty() || !plain || end != copy.c_str() + copy.size() || !std::isfinite(seconds) ||
        seconds < 0.0)
        throw UsageError(fmt::format("{}: '{}' is not a number of seconds (examples: 5, 0.25)", what, text));
    if (seconds > max_seconds)
        throw UsageError(fmt::format("{}: {} s is more than the longest timeout, {} s", what, text, max_seconds));
    return seconds;
}

unsigned parse_mode(std::string_view text, std::string_view what) {
    const bool octal = !text.empty() && text.size() <= 5 && text.find_first_not_of("01234567") == std::string_view::npos;
    unsigned mode = 0;
    if (octal) std::from_chars(text.data(), text.data() + text.size(), mode, 8);
    if (!octal || mode > 07777)
        throw UsageError(fmt::format("{}: '{}' is not an octal permission mode (example: 0600)", what, text));
    return mode;
}

std::uint64_t parse_type(std::string_view text, std::string_view what) {
    for (const auto& [name, value] : named_types)
        if (equals_ignoring_case(text, name)) return value;
    if (all_digits(text)) return parse_uint(text, what);
    throw UsageError(fmt::format("{}: '{}' is not an allocation type (data, channel, channel_buffer, "
                                 "bootstrap or a number)", what, text));
}

std::vector<std::size_t> parse_uint_list(std::string_view text, std::string_view what) {
    std::vector<std::size_t> values;
    for (std::size_t start = 0;;) {
        const std::size_t comma = text.find(',', start);
        const std::string_view item = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
        values.push_back(static_cast<std::size_t>(parse_uint(item, what)));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return values;
}

std::optional<std::string_view> type_name(std::uint64_t type) {
    for (const auto& [name, value] : named_types)
        if (value == type) return name;
    return std::nullopt;
}

void add_pool_target(CLI::App& cmd, PoolTarget& target) {
    auto* name = cmd.add_option("POOL", target.name, "Base name of the pool")->type_name("");
    cmd.add_option("--serial", target.serial, "Base64 pool descriptor, instead of POOL")->type_name("B64")->excludes(name);
}

dragonmem::Pool open_pool(const PoolTarget& target) {
    if (!target.serial.empty()) return dragonmem::Pool::attach_base64(target.serial);
    if (target.name.empty()) throw UsageError("name the pool: POOL or --serial BASE64");
    return dragonmem::Pool::attach_local(target.name);
}

void add_allocation_target(CLI::App& cmd, AllocationTarget& target, bool many) {
    auto* pool = cmd.add_option("POOL", target.pool, "Base name of the pool")->type_name("");
    auto* ids = cmd.add_option("ID", target.ids, many ? "Allocation ids" : "Allocation id")->type_name("");
    cmd.add_option("--serial", target.serial, "Base64 allocation descriptor, instead of POOL ID")
        ->type_name("B64")
        ->excludes(pool)
        ->excludes(ids);
}

std::vector<dragonmem::Memory> open_allocations(const AllocationTarget& target) {
    std::vector<dragonmem::Memory> memories;
    if (!target.serial.empty()) {
        memories.push_back(dragonmem::Memory::attach_base64(target.serial));
        return memories;
    }
    if (target.pool.empty() || target.ids.empty())
        throw UsageError("name the allocation: POOL ID, or --serial BASE64");
    std::vector<std::uint64_t> ids;
    for (const std::string& text : target.ids) {
        const std::uint64_t id = parse_uint(text, "ID");
        // Acting twice on one allocation would fail half-way, after the first succeeded.
        if (std::find(ids.begin(), ids.end(), id) != ids.end())
            throw UsageError(fmt::format("ID: {} is given twice", id));
        ids.push_back(id);
    }
    const dragonmem::Pool pool = dragonmem::Pool::attach_local(target.pool);
    for (std::uint64_t id : ids) memories.push_back(pool.from_id(id));
    return memories;
}

AllocationIndex index_allocations(const dragonmem::Pool& pool) {
    AllocationIndex index;
    for (const auto& info : pool.allocations()) index.emplace(info.id, info);
    return index;
}

const dragonmem::AllocationInfo& lookup(const AllocationIndex& index, std::uint64_t id,
                                        const std::string& pool_name) {
    const auto found = index.find(id);
    if (found == index.end())
        throw dragonmem::Error(DRAGON_KEY_NOT_FOUND,
                               fmt::format("no live allocation with id {} in pool '{}'", id, pool_name));
    return found->second;
}

dragonmem::AllocationInfo info_of(const dragonmem::Memory& memory, const AllocationIndex& index,
                                  const std::string& pool_name) {
    dragonmem::AllocationInfo info;
    info.id = memory.id();
    info.type = memory.type();
    info.offset = memory.block_offset();
    info.size = memory.size();
    if (info.id != 0) info.block_bytes = lookup(index, info.id, pool_name).block_bytes;
    return info;
}

dragonmem::Memory view_of(const dragonmem::Memory& memory, std::size_t offset, std::optional<std::size_t> length,
                          std::string_view what) {
    const std::size_t size = memory.size();
    if (offset > size)
        throw dragonmem::Error(DRAGON_INVALID_ARGUMENT,
                               fmt::format("{}: --offset {} is past the end of allocation {} ({} B)", what, offset,
                                           memory.id(), size));
    if (length && *length > size - offset)
        throw dragonmem::Error(DRAGON_INVALID_ARGUMENT,
                               fmt::format("{}: --offset {} + --length {} is past the end of allocation {} ({} B)",
                                           what, offset, *length, memory.id(), size));
    // In range, so offset <= size fits a ptrdiff_t.
    return memory.clone(static_cast<std::ptrdiff_t>(offset), length);
}

std::optional<uid_t> shm_owner_uid(const std::string& shm_name) {
    const std::string_view bare = std::string_view(shm_name).substr(shm_name.starts_with('/') ? 1 : 0);
    struct stat info {};
    if (::stat(fmt::format("/dev/shm/{}", bare).c_str(), &info) != 0) return std::nullopt;
    return info.st_uid;
}

}  // namespace dragonmem::cli
