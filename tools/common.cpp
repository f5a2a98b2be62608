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

std::uint64_t parse_id(std::string_view text, std::string_view what) {
    std::string_view digits = text;
    if (digits.size() >= 2 && digits.front() == '"' && digits.back() == '"') digits = digits.substr(1, digits.size() - 2);
    if (!all_digits(digits))
        throw UsageError(fmt::format("{}: '{}' is not an allocation id (decimal, e.g. 42 or \"42\")", what, text));
    return parse_uint(digits, what);
}

std::string id_text(std::uint64_t id) { return std::to_string(id); }

std::size_t parse_size(std::string_view text, std::string_view what) {
    // NUMBER[.FRACTION][K|M|G|T][i][B], case-insensitive: 4096, 64K, 1MiB, 1.5G, 512B.
    // Binary multiples always (1K = 1024); a fraction must come to whole bytes.
    const auto bad = [&] {
        return UsageError(fmt::format("{}: '{}' is not a size (examples: 4096, 64K, 1MiB, 1.5G)", what, text));
    };
    std::string_view rest = text;
    if (!rest.empty() && (rest.back() == 'B' || rest.back() == 'b')) rest.remove_suffix(1);
    unsigned shift = 0;
    if (rest.size() >= 2 && (rest.back() == 'i' || rest.back() == 'I')) {
        rest.remove_suffix(1);
        if (rest.empty() || std::isdigit(static_cast<unsigned char>(rest.back()))) throw bad();  // "4i"
    }
    if (!rest.empty()) {
        switch (std::toupper(static_cast<unsigned char>(rest.back()))) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: break;
        }
        if (shift != 0) rest.remove_suffix(1);
    }
    const std::size_t dot = rest.find('.');
    const std::string_view whole = rest.substr(0, dot);
    const std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
    if (!all_digits(whole) || (dot != std::string_view::npos && !all_digits(fraction))) throw bad();
    const std::uint64_t count = parse_uint(whole, what);
    const std::uint64_t limit = std::numeric_limits<std::size_t>::max() >> shift;
    if (count > limit)
        throw UsageError(fmt::format("{}: '{}' does not fit in {} bits", what, text,
                                     std::numeric_limits<std::size_t>::digits));
    std::uint64_t bytes = count << shift;
    if (!fraction.empty()) {
        // DIGITS / 10^n * 2^shift must be whole. As 10^n = 2^n * 5^n: DIGITS must be a
        // multiple of 5^n, and the quotient q (< 2^n) times 2^(shift - n) whole; no
        // intermediate passes 2^shift, so nothing overflows.
        const std::size_t n = fraction.size();
        if (n > 12) throw bad();
        const std::uint64_t digits = parse_uint(fraction, what);
        std::uint64_t pow5 = 1;
        for (std::size_t i = 0; i < n; ++i) pow5 *= 5;
        const auto not_whole = [&] {
            return UsageError(fmt::format("{}: '{}' is not a whole number of bytes", what, text));
        };
        if (digits % pow5 != 0) throw not_whole();
        const std::uint64_t q = digits / pow5;
        std::uint64_t add = 0;
        if (shift >= n) {
            add = q << (shift - n);
        } else {
            if (q % (std::uint64_t{1} << (n - shift)) != 0) throw not_whole();
            add = q >> (n - shift);
        }
        if (bytes > std::numeric_limits<std::size_t>::max() - add)
            throw UsageError(fmt::format("{}: '{}' does not fit in {} bits", what, text,
                                         std::numeric_limits<std::size_t>::digits));
        bytes += add;
    }
    return static_cast<std::size_t>(bytes);
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

timespec parse_timeout(std::string_view text, std::string_view what) {
    const double seconds = parse_seconds(text, what);
    // Beyond what time_t holds: as good as forever (the library saturates its deadline).
    if (seconds >= 9.0e18) return timespec{std::numeric_limits<time_t>::max(), 0};
    const auto whole = static_cast<time_t>(seconds);
    return timespec{whole, static_cast<long>((seconds - static_cast<double>(whole)) * 1e9)};
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
        const std::uint64_t id = parse_id(text, "ID");
        // Acting twice on one allocation would fail half-way, after the first succeeded.
        if (std::find(ids.begin(), ids.end(), id) != ids.end())
            throw UsageError(fmt::format("ID: {} is given twice", id));
        ids.push_back(id);
    }
    const dragonmem::Pool pool = dragonmem::Pool::attach_local(target.pool);
    for (std::uint64_t id : ids) memories.push_back(pool.from_id(id));
    return memories;
}

dragonmem::AllocationInfo info_of(const dragonmem::Memory& memory, const dragonmem::Pool& pool) {
    dragonmem::AllocationInfo info;
    info.id = memory.id();
    info.type = memory.type();
    info.offset = memory.block_offset();
    info.size = memory.size();
    info.block_bytes = info.id == 0 ? 0 : pool.block_bytes_for(info.size);
    return info;
}

std::optional<std::string> serialized_if(bool wanted, const dragonmem::Memory& memory) {
    if (!wanted) return std::nullopt;
    return printed_descriptor(memory);
}

void add_listing_options(CLI::App& cmd, ListingOptions& options) {
    cmd.add_flag("--serialized", options.serialized,
                 "Give each allocation its base64 descriptor (\"serialized\"; most of the bytes of a long list)");
    cmd.add_flag("--jsonl", options.jsonl, "One JSON object per line (JSON Lines) instead of one document");
}

void stream_allocations(JsonStream& out, const dragonmem::Pool& pool, std::optional<std::uint64_t> type,
                        bool serialized) {
    // A page is a few hundred KiB: the lock is held for microseconds, memory stays flat.
    constexpr std::size_t page_size = 4096;
    std::vector<dragonmem::AllocationInfo> page;
    std::uint64_t cursor = 0;
    for (bool more = true; more;) {
        more = pool.allocations_page(cursor, page_size, page, type);
        for (const dragonmem::AllocationInfo& info : page) {
            if (!serialized) {
                out.allocation(info, std::nullopt);
                continue;
            }
            std::string descriptor;
            try {
                descriptor = printed_descriptor(pool.from_id(info.id));
            } catch (const dragonmem::Error& e) {
                if (e.code() == DRAGON_KEY_NOT_FOUND) continue;  // freed since the page was read
                throw;
            }
            out.allocation(info, descriptor);
        }
    }
}

std::span<const std::byte> host_bytes(const dragonmem::Memory& memory, std::vector<std::byte>& copy) {
    if (!memory.on_device()) return memory.bytes();
    copy.resize(memory.size());
    memory.read(0, copy);
    return copy;
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

std::vector<std::string> sorted_pool_names() {
    std::vector<std::string> names = dragonmem::Pool::list_local();
    std::sort(names.begin(), names.end());
    return names;
}

std::optional<uid_t> shm_owner_uid(const std::string& shm_name) {
    const std::string_view bare = std::string_view(shm_name).substr(shm_name.starts_with('/') ? 1 : 0);
    struct stat info {};
    if (::stat(fmt::format("/dev/shm/{}", bare).c_str(), &info) != 0) return std::nullopt;
    return info.st_uid;
}

json space_figures(const dragonmem::Pool& pool, const dragonmem::PoolAttributes& attributes) {
    std::uint64_t waste = 0;
    std::vector<AllocationInfo> page;
    std::uint64_t cursor = 0;
    for (bool more = true; more;) {
        more = pool.allocations_page(cursor, 4096, page);
        for (const AllocationInfo& info : page) waste += info.block_bytes - info.size;
    }
    return json{{"internal_waste", waste},
                {"largest_free_block", attributes.largest_free_block},
                {"largest_request", attributes.largest_request}};
}

}  // namespace dragonmem::cli
