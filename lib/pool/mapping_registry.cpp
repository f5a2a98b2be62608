// Process-wide name -> mapping table, and MappingRef's reference counting.
#include "pool/mapping_registry.hpp"

#include "os/error.hpp"
#include "pool/fork_safety.hpp"
#include "pool/pool_mapping.hpp"

#include <mutex>
#include <new>
#include <unordered_map>

namespace dragonmem::detail {

namespace {

struct Registry {
    std::mutex mutex;
    std::unordered_map<std::string, PoolMapping*> by_shm_name;  // weak: counts live in the mappings
};

Registry& registry() noexcept {
    // Never destroyed (mappings may outlive statics), and built in static storage, not on
    // the heap: registry_forget() is noexcept and may be its first user after an
    // out-of-memory failure. Arming the fork handlers here is a no-op (they were armed at
    // load) that keeps fork_safety.cpp in static links.
    alignas(Registry) static unsigned char storage[sizeof(Registry)];
    static Registry* instance = (fork_handlers_arm(), new (storage) Registry());
    return *instance;
}

}  // namespace

void registry_lock_for_fork() noexcept { registry().mutex.lock(); }

void registry_unlock_after_fork() noexcept { registry().mutex.unlock(); }

dragonError_t registry_create(std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                              const PoolOptions& options, MappingRef& out) {
    PoolMapping* created = nullptr;
    if (dragonError_t rc = PoolMapping::create(name, bytes, m_uid, options, created)) return rc;
    try {
        Registry& reg = registry();
        std::lock_guard guard(reg.mutex);
        // A stale entry (a destroyed pool someone still holds) is simply replaced.
        reg.by_shm_name[created->shm_name()] = created;
        created->register_this_process();
    } catch (const std::bad_alloc&) {
        // Nobody else has a handle yet: a failed create leaves no pool behind.
        (void)created->destroy();
        created->release();
        return failf(DRAGON_INTERNAL_MALLOC_FAIL, "pool '{}': out of memory registering the new pool; it was removed",
                     name);
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
    PoolMapping* unregistered = nullptr;  // opened, but the table could not take it
    {
        std::lock_guard guard(reg.mutex);
        result = share_registered_locked(reg, shm_name, expected_nonce);
    }
    if (result == nullptr) {
        // Not mapped here yet. open() may sleep (up to k_creator_wait_ms for a creator still
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
            if (registered == nullptr) {
                try {
                    reg.by_shm_name[shm_name] = opened;
                } catch (const std::bad_alloc&) {
                    unregistered = opened;
                }
            }
        }
        if (registered != nullptr) {
            opened->release();  // never registered, never used: just unmapped
            result = registered;
        } else {
            result = opened;
        }
    }
    if (unregistered != nullptr) {
        unregistered->release();  // unmaps; outside the registry's lock, which release() takes
        return failf(DRAGON_INTERNAL_MALLOC_FAIL, "out of memory registering the mapping of '{}'", shm_name);
    }
    {
        // Under the registry's mutex: one entry per process even when threads attach at
        // once, and never half-made across a fork (the mutex is held over fork()).
        std::lock_guard guard(reg.mutex);
        result->register_this_process();
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

}  // namespace dragonmem::detail

namespace dragonmem::abi {

void mapping_add_ref(detail::PoolMapping* mapping) noexcept { mapping->add_ref(); }

void mapping_release(detail::PoolMapping* mapping) noexcept { mapping->release(); }

}  // namespace dragonmem::abi
