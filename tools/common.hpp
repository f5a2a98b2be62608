// Shared helpers of the dragonmem command: the one parser for each kind of argument
// (sizes, numbers, types, modes), the usage-error type, and how a command names its pool.
#pragma once

#include "json_stream.hpp"

#include <dragonmem/dragonmem.hpp>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace dragonmem::cli {

// Bad usage the command line itself is to blame for: exit 2, DRAGON_INVALID_ARGUMENT.
// Failures of the library (and of the operation the user asked for) are dragonmem::Error.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "4096", "64K", "1M", "2G", "1T" (binary multiples, case-insensitive). `what` names the
// option in the error message.
std::size_t parse_size(std::string_view text, std::string_view what);
// A plain decimal unsigned integer (counts, uids).
std::uint64_t parse_uint(std::string_view text, std::string_view what);
// An allocation id: decimal, bare (`123`) or as a JSON string (`"123"`, what `jq .id`
// prints without -r). Ids are printed as strings (id_text) because they pass 2^53, where
// jq and JavaScript round JSON numbers.
std::uint64_t parse_id(std::string_view text, std::string_view what);
std::string id_text(std::uint64_t id);
// Non-negative seconds, fractions allowed ("0.25").
double parse_seconds(std::string_view text, std::string_view what);
// The same as a relative timespec (remote reads and writes take one).
timespec parse_timeout(std::string_view text, std::string_view what);
// Permission bits in octal ("0600", "644").
unsigned parse_mode(std::string_view text, std::string_view what);
// data|channel|channel_buffer|bootstrap or any unsigned integer.
std::uint64_t parse_type(std::string_view text, std::string_view what);
// "N,N,..." of unsigned integers.
std::vector<std::size_t> parse_uint_list(std::string_view text, std::string_view what);
// The name of a named allocation type, nullopt for other numbers.
std::optional<std::string_view> type_name(std::uint64_t type);

// Which pool a command works on: its base name (positional POOL) or, instead, the base64
// of a serialized pool descriptor (--serial). Exactly one of the two.
struct PoolTarget {
    std::string name;
    std::string serial;
};
// Adds the positional POOL and --serial to `cmd`.
void add_pool_target(CLI::App& cmd, PoolTarget& target);
dragonmem::Pool open_pool(const PoolTarget& target);

// Which allocation(s) a command works on: POOL and decimal ids, or, instead, the base64 of
// a serialized allocation descriptor (--serial), which names its pool itself.
struct AllocationTarget {
    std::string pool;
    std::vector<std::string> ids;
    std::string serial;
};
// Adds the positionals POOL and ID (`many`: ID...) and --serial to `cmd`.
void add_allocation_target(CLI::App& cmd, AllocationTarget& target, bool many);
// Every allocation named, all checked live by the library before the caller acts on any.
std::vector<dragonmem::Memory> open_allocations(const AllocationTarget& target);

// The manifest record of a whole allocation's handle: id, type, offset and size from the
// handle, the block size from the pool's rule. The zero-byte allocation (id 0) has no block.
dragonmem::AllocationInfo info_of(const dragonmem::Memory& memory, const dragonmem::Pool& pool);
// Its serialized descriptor when `wanted` (--serialized), else nullopt.
std::optional<std::string> serialized_if(bool wanted, const dragonmem::Memory& memory);

// --serialized and --jsonl, on the commands that print lists of allocations.
struct ListingOptions {
    bool serialized = false;
    bool jsonl = false;
    std::optional<Layout> layout() const { return jsonl ? std::optional(Layout::lines) : std::nullopt; }
};
void add_listing_options(CLI::App& cmd, ListingOptions& options);

// Every live allocation of `pool` (of `type` when given), page by page, never the whole
// list at once; with `serialized`, each with its descriptor (an allocation freed meanwhile
// is left out).
void stream_allocations(JsonStream& out, const dragonmem::Pool& pool, std::optional<std::uint64_t> type,
                        bool serialized);

// The part of `memory` from `offset` on (`length` bytes, or to the end), with the range
// checked here in unsigned arithmetic: the library's clone takes a signed offset, and an
// offset of 2^64-1 must be reported as such, not as -1. `what` names the command.
dragonmem::Memory view_of(const dragonmem::Memory& memory, std::size_t offset, std::optional<std::size_t> length,
                          std::string_view what);

// A local view's bytes, readable here: the view itself in a host pool (no copy), or a
// copy read through the API into `copy` for a GPU pool (its bytes are device memory).
std::span<const std::byte> host_bytes(const dragonmem::Memory& memory, std::vector<std::byte>& copy);

// This host's pools (Pool::list_local), by name: every listing prints them in one order.
std::vector<std::string> sorted_pool_names();

// The uid owning /dev/shm/<shm_name>, nullopt when it cannot be stat'ed.
// The figures of a pool's space that a listing yields: internal waste (block bytes minus
// requested bytes, summed over the live allocations; one paged pass over the manifest)
// and, from its attributes, the largest free block and the largest request that fits now.
json space_figures(const dragonmem::Pool& pool, const dragonmem::PoolAttributes& attributes);

std::optional<uid_t> shm_owner_uid(const std::string& shm_name);

}  // namespace dragonmem::cli
