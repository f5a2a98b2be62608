// The two descriptor tables and the checks every C entry point starts with.
#include "api/c_api_handles.hpp"

#include "os/error.hpp"
#include "pool/fork_safety.hpp"
#include "api/handle_table.hpp"

namespace dragonmem::detail {

namespace {

// Leaked on purpose: descriptors may be used from atexit handlers and other statics.
HandleTable<PoolRef>& pool_table() {
    static auto* table = new HandleTable<PoolRef>();
    return *table;
}

}  // namespace

HandleTable<MemoryRef>& memory_table() {
    static auto* table = new HandleTable<MemoryRef>();
    return *table;
}

// Pool table first, then memory table (fork_safety.hpp); neither is ever held while the
// other is taken.
void handle_tables_lock_for_fork() noexcept {
    pool_table().lock_for_fork();
    memory_table().lock_for_fork();
}

void handle_tables_unlock_after_fork() noexcept {
    memory_table().unlock_after_fork();
    pool_table().unlock_after_fork();
}

dragonError_t find_pool(const dragonMemoryPoolDescr_t* descr, const char* op, PoolRef*& out) {
    if (descr == nullptr) return failf(DRAGON_INVALID_ARGUMENT, "{}: the pool descriptor pointer is NULL", op);
    out = pool_table().find(descr->_idx);
    if (out == nullptr)
        return failf(DRAGON_MAP_KEY_NOT_FOUND,
                     "{}: pool descriptor {:#x} is not valid in this process (never initialised, detached or destroyed)",
                     op, descr->_idx);
    return DRAGON_SUCCESS;
}

dragonError_t find_memory(const dragonMemoryDescr_t* descr, const char* op, MemoryRef*& out) {
    if (descr == nullptr) return failf(DRAGON_INVALID_ARGUMENT, "{}: the memory descriptor pointer is NULL", op);
    out = memory_table().find(descr->_idx);
    if (out == nullptr)
        return failf(DRAGON_MAP_KEY_NOT_FOUND,
                     "{}: memory descriptor {:#x} is not valid in this process (never initialised, freed or detached)",
                     op, descr->_idx);
    return DRAGON_SUCCESS;
}

dragonError_t store_pool(dragonMemoryPoolDescr_t* descr, PoolRef&& ref) {
    std::uint64_t key = pool_table().insert(std::move(ref));
    if (key == 0) return fail(DRAGON_INTERNAL_MALLOC_FAIL, "no memory left for another pool descriptor");
    descr->_original = k_descr_original;
    descr->_idx = key;
    descr->_rt_idx = 0;
    return DRAGON_SUCCESS;
}

dragonError_t store_memory(dragonMemoryDescr_t* descr, MemoryRef&& ref) {
    return store_memory_with(descr, [&](MemoryRef& slot) { slot = std::move(ref); });
}

bool erase_pool(const dragonMemoryPoolDescr_t* descr) { return descr != nullptr && pool_table().erase(descr->_idx); }

bool erase_memory(const dragonMemoryDescr_t* descr) { return descr != nullptr && memory_table().erase(descr->_idx); }

}  // namespace dragonmem::detail
