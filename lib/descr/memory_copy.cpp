// Operations on allocations' bytes (memory_copy.hpp). They read and write the pool's heap
// only through a view checked against the manifest record (mem_pointer), and check every
// size before the first byte moves, so a failure leaves every pool as it was.
#include "descr/memory_copy.hpp"

#include "descr/mapped_pool.hpp"
#include "descr/operations.hpp"
#include "os/cuda_device.hpp"
#include "os/error.hpp"
#include "pool/pool_mapping.hpp"

#include <cstring>
#include <string>
#include <vector>

namespace dragonmem::detail {

namespace {

// The local bytes of a view: `ptr` is nullptr for a zero-byte view; `where` says whether
// they are host memory or a GPU pool's device memory. A failure's message is prefixed by
// `op` (mem_pointer names itself get_pointer).
dragonError_t view_bytes(const MemoryRef& mem, const char* op, std::uint8_t*& ptr, CopyEnd& where) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = mem_require_local(mem, op, mapping)) return rc;
    ptr = nullptr;
    where = CopyEnd{mapping->on_gpu() ? mapping->gpu_device() : -1};
    if (mem.view_bytes == 0) return DRAGON_SUCCESS;
    void* raw = nullptr;
    if (dragonError_t rc = mem_pointer(mem, raw)) {
        const std::string why = last_error_message();
        return failf(rc, "{}: {}", op, why);
    }
    ptr = static_cast<std::uint8_t*>(raw);
    return DRAGON_SUCCESS;
}

// Which pool instance a descriptor's allocation is in (its nonce), 0 when unknown.
std::uint64_t instance_of(const MemoryRef& mem) noexcept {
    if (mem.mapping != nullptr && mem.mapping->epoch() == mem.mapping_epoch) return mem.mapping->identity()->nonce;
    const PoolIdentity* identity = identity_of(mem.pool);
    return identity != nullptr ? identity->nonce : 0;
}

// MurmurHash3's 32-bit variant (x86_32), written from its published description, with
// Dragon's seed: dragon_memory_hash returns the same value here as in Dragon.
std::uint32_t murmur3_32(const std::uint8_t* data, std::size_t len, std::uint32_t seed) noexcept {
    constexpr std::uint32_t c1 = 0xcc9e2d51u;
    constexpr std::uint32_t c2 = 0x1b873593u;
    auto rotl = [](std::uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
    auto mix = [&](std::uint32_t k) { return rotl(k * c1, 15) * c2; };
    std::uint32_t h = seed;
    const std::size_t blocks = len / 4;
    for (std::size_t i = 0; i < blocks; ++i) {
        std::uint32_t k;
        std::memcpy(&k, data + 4 * i, sizeof k);  // little-endian words, as Dragon on x86/arm64
        h ^= mix(k);
        h = rotl(h, 13) * 5 + 0xe6546b64u;
    }
    std::uint32_t tail = 0;
    for (std::size_t i = len & 3; i > 0; --i) tail = (tail << 8) | data[blocks * 4 + i - 1];
    h ^= mix(tail);  // an empty tail mixes as 0, which changes nothing
    h ^= static_cast<std::uint32_t>(len);
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

constexpr std::uint32_t k_dragon_hash_seed = 1164799;

// A view's bytes readable on the host: the view itself, or for a GPU pool a host copy
// of it kept in `staging`.
dragonError_t host_readable(const MemoryRef& mem, const char* op, const std::uint8_t*& out,
                            std::vector<std::uint8_t>& staging) {
    std::uint8_t* ptr = nullptr;
    CopyEnd where;
    if (dragonError_t rc = view_bytes(mem, op, ptr, where)) return rc;
    out = ptr;
    if (!where.on_device() || mem.view_bytes == 0) return DRAGON_SUCCESS;
    staging.resize(mem.view_bytes);
    if (dragonError_t rc = cuda_copy(staging.data(), CopyEnd{}, ptr, where, mem.view_bytes, op)) return rc;
    out = staging.data();
    return DRAGON_SUCCESS;
}

// `offset` and `bytes` lie inside the view.
dragonError_t check_range(const MemoryRef& mem, const char* op, std::size_t offset, std::size_t bytes) {
    if (offset > mem.view_bytes || bytes > mem.view_bytes - offset)
        return failf(DRAGON_INVALID_ARGUMENT, "{}: {} B at offset {} do not fit allocation id {}'s {} B", op, bytes,
                     offset, mem.id, mem.view_bytes);
    return DRAGON_SUCCESS;
}

}  // namespace

dragonError_t mem_copy(const MemoryRef& from, const MemoryRef& to, std::size_t bytes) {
    std::uint8_t* src = nullptr;
    std::uint8_t* dst = nullptr;
    CopyEnd src_end, dst_end;
    if (dragonError_t rc = view_bytes(from, "copy (source)", src, src_end)) return rc;
    if (dragonError_t rc = view_bytes(to, "copy (destination)", dst, dst_end)) return rc;
    if (bytes > from.view_bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "copy: {} B asked, but the source (allocation id {}) holds {} B", bytes,
                     from.id, from.view_bytes);
    if (bytes > to.view_bytes)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "copy: {} B do not fit the destination (allocation id {}) of {} B", bytes, to.id, to.view_bytes);
    if (bytes == 0) return DRAGON_SUCCESS;
    if (src_end.on_device() || dst_end.on_device()) return cuda_copy(dst, dst_end, src, src_end, bytes, "copy");
    std::memmove(dst, src, bytes);
    return DRAGON_SUCCESS;
}

dragonError_t mem_copy_to_pool(MemoryRef& out, const MemoryRef& from, const PoolRef& pool, const timespec* timeout) {
    std::uint8_t* src = nullptr;
    CopyEnd src_end;
    if (dragonError_t rc = view_bytes(from, "copy_to_pool (source)", src, src_end)) return rc;
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, "copy_to_pool (target pool)", mapping)) return rc;
    MemoryRef made;
    if (dragonError_t rc = mem_alloc(made, pool, from.view_bytes, from.type, true, timeout)) {
        const std::string why = last_error_message();
        return failf(rc, "copy_to_pool: no {} B allocation in pool '{}' for the copy: {}", from.view_bytes,
                     mapping->identity()->name, why);
    }
    if (dragonError_t rc = mem_copy(from, made, from.view_bytes)) {
        const std::string why = last_error_message();
        (void)mem_free(made);  // nothing allocated on failure
        return failf(rc, "copy_to_pool: {}", why);
    }
    out = std::move(made);
    return DRAGON_SUCCESS;
}

dragonError_t mem_clear(const MemoryRef& mem, std::size_t start, std::size_t stop) {
    std::uint8_t* ptr = nullptr;
    CopyEnd where;
    if (dragonError_t rc = view_bytes(mem, "clear", ptr, where)) return rc;
    if (start > mem.view_bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "clear: start {} is beyond the {} B of allocation id {}", start,
                     mem.view_bytes, mem.id);
    if (stop < start)
        return failf(DRAGON_INVALID_ARGUMENT, "clear: stop {} is before start {} (allocation id {})", stop, start,
                     mem.id);
    const std::size_t end = stop < mem.view_bytes ? stop : mem.view_bytes;
    if (end <= start) return DRAGON_SUCCESS;
    if (where.on_device()) return cuda_zero(where.device, ptr + start, end - start, "clear");
    std::memset(ptr + start, 0, end - start);
    return DRAGON_SUCCESS;
}

dragonError_t mem_hash(const MemoryRef& mem, std::uint64_t& out) {
    const std::uint8_t* ptr = nullptr;
    std::vector<std::uint8_t> staging;
    if (dragonError_t rc = host_readable(mem, "hash", ptr, staging)) return rc;
    if (mem.view_bytes == 0)
        return failf(DRAGON_INVALID_ARGUMENT, "hash: allocation id {} has zero bytes: there is nothing to hash",
                     mem.id);
    out = murmur3_32(ptr, mem.view_bytes, k_dragon_hash_seed);
    return DRAGON_SUCCESS;
}

dragonError_t mem_equal(const MemoryRef& a, const MemoryRef& b, bool& out) {
    const std::uint8_t* pa = nullptr;
    const std::uint8_t* pb = nullptr;
    std::vector<std::uint8_t> staging_a, staging_b;
    if (dragonError_t rc = host_readable(a, "equal (first)", pa, staging_a)) return rc;
    if (dragonError_t rc = host_readable(b, "equal (second)", pb, staging_b)) return rc;
    out = a.view_bytes == b.view_bytes && (a.view_bytes == 0 || std::memcmp(pa, pb, a.view_bytes) == 0);
    return DRAGON_SUCCESS;
}

dragonError_t mem_is(const MemoryRef& a, const MemoryRef& b, bool& out) {
    PoolMapping* unused = nullptr;
    if (dragonError_t rc = mem_require_local(a, "is (first)", unused)) return rc;
    if (dragonError_t rc = mem_require_local(b, "is (second)", unused)) return rc;
    out = instance_of(a) == instance_of(b) && a.id == b.id && a.view_offset == b.view_offset &&
          a.view_bytes == b.view_bytes;
    return DRAGON_SUCCESS;
}

dragonError_t mem_read(const MemoryRef& mem, std::size_t offset, void* to, std::size_t bytes) {
    std::uint8_t* ptr = nullptr;
    CopyEnd where;
    if (dragonError_t rc = view_bytes(mem, "read", ptr, where)) return rc;
    if (dragonError_t rc = check_range(mem, "read", offset, bytes)) return rc;
    if (bytes == 0) return DRAGON_SUCCESS;
    if (where.on_device()) return cuda_copy(to, CopyEnd{}, ptr + offset, where, bytes, "read");
    std::memcpy(to, ptr + offset, bytes);
    return DRAGON_SUCCESS;
}

dragonError_t mem_write(const MemoryRef& mem, std::size_t offset, const void* from, std::size_t bytes) {
    std::uint8_t* ptr = nullptr;
    CopyEnd where;
    if (dragonError_t rc = view_bytes(mem, "write", ptr, where)) return rc;
    if (dragonError_t rc = check_range(mem, "write", offset, bytes)) return rc;
    if (bytes == 0) return DRAGON_SUCCESS;
    if (where.on_device()) return cuda_copy(ptr + offset, where, from, CopyEnd{}, bytes, "write");
    std::memcpy(ptr + offset, from, bytes);
    return DRAGON_SUCCESS;
}

dragonError_t mem_on_device(const MemoryRef& mem, bool& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = mem_require_local(mem, "on_device", mapping)) return rc;
    out = mapping->on_gpu();
    return DRAGON_SUCCESS;
}

dragonError_t mem_ptr_info(const MemoryRef& mem, void*& ptr, std::size_t& bytes) {
    std::uint8_t* p = nullptr;
    CopyEnd where;
    if (dragonError_t rc = view_bytes(mem, "get_ptr_info", p, where)) return rc;
    ptr = p;
    bytes = mem.view_bytes;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
