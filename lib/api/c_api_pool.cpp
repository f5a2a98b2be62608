// The C API's pool calls: argument checks, then the shared descriptor operations.
#include <dragon/managed_memory.h>
#include <dragonmem/c_extensions.h>

#include "api/c_api_boundary.hpp"
#include "api/c_api_handles.hpp"
#include "descr/descriptor_codec.hpp"
#include "os/error.hpp"
#include "descr/operations.hpp"

#include <cstdlib>
#include <cstring>

using namespace dragonmem;
using namespace dragonmem::detail;

namespace {

// The descriptor of a local pool that is not destroyed.
dragonError_t local_pool(const dragonMemoryPoolDescr_t* descr, const char* op, PoolRef*& out) {
    if (dragonError_t rc = find_pool(descr, op, out)) return rc;
    return pool_require_local(*out, op);
}

dragonError_t options_from_attr(const dragonMemoryPoolAttr_t* attr, const char* name, PoolOptions& out) {
    if (attr == nullptr) return DRAGON_SUCCESS;
    if (attr->n_segments != 0)
        return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': n_segments is {}; pools have one segment (0)", name,
                     attr->n_segments);
    if (attr->npre_allocs != 0 && attr->pre_allocs == nullptr)
        return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': npre_allocs is {} but pre_allocs is NULL", name,
                     attr->npre_allocs);
    if (attr->npre_allocs > 64)
        return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': npre_allocs {} exceeds 64 block sizes", name,
                     attr->npre_allocs);
    out.min_block_bytes = attr->data_min_block_size == 0 ? 32 : attr->data_min_block_size;
    out.max_allocations = attr->max_allocations;
    out.mode = static_cast<unsigned>(attr->mode);  // 0: the default, 0600 (pool_create)
    out.lock_type = attr->lock_type;
    out.mem_type = attr->mem_type;
    out.growth_type = attr->growth_type;
    out.segment_size = attr->segment_size;
    out.max_size = attr->max_size;
    out.preallocs.assign(attr->pre_allocs, attr->pre_allocs + attr->npre_allocs);
    out.numa_node = attr->numa_node;  // -1 (attr_init): no preference
    out.gpu_device_id = attr->gpu_device_id;
    if (attr->max_allocations != 0 && attr->max_allocations < 5)
        return failf(DRAGON_INVALID_ARGUMENT, "pool '{}': max_allocations {} is below the minimum of 5", name,
                     attr->max_allocations);
    return DRAGON_SUCCESS;
}

dragonError_t copy_out(const std::vector<std::uint8_t>& bytes, std::size_t& len, std::uint8_t*& data) {
    auto* copy = static_cast<std::uint8_t*>(std::malloc(bytes.size()));
    if (copy == nullptr) return fail(DRAGON_INTERNAL_MALLOC_FAIL, "out of memory for a serialized descriptor");
    std::memcpy(copy, bytes.data(), bytes.size());
    data = copy;
    len = bytes.size();
    return DRAGON_SUCCESS;
}

dragonError_t list_allocations(const dragonMemoryPoolDescr_t* descr, std::optional<std::uint64_t> type,
                               dragonMemoryPoolAllocations_t* allocs, const char* op) {
    PoolRef* pool = nullptr;
    if (dragonError_t rc = local_pool(descr, op, pool)) return rc;
    if (allocs == nullptr) return failf(DRAGON_INVALID_ARGUMENT, "{}: allocs is NULL", op);
    std::vector<AllocationInfo> found;
    if (dragonError_t rc = pool_allocations(*pool, op, type, found)) return rc;
    allocs->nallocs = found.size();
    allocs->types = nullptr;
    allocs->ids = nullptr;
    if (found.empty()) return DRAGON_SUCCESS;
    allocs->types = static_cast<dragonULInt*>(std::malloc(found.size() * sizeof(dragonULInt)));
    allocs->ids = static_cast<dragonULInt*>(std::malloc(found.size() * sizeof(dragonULInt)));
    if (allocs->types == nullptr || allocs->ids == nullptr) {
        std::free(allocs->types);
        std::free(allocs->ids);
        allocs->types = allocs->ids = nullptr;
        allocs->nallocs = 0;
        return failf(DRAGON_INTERNAL_MALLOC_FAIL, "{}: out of memory for {} entries", op, found.size());
    }
    for (std::size_t i = 0; i < found.size(); ++i) {
        allocs->types[i] = found[i].type;
        allocs->ids[i] = found[i].id;
    }
    return DRAGON_SUCCESS;
}

// dragon_memory_pool_create and dragonmem_memory_pool_create_ext (flags: c_extensions.h).
// Runs inside c_call (it may throw).
dragonError_t create_pool(dragonMemoryPoolDescr_t* pool_descr, std::size_t bytes, const char* base_name,
                          dragonM_UID_t m_uid, const dragonMemoryPoolAttr_t* attr, unsigned int flags) {
    if (pool_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_create: pool_descr is NULL");
    if (base_name == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_create: base_name is NULL");
    if ((flags & ~DRAGONMEM_POOL_CREATE_RESERVE) != 0)
        return failf(DRAGON_INVALID_ARGUMENT, "pool_create_ext: pool '{}': unknown flag bits {:#x} (known: {:#x})",
                     base_name, flags & ~DRAGONMEM_POOL_CREATE_RESERVE, DRAGONMEM_POOL_CREATE_RESERVE);
    PoolOptions options;
    if (dragonError_t rc = options_from_attr(attr, base_name, options)) return rc;
    options.reserve = (flags & DRAGONMEM_POOL_CREATE_RESERVE) != 0;
    PoolRef ref;
    if (dragonError_t rc = pool_create(ref, base_name, bytes, m_uid, options)) return rc;
    // The caller gets no descriptor if the table cannot take it (out of memory, or its
    // first use threw), so no pool either: a failed create leaves nothing.
    PoolRef keep = ref;  // a second count, to destroy it through
    dragonError_t stored = DRAGON_INTERNAL_MALLOC_FAIL;
    try {
        stored = store_pool(pool_descr, std::move(ref));
    } catch (...) {
        (void)pool_destroy(keep);
        throw;  // c_call reports it
    }
    if (stored != DRAGON_SUCCESS) (void)pool_destroy(keep);
    return stored;
}

}  // namespace

extern "C" {

dragonError_t dragon_memory_pool_create(dragonMemoryPoolDescr_t* pool_descr, size_t bytes, const char* base_name,
                                        const dragonM_UID_t m_uid, const dragonMemoryPoolAttr_t* attr) {
    return c_call("pool_create", [&] { return create_pool(pool_descr, bytes, base_name, m_uid, attr, 0); });
}

dragonError_t dragonmem_memory_pool_create_ext(dragonMemoryPoolDescr_t* pool_descr, size_t bytes,
                                               const char* base_name, const dragonM_UID_t m_uid,
                                               const dragonMemoryPoolAttr_t* attr, unsigned int flags) {
    return c_call("pool_create_ext", [&] { return create_pool(pool_descr, bytes, base_name, m_uid, attr, flags); });
}

dragonError_t dragon_memory_pool_destroy(dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("pool_destroy", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_destroy", pool)) return rc;
        if (dragonError_t rc = pool_destroy(*pool)) return rc;
        erase_pool(pool_descr);
        return DRAGON_SUCCESS;
    });
}

size_t dragon_memory_pool_max_serialized_len(void) { return k_pool_serial_max; }

dragonError_t dragon_memory_pool_serialize(dragonMemoryPoolSerial_t* pool_ser, const dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("pool_serialize", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_serialize", pool)) return rc;
        if (pool_ser == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_serialize: pool_ser is NULL");
        std::vector<std::uint8_t> bytes;
        if (dragonError_t rc = pool_serialize(*pool, bytes)) return rc;
        return copy_out(bytes, pool_ser->len, pool_ser->data);
    });
}

dragonError_t dragon_memory_pool_serial_free(dragonMemoryPoolSerial_t* pool_ser) {
    return c_call("pool_serial_free", [&] {
        if (pool_ser == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_serial_free: pool_ser is NULL");
        std::free(pool_ser->data);
        pool_ser->data = nullptr;
        pool_ser->len = 0;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_attach(dragonMemoryPoolDescr_t* pool_descr, const dragonMemoryPoolSerial_t* pool_ser) {
    return c_call("pool_attach", [&] {
        if (pool_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_attach: pool_descr is NULL");
        if (pool_ser == nullptr || pool_ser->data == nullptr)
            return fail(DRAGON_INVALID_ARGUMENT, "pool_attach: the serialized descriptor (or its data) is NULL");
        PoolRef ref;
        if (dragonError_t rc = pool_attach(ref, {pool_ser->data, pool_ser->len})) return rc;
        return store_pool(pool_descr, std::move(ref));
    });
}

dragonError_t dragon_memory_pool_attach_from_env(dragonMemoryPoolDescr_t* pool_descr, const char* env_var) {
    return c_call("pool_attach_from_env", [&] {
        if (pool_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_attach_from_env: pool_descr is NULL");
        PoolRef ref;
        if (dragonError_t rc = pool_attach_env(ref, env_var)) return rc;
        return store_pool(pool_descr, std::move(ref));
    });
}

dragonError_t dragon_memory_pool_detach(dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("pool_detach", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_detach", pool)) return rc;
        erase_pool(pool_descr);  // the mapping goes when its last descriptor does; never unlinks
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_descr_clone(dragonMemoryPoolDescr_t* newpool_descr,
                                             const dragonMemoryPoolDescr_t* oldpool_descr) {
    return c_call("pool_descr_clone", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(oldpool_descr, "pool_descr_clone", pool)) return rc;
        if (newpool_descr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_descr_clone: newpool_descr is NULL");
        PoolRef copy;
        if (dragonError_t rc = pool_clone(copy, *pool)) return rc;
        return store_pool(newpool_descr, std::move(copy));
    });
}

dragonError_t dragon_memory_pool_get_hostid(dragonMemoryPoolDescr_t* pool_descr, dragonULInt* hostid) {
    return c_call("pool_get_hostid", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_get_hostid", pool)) return rc;
        if (hostid == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_get_hostid: hostid is NULL");
        *hostid = identity_of(*pool)->hostid;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_rt_uid(dragonMemoryPoolDescr_t* pool_descr, dragonULInt* rt_uid) {
    return c_call("pool_get_rt_uid", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_get_rt_uid", pool)) return rc;
        if (rt_uid == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_get_rt_uid: rt_uid is NULL");
        *rt_uid = identity_of(*pool)->rt_uid;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_runtime_is_local(dragonMemoryPoolDescr_t* pool_descr, bool* runtime_is_local) {
    return c_call("pool_runtime_is_local", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_runtime_is_local", pool)) return rc;
        if (runtime_is_local == nullptr)
            return fail(DRAGON_INVALID_ARGUMENT, "pool_runtime_is_local: runtime_is_local is NULL");
        *runtime_is_local = pool_runtime_is_local(*pool);
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_uid_fname(const dragonMemoryPoolSerial_t* pool_ser, dragonULInt* uid_out,
                                               char** fname_out) {
    return c_call("pool_get_uid_fname", [&] {
        if (pool_ser == nullptr || pool_ser->data == nullptr)
            return fail(DRAGON_INVALID_ARGUMENT, "pool_get_uid_fname: the serialized descriptor (or its data) is NULL");
        PoolIdentity identity;
        if (dragonError_t rc = decode_pool({pool_ser->data, pool_ser->len}, identity)) return rc;
        if (uid_out != nullptr) *uid_out = identity.m_uid;
        if (fname_out != nullptr) {
            std::string name = fmt::format("/{}", pool_shm_name(identity.name));  // not "/" + tmp: GCC 12 -Wrestrict false positive
            *fname_out = static_cast<char*>(std::malloc(name.size() + 1));
            if (*fname_out == nullptr) return fail(DRAGON_INTERNAL_MALLOC_FAIL, "pool_get_uid_fname: out of memory");
            std::memcpy(*fname_out, name.c_str(), name.size() + 1);
        }
        return DRAGON_SUCCESS;
    });
}

bool dragon_memory_pool_is_local(const dragonMemoryPoolDescr_t* pool_descr) {
    return c_call_or(false, "pool_is_local", [&] {
        PoolRef* pool = nullptr;
        if (find_pool(pool_descr, "pool_is_local", pool) != DRAGON_SUCCESS) return false;
        return pool_is_usable_here(*pool);
    });
}

dragonError_t dragon_memory_pool_muid(dragonMemoryPoolDescr_t* pool_descr, dragonULInt* muid) {
    return c_call("pool_muid", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_muid", pool)) return rc;
        if (muid == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_muid: muid is NULL");
        *muid = identity_of(*pool)->m_uid;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_free_size(dragonMemoryPoolDescr_t* pool_descr, uint64_t* free_size) {
    return c_call("pool_get_free_size", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = local_pool(pool_descr, "pool_get_free_size", pool)) return rc;
        if (free_size == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_get_free_size: free_size is NULL");
        PoolAttributes a;
        if (dragonError_t rc = pool_attributes(*pool, "pool_get_free_size", a, false)) return rc;
        *free_size = a.free_bytes;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_total_size(dragonMemoryPoolDescr_t* pool_descr, uint64_t* total_size) {
    return c_call("pool_get_total_size", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = local_pool(pool_descr, "pool_get_total_size", pool)) return rc;
        if (total_size == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_get_total_size: total_size is NULL");
        std::uint64_t bytes = 0;
        if (dragonError_t rc = pool_heap(*pool, "pool_get_total_size", nullptr, bytes)) return rc;
        *total_size = bytes;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_utilization_pct(dragonMemoryPoolDescr_t* pool_descr, double* utilization_pct) {
    return c_call("pool_get_utilization_pct", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = local_pool(pool_descr, "pool_get_utilization_pct", pool)) return rc;
        if (utilization_pct == nullptr)
            return fail(DRAGON_INVALID_ARGUMENT, "pool_get_utilization_pct: utilization_pct is NULL");
        PoolAttributes a;
        if (dragonError_t rc = pool_attributes(*pool, "pool_get_utilization_pct", a, false)) return rc;
        *utilization_pct = a.utilization_pct;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_num_block_sizes(dragonMemoryPoolDescr_t* pool_descr, size_t* num_block_sizes) {
    return c_call("pool_get_num_block_sizes", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = local_pool(pool_descr, "pool_get_num_block_sizes", pool)) return rc;
        if (num_block_sizes == nullptr)
            return fail(DRAGON_INVALID_ARGUMENT, "pool_get_num_block_sizes: num_block_sizes is NULL");
        std::vector<FreeBlockCount> counts;
        if (dragonError_t rc = pool_free_blocks(*pool, "pool_get_num_block_sizes", counts)) return rc;
        *num_block_sizes = counts.size();
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_free_blocks(dragonMemoryPoolDescr_t* pool_descr,
                                                 dragonHeapStatsAllocationItem_t* free_blocks) {
    return c_call("pool_get_free_blocks", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = local_pool(pool_descr, "pool_get_free_blocks", pool)) return rc;
        if (free_blocks == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_get_free_blocks: free_blocks is NULL");
        std::vector<FreeBlockCount> counts;
        if (dragonError_t rc = pool_free_blocks(*pool, "pool_get_free_blocks", counts)) return rc;
        for (std::size_t i = 0; i < counts.size(); ++i) free_blocks[i] = {counts[i].block_bytes, counts[i].count};
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_pointer(const dragonMemoryPoolDescr_t* pool_descr, void** base_ptr) {
    return c_call("pool_get_pointer", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = local_pool(pool_descr, "pool_get_pointer", pool)) return rc;
        if (base_ptr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_get_pointer: base_ptr is NULL");
        std::uint64_t bytes = 0;
        if (dragonError_t rc = pool_heap(*pool, "pool_get_pointer", base_ptr, bytes)) return rc;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_size(const dragonMemoryPoolDescr_t* pool_descr, size_t* size) {
    return c_call("pool_get_size", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "pool_get_size", pool)) return rc;
        if (size == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_get_size: size is NULL");
        *size = identity_of(*pool)->heap_bytes;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_get_allocations(const dragonMemoryPoolDescr_t* pool_descr,
                                                 dragonMemoryPoolAllocations_t* allocs) {
    return c_call("pool_get_allocations", [&] {
        return list_allocations(pool_descr, std::nullopt, allocs, "pool_get_allocations");
    });
}

dragonError_t dragon_memory_pool_get_type_allocations(const dragonMemoryPoolDescr_t* pool_descr,
                                                      const dragonMemoryAllocationType_t type,
                                                      dragonMemoryPoolAllocations_t* allocs) {
    return c_call("pool_get_type_allocations", [&] {
        return list_allocations(pool_descr, raw_enum(type), allocs, "pool_get_type_allocations");
    });
}

dragonError_t dragon_memory_pool_allocations_free(dragonMemoryPoolAllocations_t* allocs) {
    return c_call("pool_allocations_free", [&] {
        if (allocs == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "pool_allocations_free: allocs is NULL");
        std::free(allocs->types);
        std::free(allocs->ids);
        allocs->types = nullptr;
        allocs->ids = nullptr;
        allocs->nallocs = 0;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_pool_allocations_destroy(dragonMemoryPoolAllocations_t* allocs) {
    return c_call("pool_allocations_destroy", [&] { return dragon_memory_pool_allocations_free(allocs); });
}

dragonError_t dragonmem_pool_check(dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("pool_check", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = local_pool(pool_descr, "pool_check", pool)) return rc;
        CheckReport report;
        if (dragonError_t rc = pool_check(*pool, "pool_check", report)) return rc;
        if (report.ok) return DRAGON_SUCCESS;
        std::string message = fmt::format("pool '{}' fails {} invariant(s):", identity_of(*pool)->name,
                                          report.problems.size());
        for (const std::string& problem : report.problems) message += " " + problem + ";";
        return fail(DRAGON_FAILURE, message);
    });
}

}  // extern "C"
