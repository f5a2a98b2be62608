// The C API's allocation calls: argument checks, then the shared descriptor operations.
#include <dragon/managed_memory.h>

#include "api/c_api_boundary.hpp"
#include "api/c_api_handles.hpp"
#include "descr/alloc_fast_path.hpp"
#include "descr/descriptor_codec.hpp"
#include "os/error.hpp"
#include "descr/operations.hpp"

#include <cstdlib>
#include <cstring>

using namespace dragonmem;
using namespace dragonmem::detail;

namespace {

// Inline in each entry point: a call frame here costs a visible share of the pair.
[[gnu::always_inline]] inline dragonError_t allocate(dragonMemoryDescr_t* mem_descr,
                                                     const dragonMemoryPoolDescr_t* pool_descr, size_t bytes,
                                                     std::uint64_t type, bool blocking, const timespec_t* timer) {
    const char* op = blocking ? "alloc_blocking" : "alloc";
    PoolRef* pool = nullptr;
    if (dragonError_t rc = find_pool(pool_descr, op, pool)) return rc;
    if (mem_descr == nullptr) [[unlikely]]
        return failf(DRAGON_INVALID_ARGUMENT, "{}: mem_descr is NULL", op);
    // The descriptor's table entry first, then the allocation straight into it: nothing
    // to undo when the table is full, and no copy of the descriptor.
    MemorySlot slot;
    if (dragonError_t rc = reserve_memory(slot)) return rc;
    dragonError_t rc = DRAGON_FAILURE;
    try {
        rc = mem_alloc_inline(slot.value(), *pool, bytes, type, blocking, timer);
    } catch (...) {
        g_memory_table.unreserve(slot);
        throw;  // c_call reports it
    }
    if (rc != DRAGON_SUCCESS) [[unlikely]] {
        g_memory_table.unreserve(slot);
        return rc;
    }
    publish_memory(mem_descr, slot);
    return DRAGON_SUCCESS;
}

}  // namespace

extern "C" {

dragonError_t dragon_memory_alloc(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                  const size_t bytes) {
    return c_call("alloc", [&] {
        return allocate(mem_descr, pool_descr, bytes, DRAGON_MEMORY_ALLOC_DATA, false, nullptr);
    });
}

dragonError_t dragon_memory_alloc_blocking(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                           const size_t bytes, const timespec_t* timer) {
    return c_call("alloc_blocking", [&] {
        return allocate(mem_descr, pool_descr, bytes, DRAGON_MEMORY_ALLOC_DATA, true, timer);
    });
}

dragonError_t dragon_memory_alloc_type(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                       const size_t bytes, const dragonMemoryAllocationType_t type) {
    return c_call("alloc_type", [&] {
        return allocate(mem_descr, pool_descr, bytes, raw_enum(type), false, nullptr);
    });
}

dragonError_t dragon_memory_alloc_type_blocking(dragonMemoryDescr_t* mem_descr,
                                                const dragonMemoryPoolDescr_t* pool_descr, const size_t bytes,
                                                const dragonMemoryAllocationType_t type, const timespec_t* timer) {
    return c_call("alloc_type_blocking", [&] {
        return allocate(mem_descr, pool_descr, bytes, raw_enum(type), true, timer);
    });
}

dragonError_t dragon_memory_free(dragonMemoryDescr_t* mem_descr) {
    return c_call("free", [&] {
        FoundMemory found;
        if (dragonError_t rc = find_memory_entry(mem_descr, "free", found)) return rc;
        if (dragonError_t rc = mem_free_inline(*found.value())) return rc;
        g_memory_table.erase(found);  // this descriptor is spent: a second free is MAP_KEY_NOT_FOUND
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_get_size(const dragonMemoryDescr_t* mem_descr, size_t* bytes) {
    return c_call("get_size", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "get_size", mem)) return rc;
        if (bytes == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "get_size: bytes is NULL");
        *bytes = mem->view_bytes;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_get_pool(const dragonMemoryDescr_t* mem_descr, dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("get_pool", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "get_pool", mem)) return rc;
        if (pool_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "get_pool: pool_descr is NULL");
        PoolRef copy;
        if (dragonError_t rc = mem_pool(*mem, "get_pool", copy)) return rc;
        return store_pool(pool_descr, std::move(copy));
    });
}

dragonError_t dragon_memory_get_pointer(const dragonMemoryDescr_t* mem_descr, void** ptr) {
    return c_call("get_pointer", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "get_pointer", mem)) return rc;
        if (ptr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "get_pointer: ptr is NULL");
        void* out = nullptr;
        if (dragonError_t rc = mem_pointer(*mem, out)) return rc;
        *ptr = out;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_id(dragonMemoryDescr_t* mem_descr, uint64_t* id) {
    return c_call("id", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "id", mem)) return rc;
        if (id == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "id: id is NULL");
        *id = mem->id;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_from_id(const dragonMemoryPoolDescr_t* pool_descr, uint64_t id,
                                    dragonMemoryDescr_t* mem_descr) {
    return c_call("from_id", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "from_id", pool)) return rc;
        if (mem_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "from_id: mem_descr is NULL");
        MemoryRef ref;
        if (dragonError_t rc = mem_from_id(ref, *pool, id, 0, nullptr)) return rc;
        return store_memory(mem_descr, std::move(ref));
    });
}

dragonError_t dragon_memory_get_alloc_memdescr(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                               const dragonULInt id, const dragonULInt offset,
                                               const dragonULInt* bytes_size) {
    return c_call("get_alloc_memdescr", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "get_alloc_memdescr", pool)) return rc;
        if (mem_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "get_alloc_memdescr: mem_descr is NULL");
        MemoryRef ref;
        if (dragonError_t rc = mem_from_id(ref, *pool, id, offset, bytes_size)) return rc;
        return store_memory(mem_descr, std::move(ref));
    });
}

dragonError_t dragon_memory_pool_allocation_exists(dragonMemoryDescr_t* mem_descr, int* flag) {
    return c_call("pool_allocation_exists", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "pool_allocation_exists", mem)) return rc;
        if (flag == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_allocation_exists: flag is NULL");
        bool exists = false;
        if (dragonError_t rc = mem_exists(*mem, exists)) return rc;
        *flag = exists ? 1 : 0;
        return DRAGON_SUCCESS;
    });
}

size_t dragon_memory_max_serialized_len(void) { return k_memory_serial_max; }

dragonError_t dragon_memory_serialize(dragonMemorySerial_t* mem_ser, const dragonMemoryDescr_t* mem_descr) {
    return c_call("serialize", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "serialize", mem)) return rc;
        if (mem_ser == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "serialize: mem_ser is NULL");
        std::vector<std::uint8_t> bytes;
        if (dragonError_t rc = mem_serialize(*mem, bytes)) return rc;
        auto* copy = static_cast<std::uint8_t*>(std::malloc(bytes.size()));
        if (copy == nullptr) return fail(DRAGON_INTERNAL_MALLOC_FAIL, "serialize: out of memory");
        std::memcpy(copy, bytes.data(), bytes.size());
        mem_ser->data = copy;
        mem_ser->len = bytes.size();
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_attach(dragonMemoryDescr_t* mem_descr, const dragonMemorySerial_t* mem_ser) {
    return c_call("attach", [&] {
        if (mem_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "attach: mem_descr is NULL");
        if (mem_ser == nullptr || mem_ser->data == nullptr)
            return fail(DRAGON_INVALID_ARGUMENT, "attach: the serialized descriptor (or its data) is NULL");
        MemoryRef ref;
        if (dragonError_t rc = mem_attach(ref, {mem_ser->data, mem_ser->len})) return rc;
        return store_memory(mem_descr, std::move(ref));
    });
}

dragonError_t dragon_memory_detach(dragonMemoryDescr_t* mem_descr) {
    return c_call("detach", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "detach", mem)) return rc;
        erase_memory(mem_descr);
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_serial_free(dragonMemorySerial_t* mem_ser) {
    return c_call("serial_free", [&] {
        if (mem_ser == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "serial_free: mem_ser is NULL");
        std::free(mem_ser->data);
        mem_ser->data = nullptr;
        mem_ser->len = 0;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_descr_clone(dragonMemoryDescr_t* newmem_descr, const dragonMemoryDescr_t* oldmem_descr,
                                        ptrdiff_t offset, size_t* custom_length) {
    return c_call("descr_clone", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(oldmem_descr, "descr_clone", mem)) return rc;
        if (newmem_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "descr_clone: newmem_descr is NULL");
        MemoryRef copy;
        if (dragonError_t rc = mem_clone(copy, *mem, offset, custom_length)) return rc;
        return store_memory(newmem_descr, std::move(copy));
    });
}

dragonError_t dragon_memory_modify_size(dragonMemoryDescr_t* mem_descr, const size_t new_size, const timespec_t* timeout) {
    return c_call("modify_size", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "modify_size", mem)) return rc;
        return mem_modify_size(*mem, new_size, timeout);
    });
}

}  // extern "C"
