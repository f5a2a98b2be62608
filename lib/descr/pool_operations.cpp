// The operations layer's pool calls (operations.hpp), shared by the C and C++ APIs.
#include "descr/agent_address.hpp"
#include "descr/base64.hpp"
#include "descr/descriptor_codec.hpp"
#include "os/error.hpp"
#include "descr/mapped_pool.hpp"
#include "descr/operations.hpp"
#include "os/host_identity.hpp"
#include "os/shm_segment.hpp"
#include "pool/mapping_registry.hpp"
#include "pool/pool_name.hpp"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>

namespace dragonmem::detail {

const PoolIdentity* identity_of(const PoolRef& pool) noexcept {
    if (pool.mapping) return pool.mapping.get()->identity().get();
    return pool.identity.get();
}

bool pool_is_local(const PoolRef& pool) noexcept { return static_cast<bool>(pool.mapping); }

bool pool_is_usable_here(const PoolRef& pool) {
    // A descriptor of a destroyed pool is no longer valid, hence not local.
    return pool_is_local(pool) && pool.mapping.get()->check_usable("pool_is_local") == DRAGON_SUCCESS;
}

bool pool_runtime_is_local(const PoolRef& pool) noexcept { return identity_of(pool)->rt_uid == this_rt_uid(); }

std::string pool_shm_name(std::string_view base_name) { return shm_name_for(base_name); }

dragonError_t pool_require_valid(const PoolRef& pool, const char* op) {
    if (!pool.valid())
        return failf(DRAGON_MAP_KEY_NOT_FOUND, "{}: the pool descriptor is not initialised (or was detached)", op);
    return DRAGON_SUCCESS;
}

dragonError_t explain_pool_not_local(const PoolRef& pool, const char* op) {
    if (dragonError_t rc = pool_require_valid(pool, op)) return rc;
    const PoolIdentity* id = pool.identity.get();
    return failf(DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL,
                 "{}: pool '{}' is on another host (hostid {:#x}, runtime {}; this process: hostid {:#x}, runtime "
                 "{}) and cannot be used here",
                 op, id->name, id->hostid, id->rt_uid, this_hostid(), this_rt_uid());
}

dragonError_t pool_require_local(const PoolRef& pool, const char* op) {
    PoolMapping* mapping = nullptr;
    return pool_require_local(pool, op, mapping);
}

dragonError_t pool_attributes(const PoolRef& pool, const char* op, PoolAttributes& out, bool who_is_alive) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    return mapping->attributes(out, who_is_alive);
}

dragonError_t pool_allocations(const PoolRef& pool, const char* op, std::optional<std::uint64_t> type,
                               std::vector<AllocationInfo>& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    return mapping->list(type, out);
}

dragonError_t pool_free_blocks(const PoolRef& pool, const char* op, std::vector<FreeBlockCount>& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    return mapping->free_blocks(out);
}

dragonError_t pool_check(const PoolRef& pool, const char* op, CheckReport& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    return mapping->check(out);
}

dragonError_t pool_on_gpu(const PoolRef& pool, const char* op, bool& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    out = mapping->on_gpu();
    return DRAGON_SUCCESS;
}

dragonError_t pool_register_with_gpu(const PoolRef& pool, bool on) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(
            pool, on ? "process_local_register_with_gpu" : "process_local_unregister_with_gpu", mapping))
        return rc;
    return mapping->register_with_gpu(on);
}

dragonError_t pool_heap(const PoolRef& pool, const char* op, void** base, std::uint64_t& bytes) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    if (base != nullptr) {
        std::uint8_t* start = nullptr;
        if (dragonError_t rc = mapping->data_base(op, start)) return rc;
        *base = start;
    }
    bytes = mapping->heap_bytes();
    return DRAGON_SUCCESS;
}

dragonError_t pool_allocation_exists(const PoolRef& pool, const char* op, std::uint64_t id, bool& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    out = id != 0 && mapping->is_live(id);
    return DRAGON_SUCCESS;
}

dragonError_t pool_allocations_page(const PoolRef& pool, const char* op, std::optional<std::uint64_t> type,
                                    std::uint64_t& cursor, std::size_t max, std::vector<AllocationInfo>& out,
                                    bool& done) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    return mapping->list_page(type, cursor, max, out, done);
}

dragonError_t pool_allocation_info(const PoolRef& pool, const char* op, std::uint64_t id, AllocationInfo& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    return mapping->allocation_info(id, out);
}

dragonError_t pool_block_bytes_for(const PoolRef& pool, const char* op, std::size_t bytes, std::size_t& out) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, op, mapping)) return rc;
    out = mapping->block_bytes_for(bytes);
    return DRAGON_SUCCESS;
}

dragonError_t pool_create(PoolRef& out, std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                          const PoolOptions& options) {
    // Mode 0 means the default, 0600, in every API (Dragon's attr default; a zero-filled
    // C attr must not make a pool nobody can attach). One rule, here.
    const PoolOptions* effective = &options;
    PoolOptions with_default;
    if (options.mode == 0) {
        with_default = options;
        with_default.mode = default_pool_mode;
        effective = &with_default;
    }
    MappingRef mapping;
    if (dragonError_t rc = registry_create(name, bytes, m_uid, *effective, mapping)) return rc;
    out = PoolRef{std::move(mapping), nullptr};
    return DRAGON_SUCCESS;
}

// Local when the descriptor names this host and runtime: then map it.
dragonError_t pool_attach_identity(PoolRef& out, PoolIdentity identity) {
    if (identity.hostid == this_hostid() && identity.rt_uid == this_rt_uid()) {
        MappingRef mapping;
        if (dragonError_t rc = registry_attach(shm_name_for(identity.name), identity.nonce, mapping)) return rc;
        out = PoolRef{std::move(mapping), nullptr};
        return DRAGON_SUCCESS;
    }
    out = PoolRef{MappingRef(), std::make_shared<const PoolIdentity>(std::move(identity))};
    return DRAGON_SUCCESS;
}

dragonError_t pool_attach(PoolRef& out, std::span<const std::uint8_t> serialized) {
    PoolIdentity identity;
    if (dragonError_t rc = decode_pool(serialized, identity)) return rc;
    return pool_attach_identity(out, std::move(identity));
}

dragonError_t pool_attach_base64(PoolRef& out, std::string_view base64) {
    auto bytes = base64_decode(base64);
    if (!bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "pool descriptor '{}' is not valid base64",
                     base64.size() > 60 ? std::string(base64.substr(0, 60)) + "..." : std::string(base64));
    return pool_attach(out, *bytes);
}

dragonError_t pool_attach_env(PoolRef& out, const char* env_var) {
    if (env_var == nullptr) return fail(DRAGON_INVALID_ARGUMENT, "attach_from_env: the variable name is NULL");
    // The caller names the variable and owns the environment: a setenv racing with this
    // call is the caller's, as with getenv itself.
    const char* value = std::getenv(env_var);  // NOLINT(concurrency-mt-unsafe)
    if (value == nullptr)
        return failf(DRAGON_INVALID_ARGUMENT, "attach_from_env: environment variable '{}' is not set", env_var);
    auto bytes = base64_decode(value);
    if (!bytes)
        return failf(DRAGON_INVALID_ARGUMENT, "attach_from_env: environment variable '{}' does not hold base64",
                     env_var);
    return pool_attach(out, *bytes);
}

dragonError_t pool_attach_local(PoolRef& out, std::string_view name) {
    if (dragonError_t rc = validate_pool_name(name)) return rc;
    MappingRef mapping;
    if (dragonError_t rc = registry_attach(shm_name_for(name), 0, mapping)) return rc;
    out = PoolRef{std::move(mapping), nullptr};
    return DRAGON_SUCCESS;
}

dragonError_t pool_list_local(std::vector<std::string>& names) {
    names.clear();
    DIR* dir = ::opendir(std::string(k_shm_dir).c_str());
    if (dir == nullptr) return fail_errno(DRAGON_MEMORY_ERRNO, errno, fmt::format("opendir('{}')", k_shm_dir));
    // readdir is unsafe only on a DIR* that threads share; this one is the call's own.
    while (dirent* entry = ::readdir(dir)) {  // NOLINT(concurrency-mt-unsafe)
        std::string_view file(entry->d_name);
        std::string_view base = base_name_of(file);  // empty: not a pool's object
        if (base.empty() || base.size() > k_max_name_len) continue;
        names.emplace_back(base);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return DRAGON_SUCCESS;
}

dragonError_t pool_force_remove(std::string_view name) {
    if (dragonError_t rc = validate_pool_name(name)) return rc;
    // A pool whose creator is still formatting it is not damaged, only unfinished.
    if (dragonError_t rc = PoolMapping::refuse_if_being_created(shm_name_for(name))) return rc;
    // A valid pool is destroyed properly but without waiting for its lock: a stopped
    // holder must not keep --force from removing it.
    PoolRef pool;
    PoolMapping* mapping = nullptr;
    if (pool_attach_local(pool, name) == DRAGON_SUCCESS &&
        pool_require_local(pool, "force_remove", mapping) == DRAGON_SUCCESS && mapping->destroy(true) == DRAGON_SUCCESS)
        return DRAGON_SUCCESS;
    std::string shm_name = shm_name_for(name);
    if (int err = shm_unlink_name(shm_name); err != 0)
        return fail_errno(DRAGON_MEMORY_ERRNO, err, fmt::format("removing shm object '{}'", shm_name));
    return DRAGON_SUCCESS;
}

dragonError_t pool_serialize(const PoolRef& pool, std::vector<std::uint8_t>& out, bool with_secret) {
    if (dragonError_t rc = pool_require_valid(pool, "pool_serialize")) return rc;
    if (pool.mapping) {
        if (dragonError_t rc = pool.mapping.get()->check_usable("pool_serialize")) return rc;
    }
    PoolIdentity identity;
    if (dragonError_t rc =
            identity_to_serialize(*identity_of(pool), static_cast<bool>(pool.mapping), with_secret, identity))
        return rc;
    out = encode_pool(identity);
    return DRAGON_SUCCESS;
}

dragonError_t pool_destroy(PoolRef& pool) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, "pool_destroy", mapping)) return rc;
    if (dragonError_t rc = mapping->destroy()) return rc;
    pool = PoolRef{};
    return DRAGON_SUCCESS;
}

dragonError_t pool_clone(PoolRef& out, const PoolRef& pool) {
    if (dragonError_t rc = pool_require_valid(pool, "pool_descr_clone")) return rc;
    if (pool.mapping) {
        if (dragonError_t rc = pool.mapping.get()->check_usable("pool_descr_clone")) return rc;
    }
    out = pool;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
