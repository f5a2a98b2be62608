// The JSON shapes the dragonmem command prints, and the writers for stdout and stderr.
// Keys are stable snake_case; dragonmem(1) documents each one.
#include "output.hpp"

#include "common.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace dragonmem::cli {
namespace {

const char* lock_type_name(dragonLockKind_t kind) {
    switch (kind) {
    case DRAGON_LOCK_FIFO: return "fifo";
    case DRAGON_LOCK_FIFO_LITE: return "fifo_lite";
    case DRAGON_LOCK_GREEDY: return "greedy";
    }
    return "unknown";
}

const char* mem_type_name(dragonMemoryPoolType_t type) {
    switch (type) {
    case DRAGON_MEMORY_TYPE_SHM: return "shm";
    case DRAGON_MEMORY_TYPE_HUGEPAGE: return "hugepage";
    case DRAGON_MEMORY_TYPE_GPU: return "gpu";
    case DRAGON_MEMORY_TYPE_FILE: return "file";
    case DRAGON_MEMORY_TYPE_PRIVATE: return "private";
    }
    return "unknown";
}

const char* growth_type_name(dragonMemoryPoolGrowthType_t growth) {
    switch (growth) {
    case DRAGON_MEMORY_GROWTH_NONE: return "none";
    case DRAGON_MEMORY_GROWTH_UNLIMITED: return "unlimited";
    case DRAGON_MEMORY_GROWTH_CAPPED: return "capped";
    }
    return "unknown";
}

// stdout carries data a script depends on: a short write must not pass silently.
void write_stdout(const void* data, std::size_t bytes) {
    if (bytes != 0 && std::fwrite(data, 1, bytes, stdout) != bytes)
        throw dragonmem::Error(DRAGON_MEMORY_ERRNO, fmt::format("writing {} B to stdout failed: {}", bytes,
                                                                std::strerror(errno)));
}

}  // namespace

namespace {
bool secrets_withheld = false;
}  // namespace

void withhold_secrets() { secrets_withheld = true; }

std::string printed_descriptor(const dragonmem::Pool& pool) {
    return secrets_withheld ? pool.serialize_base64_without_secret() : pool.serialize_base64();
}

std::string printed_descriptor(const dragonmem::Memory& memory) {
    return secrets_withheld ? memory.serialize_base64_without_secret() : memory.serialize_base64();
}

json descriptor_json(const dragonmem::Pool& pool) {
    return json{{"name", pool.name()},     {"m_uid", pool.m_uid()},   {"hostid", hex_u64(pool.hostid())},
                {"rt_uid", pool.rt_uid()}, {"local", pool.is_local()}, {"serialized", printed_descriptor(pool)}};
}

std::string utc_text(std::uint64_t ns) {
    const auto seconds = static_cast<time_t>(ns / 1'000'000'000u);
    std::tm parts{};
    ::gmtime_r(&seconds, &parts);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", parts.tm_year + 1900, parts.tm_mon + 1,
                       parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, ns % 1'000'000'000u);
}

json pool_json(const dragonmem::Pool& pool) {
    json j = descriptor_json(pool);
    // A remote descriptor cannot reach the memory: what the descriptor says is all.
    if (!pool.is_local()) return j;
    const dragonmem::PoolAttributes a = pool.attributes();
    const std::optional<uid_t> owner = shm_owner_uid(a.shm_name);
    j.update(json{
        {"shm_name", a.shm_name},
        {"owner_uid", owner ? json(*owner) : json(nullptr)},
        {"mode", fmt::format("{:04o}", a.mode)},
        {"size", a.heap_bytes},
        {"total_bytes", a.total_bytes},
        {"free_bytes", a.free_bytes},
        {"used_bytes", a.heap_bytes - a.free_bytes},
        {"utilization", a.utilization_pct},
        {"min_block", a.min_block_bytes},
        {"max_block", a.max_block_bytes},
        {"max_allocations", a.max_allocations},
        {"live_allocations", a.live_allocations},
        {"max_live_allocations", a.max_live_allocations},
        {"manifest_bytes", a.manifest_bytes},
        {"heap_meta_bytes", a.heap_meta_bytes},
        {"lock_type", lock_type_name(a.lock_type)},
        {"mem_type", mem_type_name(a.mem_type)},
        {"growth_type", growth_type_name(a.growth_type)},
        {"segment_size", a.segment_size},
        {"max_size", a.max_size},
        {"waiters", a.waiters},
        {"recoveries", a.recoveries},
        {"numa_node", a.numa_node},
        {"gpu_device", a.gpu_device_id},
        {"ipc_handle_bytes", a.ipc_handle_bytes},
        {"process_local", a.process_local},
        {"owner_pid", a.process_local ? json(a.owner_pid) : json(nullptr)},
        {"owner_alive", a.process_local ? json(a.owner_alive) : json(nullptr)},
    });
    // Who is alive. This command has the pool mapped itself while it looks: it is left
    // out of `attached` (the library's `orphaned` already discounts the caller).
    const auto me = static_cast<std::uint32_t>(::getpid());
    json pids = json::array();
    for (std::uint32_t pid : a.attached_pids)
        if (pid != me) pids.push_back(pid);
    j.update(json{
        {"creator", json{{"pid", a.creator_pid},
                         {"uid", a.creator_uid},
                         {"start_ticks", a.creator_start_ticks},
                         {"created", utc_text(a.created_ns)}}},
        {"creator_alive", a.creator_alive},
        {"attached", json{{"count", pids.size() + a.untracked_attached},
                          {"pids", pids},
                          {"untracked", a.untracked_attached},
                          {"dead", a.dead_attached}}},
        {"orphaned", a.orphaned},
    });
    return j;
}

json allocation_json(const dragonmem::AllocationInfo& info, const std::optional<std::string>& serialized) {
    const auto name = type_name(info.type);
    json j{{"id", id_text(info.id)},
           {"type", info.type},
           {"type_name", name ? json(*name) : json(nullptr)},
           {"offset", info.offset},
           {"size", info.size},
           {"block_size", info.block_bytes}};
    if (serialized) j["serialized"] = *serialized;
    return j;
}

json allocations_json(const dragonmem::Pool& pool, std::optional<std::uint64_t> type) {
    json list = json::array();
    for (const dragonmem::AllocationInfo& info : pool.allocations(type))
        list.push_back(allocation_json(info, printed_descriptor(pool.from_id(info.id))));
    return list;
}

json type_filter_json(std::optional<std::uint64_t> type) {
    if (!type) return json{{"type", nullptr}, {"type_name", nullptr}};
    const auto name = type_name(*type);
    return json{{"type", *type}, {"type_name", name ? json(*name) : json(nullptr)}};
}

json error_json(std::string_view code_name, int rc, std::string_view message, int errno_value) {
    // strerrorname_np (glibc 2.32): "ENOENT"; null for a number it does not know.
    const char* errno_name = errno_value == 0 ? nullptr : ::strerrorname_np(errno_value);
    return json{{"code", code_name},
                {"rc", rc},
                {"message", message},
                {"errno", errno_value == 0 ? json(nullptr) : json(errno_value)},
                {"errno_name", errno_name == nullptr ? json(nullptr) : json(errno_name)}};
}

json error_json(const dragonmem::Error& e) { return error_json(e.code_name(), e.code(), e.what(), errno_of(e)); }

// Free blocks by power of two: the entry of block_size counts the free blocks of at least
// block_size and less than twice that (free blocks are whole 64 B granules of any count).
json free_blocks_json(const dragonmem::Pool& pool) {
    json free_blocks = json::array();
    for (const FreeBlockCount& entry : pool.free_blocks())
        free_blocks.push_back(json{{"block_size", entry.block_bytes}, {"count", entry.count}});
    return free_blocks;
}

std::string hex_u64(std::uint64_t value) { return fmt::format("0x{:016x}", value); }

std::string hex_bytes(std::span<const std::byte> bytes) {
    std::string text;
    text.reserve(bytes.size() * 2);
    for (std::byte b : bytes) fmt::format_to(std::back_inserter(text), "{:02x}", static_cast<unsigned>(b));
    return text;
}

void write_text(std::string_view text) { write_stdout(text.data(), text.size()); }

void flush_stdout() {
    if (std::fflush(stdout) != 0)
        throw dragonmem::Error(DRAGON_MEMORY_ERRNO, fmt::format("flushing stdout failed: {}", std::strerror(errno)));
}

void print_document(const json& document, bool pretty) {
    // Replace invalid UTF-8 (a pool name is checked by the library, but a message may
    // quote user input) instead of throwing half-way through the output.
    const std::string text = document.dump(pretty ? 2 : -1, ' ', false, json::error_handler_t::replace) + "\n";
    write_stdout(text.data(), text.size());
    if (std::fflush(stdout) != 0)
        throw dragonmem::Error(DRAGON_MEMORY_ERRNO, fmt::format("flushing stdout failed: {}", std::strerror(errno)));
}

void print_error(std::string_view code_name, int rc, std::string_view message, bool pretty, int errno_value) {
    const json document{{"error", error_json(code_name, rc, message, errno_value)}};
    const std::string text = document.dump(pretty ? 2 : -1, ' ', false, json::error_handler_t::replace) + "\n";
    // Nothing sensible is left to do if stderr itself fails.
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
}

void write_raw(std::span<const std::byte> bytes) {
    write_stdout(bytes.data(), bytes.size());
    if (std::fflush(stdout) != 0)
        throw dragonmem::Error(DRAGON_MEMORY_ERRNO, fmt::format("flushing stdout failed: {}", std::strerror(errno)));
}

}  // namespace dragonmem::cli
