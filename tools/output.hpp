// Everything the dragonmem command prints: the JSON shape of pools, allocations and
// errors, and the writers for stdout (one document, or raw bytes) and stderr.
#pragma once

#include <dragonmem/dragonmem.hpp>

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

// A local pool: every attribute plus live figures and its serialized descriptor.
json pool_json(const dragonmem::Pool& pool);
// What any descriptor knows, local or not: name, m_uid, hostid, rt_uid, local.
json descriptor_json(const dragonmem::Pool& pool);
// One allocation: id, type, type_name, offset, size, block_size, serialized.
json allocation_json(const dragonmem::AllocationInfo& info, const std::string& serialized);
// The live allocations of a local pool (of one type, when given), in manifest order.
json allocations_json(const dragonmem::Pool& pool, std::optional<std::uint64_t> type = std::nullopt);
// An error object {"code", "rc", "message"}, as printed under "error".
json error_json(std::string_view code_name, int rc, std::string_view message);
// 64-bit host ids as "0x%016x": jq and JavaScript read JSON numbers as doubles and would
// round them, and a host id is only ever compared, never computed with.
std::string hex_u64(std::uint64_t value);
std::string hex_bytes(std::span<const std::byte> bytes);

// One document on stdout (compact, or indented by 2 when pretty), newline-terminated.
void print_document(const json& document, bool pretty);
// {"error": {...}} on stderr.
void print_error(std::string_view code_name, int rc, std::string_view message, bool pretty);
// Raw bytes on stdout: the one exception to the JSON rule (read, dump --raw).
void write_raw(std::span<const std::byte> bytes);

}  // namespace dragonmem::cli
