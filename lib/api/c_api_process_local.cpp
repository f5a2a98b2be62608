// The C API's process-local pools (lib/descr/process_local.hpp). Dragon's versions ask
// its runtime (local services) and wait up to `timeout` for the answer; here nothing
// waits, so the timeout is accepted and unused.
#include <dragon/managed_memory.h>

#include "api/c_api_boundary.hpp"
#include "api/c_api_handles.hpp"
#include "descr/operations.hpp"
#include "os/error.hpp"
#include "descr/process_local.hpp"

#include <string>

using namespace dragonmem;
using namespace dragonmem::detail;

extern "C" {

dragonError_t dragon_create_process_local_pool(dragonMemoryPoolDescr_t* pool, size_t bytes, const char* name,
                                               dragonMemoryPoolAttr_t* attr, const timespec_t* timeout) {
    (void)timeout;
    return c_call("create_process_local_pool", [&] {
        if (pool == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "create_process_local_pool: pool is NULL");
        if (name == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "create_process_local_pool: name is NULL");
        // Created as dragon_memory_pool_create does (m_uid 0: Dragon's runtime would pick
        // one), then registered; a failed registration destroys it again.
        if (dragonError_t rc = dragon_memory_pool_create(pool, bytes, name, 0, attr)) return rc;
        PoolRef* ref = nullptr;
        dragonError_t rc = find_pool(pool, "create_process_local_pool", ref);
        if (rc == DRAGON_SUCCESS) {
            try {
                rc = pool_register_process_local(*ref);
            } catch (...) {
                (void)dragon_memory_pool_destroy(pool);
                throw;
            }
        }
        if (rc != DRAGON_SUCCESS) {
            const std::string why = last_error_message();
            (void)dragon_memory_pool_destroy(pool);
            return failf(rc, "create_process_local_pool: {}; pool '{}' was destroyed again", why, name);
        }
        return DRAGON_SUCCESS;
    });
}

dragonError_t dragon_register_process_local_pool(dragonMemoryPoolDescr_t* pool, const timespec_t* timeout) {
    (void)timeout;
    return c_call("register_process_local_pool", [&] {
        PoolRef* ref = nullptr;
        if (dragonError_t rc = find_pool(pool, "register_process_local_pool", ref)) return rc;
        return pool_register_process_local(*ref);
    });
}

dragonError_t dragon_deregister_process_local_pool(dragonMemoryPoolDescr_t* pool, const timespec_t* timeout) {
    (void)timeout;
    return c_call("deregister_process_local_pool", [&] {
        PoolRef* ref = nullptr;
        if (dragonError_t rc = find_pool(pool, "deregister_process_local_pool", ref)) return rc;
        return pool_deregister_process_local(*ref);
    });
}

dragonError_t dragon_memory_pool_process_local_register_with_gpu(dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("process_local_register_with_gpu", [&] {
        PoolRef* ref = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "process_local_register_with_gpu", ref)) return rc;
        return pool_register_with_gpu(*ref, true);
    });
}

dragonError_t dragon_memory_pool_process_local_unregister_with_gpu(dragonMemoryPoolDescr_t* pool_descr) {
    return c_call("process_local_unregister_with_gpu", [&] {
        PoolRef* ref = nullptr;
        if (dragonError_t rc = find_pool(pool_descr, "process_local_unregister_with_gpu", ref)) return rc;
        return pool_register_with_gpu(*ref, false);
    });
}

}  // extern "C"
