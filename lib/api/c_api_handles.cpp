// The two descriptor tables and the checks every C entry point starts with.
#include "api/c_api_handles.hpp"

#include "os/error.hpp"
#include "pool/fork_safety.hpp"
#include "api/handle_table.hpp"

namespace dragonmem::detail {

// Constant-initialised and trivially destructible: usable from any static's constructor
// or destructor and from atexit handlers, with no initialisation guard on lookups.
constinit HandleTable<PoolRef> g_pool_table;
constinit HandleTable<MemoryRef> g_memory_table;

// Pool table first, then memory table (fork_safety.hpp); neither is ever held while the
// other is taken.
void handle_tables_lock_for_fork() noexcept {
    g_pool_table.lock_for_fork();
    g_memory_table.lock_for_fork();
}

void handle_tables_unlock_after_fork() noexcept {
    g_memory_table.unlock_after_fork();
    g_pool_table.unlock_after_fork();
}

dragonError_t explain_pool_not_found(const dragonMemoryPoolDescr_t* descr, const char* op) {
    if (descr == nullptr) return failf(DRAGON_INVALID_ARGUMENT, "{}: the pool descriptor pointer is NULL", op);
    return failf(DRAGON_MAP_KEY_NOT_FOUND,
                 "{}: pool descriptor {:#x} is not valid in this process (never initialised, detached or destroyed)",
                 op, descr->_idx);
}

dragonError_t explain_memory_not_found(const dragonMemoryDescr_t* descr, const char* op) {
    if (descr == nullptr) return failf(DRAGON_INVALID_ARGUMENT, "{}: the memory descriptor pointer is NULL", op);
    return failf(DRAGON_MAP_KEY_NOT_FOUND,
                 "{}: memory descriptor {:#x} is not valid in this process (never initialised, freed or detached)", op,
                 descr->_idx);
}

dragonError_t store_pool(dragonMemoryPoolDescr_t* descr, PoolRef&& ref) {
    std::uint64_t key = g_pool_table.insert(std::move(ref));
    if (key == 0) return fail(DRAGON_INTERNAL_MALLOC_FAIL, "no memory left for another pool descriptor");
    descr->_original = k_descr_original;
    descr->_idx = key;
    descr->_rt_idx = 0;
    return DRAGON_SUCCESS;
}

dragonError_t store_memory(dragonMemoryDescr_t* descr, MemoryRef&& ref) {
    std::uint64_t key = g_memory_table.insert(std::move(ref));
    if (key == 0) return fail(DRAGON_INTERNAL_MALLOC_FAIL, "no memory left for another memory descriptor");
    descr->_original = k_descr_original;
    descr->_idx = key;
    return DRAGON_SUCCESS;
}

bool erase_pool(const dragonMemoryPoolDescr_t* descr) { return descr != nullptr && g_pool_table.erase(descr->_idx); }

bool erase_memory(const dragonMemoryDescr_t* descr) { return descr != nullptr && g_memory_table.erase(descr->_idx); }

}  // namespace dragonmem::detail
