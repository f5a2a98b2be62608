// fork() and the library's process-local locks.
//
// fork() copies only the thread that calls it. A lock another thread held at that
// instant stays held for ever in the child, whose first library call then hangs on it
// (a child of a busy multi-threaded parent hung in 4-6 of 300 forks on the registry
// mutex). So around every fork (pthread_atfork, registered once when the library is
// loaded) the forking thread:
//   prepare: finishes every lazy one-time initialisation (a function-local static being
//            initialised by another thread would likewise stay "in progress" in the
//            child), then takes every lock, in one fixed order: the mapping registry,
//            the graveyard of retired mappings, the pool descriptor table, the memory
//            descriptor table, the table of GPU pools' device regions. Where one of
//            these is ever held while another is taken, it is in this order
//            (registry_attach: registry, then graveyard in make(); registry_create: the
//            registry, then the device regions for a GPU pool),
//            so taking them all cannot deadlock against a thread of the library;
//   parent:  releases them, in reverse order;
//   child:   releases them likewise (the child's copies were taken by this very thread),
//            then forgets what belonged to the parent's threads: this thread's cached
//            owner word (the child's thread has another id), its thread caches (their
//            entries and blocks are the parent's; see pool_caches.cpp) and the GPU
//            device regions the parent opened or allocated (device_region.hpp).
// Locks in shared memory (each pool's lock) are not process-local: a parent thread
// holding one at the fork releases it as usual, and the child waits for that.
//
// No handler, and nothing a handler waits for, may call pthread_atfork: glibc holds its
// fork-handler lock while running the handlers.
#pragma once

namespace dragonmem::detail {

// Registers the handlers once (at library load; later calls do nothing).
void fork_handlers_arm() noexcept;

// Each lock's owner provides its pair; only the fork handlers call them.
void registry_lock_for_fork() noexcept;  // mapping_registry.cpp
void registry_unlock_after_fork() noexcept;
void graveyard_lock_for_fork() noexcept;  // pool_mapping.cpp
void graveyard_unlock_after_fork() noexcept;
void handle_tables_lock_for_fork() noexcept;  // c_api_handles.cpp
void handle_tables_unlock_after_fork() noexcept;
// device_regions_lock_for_fork and the rest: device_region.hpp.

// One-time initialisations to finish before a fork, and what a child forgets.
void thread_caches_settle_for_fork() noexcept;  // thread_cache.cpp
void thread_caches_forget_after_fork() noexcept;
void owner_identity_forget_after_fork() noexcept;  // robust_lock.cpp

}  // namespace dragonmem::detail
