// Everything the dragonmem command prints: the JSON shape of pools, allocations and
// errors, and the writers for stdout (one document, or raw bytes) and stderr.
#pragma once

#include <dragonmem/dragonmem.hpp>
#include <dragonmem/system_error.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace dragonmem::cli {

// Ordered: keys print in the order written (name first), easier on human eyes than sorted.
using json = nlohmann::ordered_json;

// The pool object, the same in every command (docs/schema/pool.json): what any descriptor
// knows (name, m_uid, hostid, rt_uid, local, serialized) and, for a local pool, every
// attribute and live figure.
json pool_json(const dragonmem::Pool& pool);
json descriptor_json(const dragonmem::Pool& pool);
// The listing commands (ls, dump, info, stat) call it first: the descriptors they print
// are then without the pool's secret (format 1: they attach on this node, grant nothing
// off it). The commands that hand descriptors out (create, alloc, serialize, copy)
// print them whole: a descriptor with its secret is a capability (README.md, "Off-node
// data").
void withhold_secrets();
// A pool's or an allocation's base64 descriptor as this command prints it.
std::string printed_descriptor(const dragonmem::Pool& pool);
std::string printed_descriptor(const dragonmem::Memory& memory);
// The allocation object (docs/schema/allocation.json): id, type, type_name, offset, size,
// block_size, and serialized when given.
json allocation_json(const dragonmem::AllocationInfo& info, const std::optional<std::string>& serialized);
// The live allocations of a local pool (of one type, when given), in manifest order.
json allocations_json(const dragonmem::Pool& pool, std::optional<std::uint64_t> type = std::nullopt);
// {"type": N|null, "type_name": NAME|null}: a listing's type filter, named as in an allocation.
json type_filter_json(std::optional<std::uint64_t> type);
// An error object {"code", "rc", "message", "errno", "errno_name"}, as printed under
// "error"; errno and errno_name are null unless a system call failed (ENOENT: no such
// pool; EEXIST: name in use; both DRAGON_MEMORY_ERRNO).
json error_json(std::string_view code_name, int rc, std::string_view message, int errno_value = 0);
json error_json(const dragonmem::Error& e);
// [{"block_size", "count"}...], smallest block first.
json free_blocks_json(const dragonmem::Pool& pool);
// 64-bit host ids as "0x%016x": jq and JavaScript read JSON numbers as doubles and would
// round them, and a host id is only ever compared, never computed with.
std::string hex_u64(std::uint64_t value);
// ns since the epoch as ISO 8601 UTC, "2026-11-27T07:39:44.123456789Z" (a JSON number
// would lose the nanoseconds past 2^53 in jq).
std::string utc_text(std::uint64_t ns);
std::string hex_bytes(std::span<const std::byte> bytes);

// One document on stdout (compact, or indented by 2 when pretty), newline-terminated.
void print_document(const json& document, bool pretty);
// {"error": {...}} on stderr.
void print_error(std::string_view code_name, int rc, std::string_view message, bool pretty, int errno_value = 0);
// Text on stdout, checked: a short write throws dragonmem::Error (MEMORY_ERRNO).
void write_text(std::string_view text);
void flush_stdout();
// Raw bytes on stdout: the one exception to the JSON rule (read, dump --raw).
void write_raw(std::span<const std::byte> bytes);

}  // namespace dragonmem::cli
