// dragon_memory_attr_init / attr_destroy / get_attr: dragonMemoryPoolAttr_t <-> the core.
#include <dragon/managed_memory.h>

#include "api/c_api_boundary.hpp"
#include "api/c_api_handles.hpp"
#include "os/error.hpp"
#include "descr/operations.hpp"

#include <cstdlib>
#include <cstring>

using namespace dragonmem;
using namespace dragonmem::detail;

namespace {

// Dragon's attr_init placeholders for the size fields.
constexpr std::size_t k_dragon_default_max_size = std::size_t{4} << 30;
constexpr std::size_t k_dragon_default_segment_size = std::size_t{128} << 20;

char* copy_string(const std::string& text) {
    char* out = static_cast<char*>(std::malloc(text.size() + 1));
    if (out != nullptr) std::memcpy(out, text.c_str(), text.size() + 1);
    return out;
}

}  // namespace

extern "C" {

dragonError_t dragon_memory_attr_init(dragonMemoryPoolAttr_t* attr) {
    return c_call("attr_init", [&] {
        if (attr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "attr_init: attr is NULL");
        // Dragon's defaults, field for field; the sizes are its placeholders (4 GiB pools
        // in 128 MiB segments), recorded by pool_create and reported by get_attr.
        std::memset(attr, 0, sizeof *attr);
        attr->allocatable_data_size = k_dragon_default_max_size;
        attr->data_min_block_size = 32;
        attr->max_allocations = 0;  // 0: the default (number of min blocks, at most 1048576)
        attr->max_allocatable_block_size = k_dragon_default_max_size;
        attr->max_size = k_dragon_default_max_size;
        attr->segment_size = k_dragon_default_segment_size;
        attr->gpu_device_id = 0;
        attr->ipc_handle_size = 0;
        attr->numa_node = -1;  // no preference
        attr->lock_type = DRAGON_LOCK_FIFO_LITE;
        attr->mem_type = DRAGON_MEMORY_TYPE_SHM;
        attr->growth_type = DRAGON_MEMORY_GROWTH_NONE;
        attr->mode = default_pool_mode;
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_attr_destroy(dragonMemoryPoolAttr_t* attr) {
    return c_call("attr_destroy", [&] {
        if (attr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "attr_destroy: attr is NULL");
        // Frees what get_attr allocated; pre_allocs belongs to the caller.
        std::free(attr->mname);
        attr->mname = nullptr;
        if (attr->names != nullptr) {
            for (char** name = attr->names; *name != nullptr; ++name) std::free(*name);
            std::free(attr->names);
            attr->names = nullptr;
        }
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_memory_get_attr(dragonMemoryPoolDescr_t* pool_descr, dragonMemoryPoolAttr_t* attr) {
    return c_call("get_attr", [&] {
        PoolRef* pool = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "get_attr", pool)) return rc;
        if (attr == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "get_attr: attr is NULL");
        PoolAttributes a;
        if (dragonError_t rc = pool_attributes(*pool, "get_attr", a, false)) return rc;
        attr->allocatable_data_size = a.heap_bytes;
        attr->total_data_size = a.total_bytes;
        attr->free_space = a.free_bytes;
        attr->utilization_pct = a.utilization_pct;
        attr->data_min_block_size = a.min_block_bytes;
        attr->max_allocations = a.max_allocations;
        attr->waiters_for_manifest = a.waiters ? 1 : 0;
        attr->manifest_entries = a.live_allocations;
        attr->max_manifest_entries = a.max_live_allocations;
        attr->manifest_allocated_size = a.manifest_bytes;
        attr->manifest_table_size = a.max_allocations * a.manifest_record_bytes;
        attr->manifest_heap_size = a.heap_meta_bytes;
        attr->segment_size = a.segment_size;
        attr->max_size = a.max_size;
        attr->max_allocatable_block_size = a.max_block_bytes;
        attr->n_segments = 0;
        attr->gpu_device_id = a.gpu_device_id;
        attr->ipc_handle_size = a.ipc_handle_bytes;
        attr->numa_node = a.numa_node;
        attr->lock_type = a.lock_type;
        attr->mem_type = a.mem_type;
        attr->growth_type = a.growth_type;
        attr->mode = static_cast<mode_t>(a.mode);
        attr->mname = copy_string("/" + a.shm_name);
        attr->names = static_cast<char**>(std::calloc(2, sizeof(char*)));
        if (attr->mname == nullptr || attr->names == nullptr)
            return fail(DRAGON_INTERNAL_MALLOC_FAIL, "get_attr: out of memory for the names");
        attr->names[0] = copy_string("/" + a.shm_name);
        return DRAGON_SUCCESS;
    });
}

}  // extern "C"
