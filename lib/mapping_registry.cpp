// Process-wide name -> mapping table, and MappingRef's reference counting.
#include "mapping_registry.hpp"

#include "pool_mapping.hpp"

#include <mutex>
#include <unordered_map>

namespace dragonmem::detail {

namespace {

struct Registry {
    std::mutex mutex;
    std::unordered_map<std::string, PoolMapping*> by_shm_name;  // weak: counts live in the mappings
};

Registry& registry() {
    static Registry* instance = new Registry();  // never destroyed: mappings may outlive statics
    return *instance;
}

}  // namespace

dragonError_t registry_create(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                              const PoolOptions& options, MappingRef& out) {
    PoolMapping* created = nullptr;
    if (dragonError_t rc = PoolMapping::create(name, bytes, m_uid, options, created)) return rc;
    {
        Registry& reg = registry();
        std::lock_guard guard(reg.mutex);
        // A stale entry (a destroyed pool someone still holds) is simply replaced.
        reg.by_shm_name[created->shm_name()] = created;
    }
    // Assigned outside the lock: dropping out's old value may re-enter the registry.
    out = MappingRef(created);
    return DRAGON_SUCCESS;
}

namespace {

// The registered mapping of `shm_name` with a new reference, if it is usable and the
// instance asked for; nullptr otherwise. Registry mutex held.
PoolMapping* share_registered_locked(Registry& reg, const std::string& shm_name, std::uint64_t expected_nonce) {
    auto found = reg.by_shm_name.find(shm_name);
    if (found == reg.by_shm_name.end()) return nullptr;
    PoolMapping* existing = found->second;
    bool same_instance = expected_nonce == 0 || existing->identity()->nonce == expected_nonce;
    if (same_instance && !existing->destroyed_elsewhere() && existing->try_add_ref()) return existing;
    return nullptr;
}

}  // namespace

dragonError_t registry_attach(const std::string& shm_name, std::uint64_t expected_nonce, MappingRef& out) {
    Registry& reg = registry();
    PoolMapping* result = nullptr;
    {
        std::lock_guard guard(reg.mutex);
        result = share_registered_locked(reg, shm_name, expected_nonce);
    }
    if (result == nullptr) {
        // Not mapped here yet. open() may sleep (up to 200 ms for a creator still
        // formatting): it runs without the registry mutex, so attaches of other pools,
        // detaches and destroys in this process are not held up meanwhile.
        PoolMapping* opened = nullptr;
        if (dragonError_t rc = PoolMapping::open(shm_name, expected_nonce, opened)) return rc;
        PoolMapping* registered = nullptr;
        {
            std::lock_guard guard(reg.mutex);
            // Another thread may have mapped the same pool meanwhile: one mapping per pool
            // and process (thread caches and detach accounting rely on it), so the first
            // one registered wins and ours is dropped.
            registered = share_registered_locked(reg, shm_name, expected_nonce);
            if (registered == nullptr) reg.by_shm_name[shm_name] = opened;
        }
        if (registered != nullptr) {
            opened->release();  // never registered, never used: just unmapped
            result = registered;
        } else {
            result = opened;
        }
    }
    // Assigned outside the lock: dropping out's old value may re-enter the registry.
    out = MappingRef(result);
    return DRAGON_SUCCESS;
}

void registry_forget(PoolMapping* mapping) noexcept {
    Registry& reg = registry();
    std::lock_guard guard(reg.mutex);
    auto found = reg.by_shm_name.find(mapping->shm_name());
    if (found != reg.by_shm_name.end() && found->second == mapping) reg.by_shm_name.erase(found);
}

void mapping_add_ref(PoolMapping* mapping) noexcept { mapping->add_ref(); }

void mapping_release(PoolMapping* mapping) noexcept { mapping->release(); }

}  // namespace dragonmem::detail
