/* dragonmem's extensions to Dragon's C API: what <dragon/managed_memory.h> cannot say
 * without changing Dragon's types. C11 and C++; link with -ldragonmem. */
#ifndef DRAGONMEM_C_EXTENSIONS_H
#define DRAGONMEM_C_EXTENSIONS_H

#include <dragon/managed_memory.h>
#include <dragonmem/version.h> /* DRAGONMEM_VERSION_*, dragonmem_version() */

#ifdef __cplusplus
extern "C" {
#endif

/* Flags for dragonmem_memory_pool_create_ext. */

/* Back the whole pool with memory at creation (posix_fallocate; about 0.2 s per GiB):
 * creation fails with DRAGON_OUT_OF_SPACE if /dev/shm cannot hold it, and no page of the
 * pool can fault later. Without it the pool is sparse: the library backs the pages it
 * touches itself (an allocation fails with DRAGON_OUT_OF_SPACE when /dev/shm is full),
 * but a process's first touch of its allocation's pages is then a SIGBUS. */
#define DRAGONMEM_POOL_CREATE_RESERVE 0x1u

/* dragon_memory_pool_create with creation flags (DRAGONMEM_POOL_CREATE_*, or 0 for
 * exactly dragon_memory_pool_create). Unknown flag bits: DRAGON_INVALID_ARGUMENT. */
dragonError_t dragonmem_memory_pool_create_ext(dragonMemoryPoolDescr_t* pool_descr, size_t bytes,
                                               const char* base_name, const dragonM_UID_t m_uid,
                                               const dragonMemoryPoolAttr_t* attr, unsigned int flags);

#ifdef __cplusplus
}
#endif

#endif /* DRAGONMEM_C_EXTENSIONS_H */
