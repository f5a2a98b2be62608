// The C API's operations on allocations' bytes (Dragon HEAD's copy, clear, hash, equal,
// is, get_ptr_info) and attach_default: argument checks, then lib/descr/memory_copy.hpp.
#include <dragon/managed_memory.h>

#include "api/c_api_boundary.hpp"
#include "api/c_api_handles.hpp"
#include "descr/operations.hpp"
#include "os/error.hpp"
#include "descr/memory_copy.hpp"
#include "descr/pool_default.hpp"

#include <cstdlib>

using namespace dragonmem;
using namespace dragonmem::detail;

extern "C" {

dragonError_t dragon_memory_get_ptr_info(const dragonMemoryDescr_t* mem_descr, void** ptr, size_t* size) {
    return c_call("get_ptr_info", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "get_ptr_info", mem)) return rc;
        if (ptr == nullptr || size == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "get_ptr_info: ptr or size is NULL");
        void* p = nullptr;
        std::size_t bytes = 0;
        if (dragonError_t rc = mem_ptr_info(*mem, p, bytes)) return rc;
        *ptr = p;
        *size = bytes;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_hash(dragonMemoryDescr_t* mem_descr, dragonULInt* hash_value) {
    return c_call("hash", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "hash", mem)) return rc;
        if (hash_value == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "hash: hash_value is NULL");
        std::uint64_t value = 0;
        if (dragonError_t rc = mem_hash(*mem, value)) return rc;
        *hash_value = value;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_equal(dragonMemoryDescr_t* mem_descr1, dragonMemoryDescr_t* mem_descr2, bool* result) {
    return c_call("equal", [&] {
        if (result == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "equal: result is NULL");
        *result = false;
        MemoryRef* a = nullptr;
        MemoryRef* b = nullptr;
        if (dragonError_t rc = find_memory(mem_descr1, "equal (first)", a)) return rc;
        if (dragonError_t rc = find_memory(mem_descr2, "equal (second)", b)) return rc;
        bool same = false;
        if (dragonError_t rc = mem_equal(*a, *b, same)) return rc;
        *result = same;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_is(dragonMemoryDescr_t* mem_descr1, dragonMemoryDescr_t* mem_descr2, bool* result) {
    return c_call("is", [&] {
        if (result == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "is: result is NULL");
        *result = false;
        MemoryRef* a = nullptr;
        MemoryRef* b = nullptr;
        if (dragonError_t rc = find_memory(mem_descr1, "is (first)", a)) return rc;
        if (dragonError_t rc = find_memory(mem_descr2, "is (second)", b)) return rc;
        bool same = false;
        if (dragonError_t rc = mem_is(*a, *b, same)) return rc;
        *result = same;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_copy_size(dragonMemoryDescr_t* from_mem, dragonMemoryDescr_t* to_mem, size_t size) {
    return c_call("copy_size", [&] {
        MemoryRef* from = nullptr;
        MemoryRef* to = nullptr;
        if (dragonError_t rc = find_memory(from_mem, "copy_size (source)", from)) return rc;
        if (dragonError_t rc = find_memory(to_mem, "copy_size (destination)", to)) return rc;
        return mem_copy(*from, *to, size);
    });
}

dragonError_t dragon_memory_copy(dragonMemoryDescr_t* from_mem, dragonMemoryDescr_t* to_mem) {
    return c_call("copy", [&] {
        MemoryRef* from = nullptr;
        MemoryRef* to = nullptr;
        if (dragonError_t rc = find_memory(from_mem, "copy (source)", from)) return rc;
        if (dragonError_t rc = find_memory(to_mem, "copy (destination)", to)) return rc;
        return mem_copy(*from, *to, from->view_bytes);
    });
}

dragonError_t dragon_memory_copy_to_pool(dragonMemoryDescr_t* from_mem, dragonMemoryDescr_t* to_mem,
                                         dragonMemoryPoolDescr_t* to_pool, const timespec_t* timeout) {
    return c_call("copy_to_pool", [&] {
        MemoryRef* from = nullptr;
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_memory(from_mem, "copy_to_pool (source)", from)) return rc;
        if (dragonError_t rc = find_pool(to_pool, "copy_to_pool (target pool)", pool)) return rc;
        if (to_mem == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "copy_to_pool: to_mem is NULL");
        MemoryRef made;
        if (dragonError_t rc = mem_copy_to_pool(made, *from, *pool, timeout)) return rc;
        // No descriptor to hand out: the copy is freed again, the pool left as it was.
        MemoryRef keep = made;
        dragonError_t stored = DRAGON_INTERNAL_MALLOC_FAIL;
        try {
            stored = store_memory(to_mem, std::move(made));
        } catch (...) {
            (void)mem_free(keep);
            throw;  // c_call reports it
        }
        if (stored != DRAGON_SUCCESS) (void)mem_free(keep);
        return stored;
    });
}

dragonError_t dragon_memory_clear(dragonMemoryDescr_t* mem_descr, size_t start, size_t stop) {
    return c_call("clear", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "clear", mem)) return rc;
        return mem_clear(*mem, start, stop);
    });
}

dragonError_t dragon_memory_pool_attach_default(dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("attach_default", [&] {
        if (pool_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "attach_default: pool_descr is NULL");
        PoolRef ref;
        if (dragonError_t rc = pool_attach_default(ref)) return rc;
        return store_pool(pool_descr, std::move(ref));
    });
}

}  // extern "C"
