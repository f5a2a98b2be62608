// The fork handlers: every process-local lock of the library is taken before fork() and
// released on both sides (the order and the reasons are in fork_safety.hpp).
#include "pool/fork_safety.hpp"

#include "descr/checksum.hpp"
#include "os/host_identity.hpp"
#include "pool/device_region.hpp"

#include <pthread.h>

#include <atomic>

namespace dragonmem::detail {

namespace {

void before_fork() noexcept {
    // One-time initialisations first: none of them takes a lock below.
    (void)this_hostid();
    (void)this_rt_uid();
    (void)crc32c(nullptr, 0);
    thread_caches_settle_for_fork();
    // Then the locks, in the fixed order.
    registry_lock_for_fork();
    graveyard_lock_for_fork();
    handle_tables_lock_for_fork();
    device_regions_lock_for_fork();
}

void after_fork_in_parent() noexcept {
    device_regions_unlock_after_fork();
    handle_tables_unlock_after_fork();
    graveyard_unlock_after_fork();
    registry_unlock_after_fork();
}

void after_fork_in_child() noexcept {
    device_regions_unlock_after_fork();
    device_regions_forget_after_fork();
    handle_tables_unlock_after_fork();
    graveyard_unlock_after_fork();
    registry_unlock_after_fork();
    owner_identity_forget_after_fork();
    thread_caches_forget_after_fork();
}

std::atomic<bool> g_armed{false};

// At load time, before any thread of the program can be inside the library (a static
// archive keeps this file because mapping_registry.cpp calls fork_handlers_arm).
[[gnu::constructor]] void arm_at_load() { fork_handlers_arm(); }

}  // namespace

void fork_handlers_arm() noexcept {
    if (g_armed.exchange(true, std::memory_order_acq_rel)) return;
    // Fails only without memory for the handler record: forks then stay unprotected, as
    // before; nothing else depends on it.
    (void)pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

}  // namespace dragonmem::detail
