// Process-local pools (process_local.hpp): the owner word in the pool header, and the
// list of pools this process destroys at normal exit.
#include "descr/process_local.hpp"

#include "descr/mapped_pool.hpp"
#include "descr/operations.hpp"
#include "os/error.hpp"
#include "pool/pool_creator.hpp"
#include "pool/pool_mapping.hpp"
#include "pool/robust_lock.hpp"

#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <vector>

namespace dragonmem::detail {

namespace {

// The pools this process registered, kept attached until exit. Leaked on purpose, like
// the descriptor tables: the atexit handler may run after static destructors.
struct OwnedPools {
    std::mutex mutex;
    std::vector<PoolRef> pools;
};

OwnedPools& owned() {
    static auto* list = new OwnedPools;
    return *list;
}

// At normal exit: every pool still owned by this process (deregistered ones and those
// taken over are not) is destroyed. A forked child inherits the list and the handler,
// but not the ownership: its process word differs, so it destroys nothing.
void destroy_owned_at_exit() noexcept {
    OwnedPools& list = owned();
    std::lock_guard<std::mutex> hold(list.mutex);
    const std::uint64_t me = current_process_word();
    for (PoolRef& pool : list.pools) {
        PoolMapping* mapping = pool.mapping.get();
        if (mapping == nullptr || mapping->check_usable("process-local exit") != DRAGON_SUCCESS) continue;
        if (mapping->local_owner() != me) continue;
        (void)pool_destroy(pool);
    }
    list.pools.clear();
}

void remember(const PoolRef& pool) {
    static std::once_flag registered;
    std::call_once(registered, [] { std::atexit(destroy_owned_at_exit); });
    OwnedPools& list = owned();
    std::lock_guard<std::mutex> hold(list.mutex);
    for (const PoolRef& known : list.pools)
        if (known.mapping.get() == pool.mapping.get()) return;
    list.pools.push_back(pool);  // a counted copy: the pool stays mapped until exit
}

void forget(const PoolRef& pool) noexcept {
    OwnedPools& list = owned();
    std::lock_guard<std::mutex> hold(list.mutex);
    std::erase_if(list.pools, [&](const PoolRef& known) { return known.mapping.get() == pool.mapping.get(); });
}

bool owner_is_dead(std::uint64_t word, std::uint64_t pid_ns) noexcept {
    CreatorRecord record{};
    record.owner = word;
    record.pid_ns = pid_ns;
    return creator_state(record, this_pid_namespace()) == CreatorState::dead;
}

}  // namespace

dragonError_t pool_register_process_local(const PoolRef& pool) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, "register_process_local_pool", mapping)) return rc;
    const std::uint64_t me = current_process_word();
    if ((me >> 32) == 0)
        return failf(DRAGON_FAILURE,
                     "register_process_local_pool: pool '{}': /proc/{}/stat cannot be read, so this process's start "
                     "time (what tells it from a later process with its pid) is unknown",
                     mapping->identity()->name, ::getpid());
    std::uint64_t seen = 0;
    // One CAS: from no owner, or from a dead owner (taken over), to this process.
    while (!mapping->exchange_local_owner(seen, me)) {
        if (seen == me) break;  // already ours
        if (!owner_is_dead(seen, mapping->local_owner_pid_ns()))
            return failf(DRAGON_INVALID_OPERATION,
                         "register_process_local_pool: pool '{}' is already process-local to live process {}",
                         mapping->identity()->name, static_cast<std::uint32_t>(seen));
        // `seen` is the dead owner's word: retry the CAS from it.
    }
    // Crash here: the pool is ours with pid_ns 0 (judged from the reader's namespace).
    mapping->set_local_owner_pid_ns(this_pid_namespace());
    try {
        remember(pool);
    } catch (...) {
        std::uint64_t mine = me;
        (void)mapping->exchange_local_owner(mine, 0);  // as it was: not registered
        throw;
    }
    return DRAGON_SUCCESS;
}

dragonError_t pool_deregister_process_local(const PoolRef& pool) {
    PoolMapping* mapping = nullptr;
    if (dragonError_t rc = pool_require_local(pool, "deregister_process_local_pool", mapping)) return rc;
    std::uint64_t expected = current_process_word();
    if (!mapping->exchange_local_owner(expected, 0)) {
        if (expected == 0)
            return failf(DRAGON_INVALID_OPERATION, "deregister_process_local_pool: pool '{}' is not process-local",
                         mapping->identity()->name);
        return failf(DRAGON_INVALID_OPERATION,
                     "deregister_process_local_pool: pool '{}' is process-local to process {}, not to this one ({})",
                     mapping->identity()->name, static_cast<std::uint32_t>(expected), ::getpid());
    }
    // Crash between the CAS and here: the pool is simply no longer process-local.
    mapping->set_local_owner_pid_ns(0);
    forget(pool);
    return DRAGON_SUCCESS;
}

dragonError_t pool_create_process_local(PoolRef& out, std::string_view name, std::size_t bytes, std::uint64_t m_uid,
                                        const PoolOptions& options) {
    PoolRef made;
    if (dragonError_t rc = pool_create(made, name, bytes, m_uid, options)) return rc;
    // A crash between create and register leaves an ordinary pool (not an orphan that
    // `destroy --orphaned` would find): the window of any create.
    dragonError_t rc = DRAGON_FAILURE;
    try {
        rc = pool_register_process_local(made);
    } catch (...) {
        (void)pool_destroy(made);
        throw;
    }
    if (rc != DRAGON_SUCCESS) {
        const std::string why = last_error_message();
        (void)pool_destroy(made);
        return failf(rc, "create_process_local_pool: {}; the pool was destroyed again", why);
    }
    out = std::move(made);
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
