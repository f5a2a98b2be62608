// Allocation descriptor operations shared by the C and C++ APIs. A descriptor is a view
// [view_offset, view_offset + view_bytes) of one allocation; views share the record,
// so freeing through any of them frees the allocation.
#include "descr/agent_address.hpp"
#include "descr/alloc_fast_path.hpp"
#include "descr/base64.hpp"
#include "descr/descriptor_codec.hpp"
#include "os/error.hpp"
#include "descr/mapped_pool.hpp"
#include "descr/operations.hpp"

namespace dragonmem::detail {

dragonError_t mem_require_valid(const MemoryRef& mem, const char* op) {
    if (!mem.valid())
        return failf(DRAGON_MAP_KEY_NOT_FOUND, "{}: the memory descriptor is not initialised (or was freed or detached)",
                     op);
    return DRAGON_SUCCESS;
}

namespace {

bool borrowed_mapping_alive(const MemoryRef& mem) noexcept {
    return mem.mapping != nullptr && mem.mapping->epoch() == mem.mapping_epoch;
}

dragonError_t explain_gone(const char* op) {
    return failf(DRAGON_MAP_KEY_NOT_FOUND,
                 "{}: the pool of this memory descriptor is no longer attached in this process (every pool "
                 "descriptor of it was detached or destroyed)",
                 op);
}

// Why get_pointer found no block (off the fast path: reads the record again).
dragonError_t explain_no_pointer(const PoolMapping& mapping, const MemoryRef& mem) {
    const std::string& pool = mapping.identity()->name;
    Manifest::LiveFields rec;
    if (!mapping.read_live(mem.id, rec))
        return failf(DRAGON_KEY_NOT_FOUND, "get_pointer: allocation id {} in pool '{}' is no longer live (freed)",
                     mem.id, pool);
    if (rec.requested_bytes != mem.requested_bytes)
        return failf(DRAGON_KEY_NOT_FOUND,
                     "get_pointer: this descriptor of allocation id {} says {} B, but pool '{}' records {} B for that "
                     "id (a forged descriptor, attached before its id was issued?)",
                     mem.id, mem.requested_bytes, pool, rec.requested_bytes);
    return failf(DRAGON_INVALID_ARGUMENT,
                 "get_pointer: the manifest record of allocation id {} in pool '{}' is damaged: offset {} and {} B "
                 "are no block of its {} B heap (dragonmem check)",
                 mem.id, pool, rec.offset, rec.requested_bytes, mapping.heap_bytes());
}

// A checksum proves integrity, not honesty. A descriptor of a pool mapped here must be
// of this pool instance, name an id the pool has issued, and for a live id name exactly
// the block its manifest record holds. An id issued and freed since is accepted: ids
// are never reissued, so get_pointer, free and exists find it gone forever.
dragonError_t verify_local_fields(const PoolMapping& mapping, const DecodedMemory& fields) {
    const PoolIdentity& pool = *mapping.identity();
    if (pool.nonce != fields.pool.nonce || pool.heap_bytes != fields.pool.heap_bytes ||
        pool.id_slot_bits != fields.pool.id_slot_bits)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "memory descriptor does not match pool '{}': it says instance {:#x}, heap {} B, {} id slot bits; "
                     "the pool has instance {:#x}, heap {} B, {} id slot bits",
                     pool.name, fields.pool.nonce, fields.pool.heap_bytes, fields.pool.id_slot_bits, pool.nonce,
                     pool.heap_bytes, pool.id_slot_bits);
    if (!mapping.id_issued(fields.id))
        return failf(DRAGON_INVALID_ARGUMENT,
                     "memory descriptor names allocation id {}, which pool '{}' has not issued (forged: that id would "
                     "resolve to a future allocation)",
                     fields.id, pool.name);
    Manifest::LiveFields rec;
    if (!mapping.read_live(fields.id, rec)) return DRAGON_SUCCESS;  // freed since
    if (rec.offset != fields.block_offset || rec.requested_bytes != fields.requested_bytes)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "memory descriptor of allocation id {} says block offset {} and {} B, but pool '{}' records "
                     "offset {} and {} B",
                     fields.id, fields.block_offset, fields.requested_bytes, pool.name, rec.offset,
                     rec.requested_bytes);
    if (!mapping.plausible_block(rec.requested_bytes, rec.offset))
        return failf(DRAGON_INVALID_ARGUMENT,
                     "the manifest record of allocation id {} in pool '{}' is damaged: offset {} and {} B are no block "
                     "of its {} B heap (dragonmem check)",
                     fields.id, pool.name, rec.offset, rec.requested_bytes, mapping.heap_bytes());
    return DRAGON_SUCCESS;
}

}  // namespace

dragonError_t mem_require_local_slow(const MemoryRef& mem, const char* op, PoolMapping*& out) {
    if (dragonError_t rc = mem_require_valid(mem, op)) return rc;
    if (mem.mapping == nullptr) return pool_require_local(mem.pool, op, out);  // remote: explains
    if (!borrowed_mapping_alive(mem)) return explain_gone(op);
    if (dragonError_t rc = mem.mapping->check_usable(op)) return rc;
    out = mem.mapping;
    return DRAGON_SUCCESS;
}

dragonError_t mem_pool(const MemoryRef& mem, const char* op, PoolRef& out) {
    if (dragonError_t rc = mem_require_valid(mem, op)) return rc;
    if (mem.mapping == nullptr || mem.pool.valid()) return pool_clone(out, mem.pool);
    // The descriptor borrows the mapping without a count, and another thread may drop
    // the last count at any instant: count first, then look. try_add_ref refuses a count
    // that already reached 0 (it never revives a mapping being unmapped); once it holds,
    // the mapping stays, and the epoch tells whether it is still this descriptor's
    // attach (the object may have been recycled for another in between).
    PoolMapping* mapping = mem.mapping;
    if (!mapping->try_add_ref()) return explain_gone(op);
    MappingRef counted(mapping);  // dropped on every failure below
    if (mapping->epoch() != mem.mapping_epoch) return explain_gone(op);
    if (dragonError_t rc = mapping->check_usable(op)) return rc;
    out = PoolRef{std::move(counted), nullptr};
    return DRAGON_SUCCESS;
}

dragonError_t mem_alloc(MemoryRef& out, const PoolRef& pool, std::size_t bytes, std::uint64_t type, bool blocking,
                        const timespec* timeout) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, blocking ? "alloc_blocking" : "alloc", mapping)) return rc;
    BlockInfo block{0, type, 0, 0};
    if (bytes != 0) {  // zero bytes: id 0, no block, no record
        if (dragonError_t rc = mapping->alloc(bytes, type, blocking, timeout, block)) return rc;
    }
    fill_allocated(out, mapping, block);
    return DRAGON_SUCCESS;
}

dragonError_t mem_free(const MemoryRef& mem) { return mem_free_inline(mem); }

dragonError_t mem_pointer(const MemoryRef& mem, void*& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = mem_require_local(mem, "get_pointer", mapping)) return rc;
    if (mem.id == 0) {
        out = nullptr;
        return DRAGON_SUCCESS;
    }
    // The block comes from the manifest record, whatever the descriptor says.
    std::uint64_t offset = 0;
    if (!mapping->live_block(mem.id, mem.requested_bytes, offset)) return explain_no_pointer(*mapping, mem);
    std::uint8_t* base = nullptr;
    if (dragonError_t rc = mapping->data_base("get_pointer", base)) return rc;
    out = base + offset + mem.view_offset;
    return DRAGON_SUCCESS;
}

dragonError_t mem_clone(MemoryRef& out, const MemoryRef& mem, std::ptrdiff_t offset, const std::size_t* length) {
    if (dragonError_t rc = mem_require_valid(mem, "descr_clone")) return rc;
    if (offset < 0 || static_cast<std::uint64_t>(offset) > mem.view_bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "descr_clone: offset {} is outside the {} B descriptor", offset,
                     mem.view_bytes);
    std::uint64_t rest = mem.view_bytes - static_cast<std::uint64_t>(offset);
    if (length != nullptr && *length > rest)
        return failf(DRAGON_INVALID_ARGUMENT, "descr_clone: offset {} + length {} exceeds the {} B descriptor", offset,
                     *length, mem.view_bytes);
    MemoryRef result = mem;
    result.view_offset += static_cast<std::uint64_t>(offset);
    result.view_bytes = length != nullptr ? *length : rest;
    out = std::move(result);
    return DRAGON_SUCCESS;
}

dragonError_t mem_serialize(const MemoryRef& mem, std::vector<std::uint8_t>& out, bool with_secret) {
    if (dragonError_t rc = mem_require_valid(mem, "serialize")) return rc;
    const PoolIdentity* identity = identity_of(mem.pool);
    if (mem.mapping != nullptr) {
        PoolMapping* mapping = nullptr;
        if (dragonError_t rc = mem_require_local(mem, "serialize", mapping)) return rc;
        identity = mapping->identity().get();
    }
    DecodedMemory fields;
    const bool local = mem.mapping != nullptr || static_cast<bool>(mem.pool.mapping);
    if (dragonError_t rc = identity_to_serialize(*identity, local, with_secret, fields.pool)) return rc;
    fields.id = mem.id;
    fields.type = mem.id == 0 ? 0 : mem.type;
    fields.block_offset = mem.block_offset;
    fields.requested_bytes = mem.requested_bytes;
    fields.view_offset = mem.view_offset;
    fields.view_bytes = mem.view_bytes;
    out = encode_memory(fields);
    return DRAGON_SUCCESS;
}

dragonError_t mem_attach(MemoryRef& out, std::span<const std::uint8_t> serialized) {
    DecodedMemory fields;
    if (dragonError_t rc = decode_memory(serialized, fields)) return rc;
    // Attach the pool part exactly as a pool descriptor (local: map or share; else remote).
    PoolRef pool;
    if (dragonError_t rc = pool_attach_identity(pool, fields.pool)) return rc;
    if (pool.mapping && fields.id != 0) {
        if (dragonError_t rc = verify_local_fields(*pool.mapping.get(), fields)) return rc;
    }
    MemoryRef result;
    if (pool.mapping) {
        result.mapping = pool.mapping.get();
        result.mapping_epoch = result.mapping->epoch();
    }
    result.pool = std::move(pool);  // keeps the pool attached as long as this descriptor
    result.id = fields.id;
    result.type = fields.type;
    result.block_offset = fields.block_offset;
    result.requested_bytes = fields.requested_bytes;
    result.view_offset = fields.view_offset;
    result.view_bytes = fields.view_bytes;
    out = std::move(result);
    return DRAGON_SUCCESS;
}

dragonError_t mem_attach_base64(MemoryRef& out, std::string_view base64) {
    auto bytes = base64_decode(base64);
    if (!bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "memory descriptor '{}' is not valid base64",
                     base64.size() > 60 ? std::string(base64.substr(0, 60)) + "..." : std::string(base64));
    return mem_attach(out, *bytes);
}

dragonError_t mem_from_id(MemoryRef& out, const PoolRef& pool, std::uint64_t id, std::uint64_t offset,
                          const std::uint64_t* length) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, "from_id", mapping)) return rc;
    BlockInfo block;
    if (dragonError_t rc = mapping->lookup(id, block)) return rc;
    if (offset > block.requested_bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "from_id: offset {} is outside allocation id {} of {} B", offset, id,
                     block.requested_bytes);
    std::uint64_t rest = block.requested_bytes - offset;
    if (length != nullptr && *length > rest)
        return failf(DRAGON_INVALID_ARGUMENT, "from_id: offset {} + length {} exceeds allocation id {} of {} B", offset,
                     *length, id, block.requested_bytes);
    MemoryRef result;
    result.mapping = mapping;
    result.mapping_epoch = mapping->epoch();
    result.id = id;
    result.type = block.type;
    result.block_offset = block.offset;
    result.requested_bytes = block.requested_bytes;
    result.view_offset = offset;
    result.view_bytes = length != nullptr ? *length : rest;
    out = std::move(result);
    return DRAGON_SUCCESS;
}

dragonError_t mem_exists(const MemoryRef& mem, bool& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = mem_require_local(mem, "allocation_exists", mapping)) return rc;
    out = mem.id != 0 && mapping->is_live(mem.id);
    return DRAGON_SUCCESS;
}

dragonError_t mem_modify_size(MemoryRef& mem, std::size_t bytes, const timespec* timeout) {
    if (dragonError_t rc = mem_require_valid(mem, "modify_size")) return rc;
    if (mem.id == 0) {
        // A zero-byte descriptor gets a real allocation of the new size.
        PoolRef pool;
        if (dragonError_t rc = mem_pool(mem, "modify_size", pool)) return rc;
        MemoryRef grown;
        if (dragonError_t rc = mem_alloc(grown, pool, bytes, mem.type, true, timeout)) return rc;
        grown.pool = std::move(mem.pool);  // keep whatever attach the old descriptor held
        mem = std::move(grown);
        return DRAGON_SUCCESS;
    }
    std::uint64_t limit = mem.requested_bytes - mem.view_offset;
    if (bytes > limit)
        return failf(DRAGON_INVALID_ARGUMENT,
                     "modify_size: {} B exceeds the {} B available to this descriptor (allocation id {} of {} B, view "
                     "offset {})",
                     bytes, limit, mem.id, mem.requested_bytes, mem.view_offset);
    mem.view_bytes = bytes;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
