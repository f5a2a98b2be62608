/* dragonmem's C API: source-compatible with DragonHPC's <dragon/managed_memory.h>.
 * Same types, enum values and signatures; every call returns a dragonError_t and, on
 * failure, leaves a message for dragon_getlasterrstr(). See libdragonmem(3). */
#ifndef HAVE_DRAGON_MEMORY_H
#define HAVE_DRAGON_MEMORY_H

#include <sys/stat.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdbool.h>
#include <dragon/return_codes.h>
#include <dragon/shared_lock.h>
#include <dragon/global_types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRAGON_MEMORY_TEMPORARY_TIMEOUT_CONST 300

static const int DRAGON_MEMORY_TEMPORARY_TIMEOUT_SECS = DRAGON_MEMORY_TEMPORARY_TIMEOUT_CONST;
static const timespec_t DRAGON_MEMORY_TEMPORARY_TIMEOUT = {DRAGON_MEMORY_TEMPORARY_TIMEOUT_CONST, 0};

/* SHM, HUGEPAGE (the heap in a hugetlbfs file) and GPU (the data in CUDA device memory,
 * when the library is built with CUDA) are backed here; FILE and PRIVATE are rejected by
 * pool_create with DRAGON_MEMORY_ILLEGAL_MEMTYPE. */
typedef enum dragonMemoryPoolType_st {
    DRAGON_MEMORY_TYPE_SHM = 0,
    DRAGON_MEMORY_TYPE_HUGEPAGE,
    DRAGON_MEMORY_TYPE_GPU,
    DRAGON_MEMORY_TYPE_FILE,
    DRAGON_MEMORY_TYPE_PRIVATE
} dragonMemoryPoolType_t;

/* Recorded and reported; pools do not grow (as in Dragon, where it is ignored). */
typedef enum dragonMemoryPoolGrowthType_st {
    DRAGON_MEMORY_GROWTH_NONE = 0,
    DRAGON_MEMORY_GROWTH_UNLIMITED,
    DRAGON_MEMORY_GROWTH_CAPPED
} dragonMemoryPoolGrowthType_t;

/* Any integer value is accepted as an allocation type; these are the named ones. */
typedef enum dragonMemoryAllocationType_st {
    DRAGON_MEMORY_ALLOC_DATA = 0,
    DRAGON_MEMORY_ALLOC_CHANNEL,
    DRAGON_MEMORY_ALLOC_CHANNEL_BUFFER,
    DRAGON_MEMORY_ALLOC_BOOTSTRAP
} dragonMemoryAllocationType_t;

/* Pool attributes. Fields marked read-only are filled by dragon_memory_get_attr and
 * ignored by dragon_memory_pool_create. */
typedef struct dragonMemoryPoolAttr_st {
    size_t allocatable_data_size;      /* read-only: heap size (a power of two) */
    size_t total_data_size;            /* read-only: size of the shm object incl. metadata */
    size_t free_space;                 /* read-only: free bytes in the heap */
    double utilization_pct;            /* read-only: 100 * used / allocatable */
    size_t data_min_block_size;        /* requested min block (default 32, rounded up to 2^k) */
    size_t max_allocations;            /* manifest capacity (default: number of min blocks, at most 1048576) */
    size_t waiters_for_manifest;       /* read-only: 1 if a caller waited for memory or a slot since the last free */
    size_t manifest_entries;           /* read-only: live allocations */
    size_t max_manifest_entries;       /* read-only: most live allocations seen at once */
    size_t manifest_allocated_size;    /* read-only: bytes of the manifest */
    size_t manifest_table_size;        /* read-only: bytes of the manifest's record table */
    size_t manifest_heap_size;         /* read-only: bytes of the heap's own metadata */
    size_t segment_size;               /* recorded; pools do not grow */
    size_t max_size;                   /* recorded; pools do not grow */
    size_t max_allocatable_block_size; /* read-only: largest block of the empty pool */
    size_t n_segments;                 /* must be 0 */
    dragonULInt gpu_device_id;         /* GPU pools: the CUDA device (ordinal) of the data; recorded for others */
    size_t ipc_handle_size;            /* read-only: a GPU pool's CUDA IPC handle size (64), else 0 */
    int numa_node;                     /* node the pool's pages are bound to; -1: no preference */
    dragonLockKind_t lock_type;        /* recorded; one crash-safe lock kind is used */
    dragonMemoryPoolType_t mem_type;   /* DRAGON_MEMORY_TYPE_SHM, _HUGEPAGE or _GPU */
    dragonMemoryPoolGrowthType_t growth_type; /* recorded */
    mode_t mode;                       /* permission bits of the pool (default 0600, umask ignored; 0 means 0600) */
    size_t npre_allocs;                /* entries in pre_allocs */
    size_t* pre_allocs;                /* pre_allocs[n]: blocks of min_block << n to cache at creation */
    char* mname;                       /* read-only: the pool's shm object name (freed by attr_destroy) */
    char** names;                      /* read-only: 1 + n_segments names (freed by attr_destroy) */
} dragonMemoryPoolAttr_t;

/* Opaque handles into this process's descriptor tables. */
typedef struct dragonMemoryPoolDescr_st {
    int _original;
    dragonM_UID_t _idx;
    dragonRT_UID_t _rt_idx;
} dragonMemoryPoolDescr_t;

typedef struct dragonMemoryDescr_st {
    int _original;
    dragonULInt _idx;
} dragonMemoryDescr_t;

typedef struct dragonMemoryPoolSerial_st {
    size_t len;
    uint8_t* data;
} dragonMemoryPoolSerial_t;

typedef struct dragonMemorySerial_st {
    size_t len;
    uint8_t* data;
} dragonMemorySerial_t;

typedef struct dragonMemoryPoolAllocations_st {
    dragonULInt nallocs;
    dragonULInt* types;
    dragonULInt* ids;
} dragonMemoryPoolAllocations_t;

typedef struct dragonHeapStatsAllocationItem_st {
    size_t block_size;
    size_t num_blocks;
} dragonHeapStatsAllocationItem_t;

/* Attributes */
dragonError_t dragon_memory_attr_init(dragonMemoryPoolAttr_t* attr);
dragonError_t dragon_memory_attr_destroy(dragonMemoryPoolAttr_t* attr);
dragonError_t dragon_memory_get_attr(dragonMemoryPoolDescr_t* pool_descr, dragonMemoryPoolAttr_t* attr);

/* Pools */
dragonError_t dragon_memory_pool_create(dragonMemoryPoolDescr_t* pool_descr, size_t bytes, const char* base_name,
                                        const dragonM_UID_t m_uid, const dragonMemoryPoolAttr_t* attr);
dragonError_t dragon_memory_pool_destroy(dragonMemoryPoolDescr_t* pool_descr);
size_t dragon_memory_pool_max_serialized_len(void);
dragonError_t dragon_memory_pool_serialize(dragonMemoryPoolSerial_t* pool_ser, const dragonMemoryPoolDescr_t* pool_descr);
dragonError_t dragon_memory_pool_serial_free(dragonMemoryPoolSerial_t* pool_ser);
dragonError_t dragon_memory_pool_attach(dragonMemoryPoolDescr_t* pool_descr, const dragonMemoryPoolSerial_t* pool_ser);
dragonError_t dragon_memory_pool_attach_from_env(dragonMemoryPoolDescr_t* pool_descr, const char* env_var);
/* The pool whose serialized descriptor (base64) is in DRAGON_DEFAULT_PD, as in Dragon. */
dragonError_t dragon_memory_pool_attach_default(dragonMemoryPoolDescr_t* pool_descr);
dragonError_t dragon_memory_pool_detach(dragonMemoryPoolDescr_t* pool_descr);
dragonError_t dragon_memory_pool_descr_clone(dragonMemoryPoolDescr_t* newpool_descr, const dragonMemoryPoolDescr_t* oldpool_descr);
dragonError_t dragon_memory_pool_get_hostid(dragonMemoryPoolDescr_t* pool_descr, dragonULInt* hostid);
dragonError_t dragon_memory_pool_get_rt_uid(dragonMemoryPoolDescr_t* pool_descr, dragonULInt* rt_uid);
dragonError_t dragon_memory_pool_runtime_is_local(dragonMemoryPoolDescr_t* pool_descr, bool* runtime_is_local);
dragonError_t dragon_memory_pool_get_uid_fname(const dragonMemoryPoolSerial_t* pool_ser, dragonULInt* uid_out, char** fname_out);
bool dragon_memory_pool_is_local(const dragonMemoryPoolDescr_t* pool_descr);
dragonError_t dragon_memory_pool_muid(dragonMemoryPoolDescr_t* pool_descr, dragonULInt* muid);

/* Pool statistics and introspection */
dragonError_t dragon_memory_pool_get_free_size(dragonMemoryPoolDescr_t* pool_descr, uint64_t* free_size);
dragonError_t dragon_memory_pool_get_total_size(dragonMemoryPoolDescr_t* pool_descr, uint64_t* total_size);
dragonError_t dragon_memory_pool_get_utilization_pct(dragonMemoryPoolDescr_t* pool_descr, double* utilization_pct);
dragonError_t dragon_memory_pool_get_num_block_sizes(dragonMemoryPoolDescr_t* pool_descr, size_t* num_block_sizes);
/* free_blocks must hold num_block_sizes items, smallest block size first. */
dragonError_t dragon_memory_pool_get_free_blocks(dragonMemoryPoolDescr_t* pool_descr, dragonHeapStatsAllocationItem_t* free_blocks);
dragonError_t dragon_memory_pool_get_pointer(const dragonMemoryPoolDescr_t* pool_descr, void** base_ptr);
dragonError_t dragon_memory_pool_get_size(const dragonMemoryPoolDescr_t* pool_descr, size_t* size);

/* Listing allocations */
dragonError_t dragon_memory_pool_get_allocations(const dragonMemoryPoolDescr_t* pool_descr, dragonMemoryPoolAllocations_t* allocs);
dragonError_t dragon_memory_pool_get_type_allocations(const dragonMemoryPoolDescr_t* pool_descr, const dragonMemoryAllocationType_t type,
                                                      dragonMemoryPoolAllocations_t* allocs);
dragonError_t dragon_memory_pool_allocations_free(dragonMemoryPoolAllocations_t* allocs);
dragonError_t dragon_memory_pool_allocations_destroy(dragonMemoryPoolAllocations_t* allocs);
dragonError_t dragon_memory_pool_allocation_exists(dragonMemoryDescr_t* mem_descr, int* flag);
dragonError_t dragon_memory_get_alloc_memdescr(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                               const dragonULInt id, const dragonULInt offset, const dragonULInt* bytes_size);

/* Allocations. A NULL timer waits forever. */
dragonError_t dragon_memory_alloc(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr, const size_t bytes);
dragonError_t dragon_memory_alloc_blocking(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                           const size_t bytes, const timespec_t* timer);
dragonError_t dragon_memory_alloc_type(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                       const size_t bytes, const dragonMemoryAllocationType_t type);
dragonError_t dragon_memory_alloc_type_blocking(dragonMemoryDescr_t* mem_descr, const dragonMemoryPoolDescr_t* pool_descr,
                                                const size_t bytes, const dragonMemoryAllocationType_t type,
                                                const timespec_t* timer);
dragonError_t dragon_memory_free(dragonMemoryDescr_t* mem_descr);

/* Memory descriptors */
dragonError_t dragon_memory_get_size(const dragonMemoryDescr_t* mem_descr, size_t* bytes);
dragonError_t dragon_memory_get_pool(const dragonMemoryDescr_t* mem_descr, dragonMemoryPoolDescr_t* pool_descr);
dragonError_t dragon_memory_get_pointer(const dragonMemoryDescr_t* mem_descr, void** ptr);
dragonError_t dragon_memory_id(dragonMemoryDescr_t* mem_descr, uint64_t* id);
dragonError_t dragon_memory_from_id(const dragonMemoryPoolDescr_t* pool_descr, uint64_t id, dragonMemoryDescr_t* mem_descr);
size_t dragon_memory_max_serialized_len(void);
dragonError_t dragon_memory_serialize(dragonMemorySerial_t* mem_ser, const dragonMemoryDescr_t* mem_descr);
dragonError_t dragon_memory_attach(dragonMemoryDescr_t* mem_descr, const dragonMemorySerial_t* mem_ser);
dragonError_t dragon_memory_detach(dragonMemoryDescr_t* mem_descr);
dragonError_t dragon_memory_serial_free(dragonMemorySerial_t* mem_ser);
dragonError_t dragon_memory_descr_clone(dragonMemoryDescr_t* newmem_descr, const dragonMemoryDescr_t* oldmem_descr,
                                        ptrdiff_t offset, size_t* custom_length);
dragonError_t dragon_memory_modify_size(dragonMemoryDescr_t* mem_descr, const size_t new_size, const timespec_t* timeout);
dragonError_t dragon_memory_get_ptr_info(const dragonMemoryDescr_t* mem_descr, void** ptr, size_t* size);

/* The bytes of allocations (views). Both descriptors local; sizes are checked before any
 * byte moves, so a failure changes nothing. */
dragonError_t dragon_memory_hash(dragonMemoryDescr_t* mem_descr, dragonULInt* hash_value);
dragonError_t dragon_memory_equal(dragonMemoryDescr_t* mem_descr1, dragonMemoryDescr_t* mem_descr2, bool* result);
dragonError_t dragon_memory_is(dragonMemoryDescr_t* mem_descr1, dragonMemoryDescr_t* mem_descr2, bool* result);
dragonError_t dragon_memory_copy_size(dragonMemoryDescr_t* from_mem, dragonMemoryDescr_t* to_mem, size_t size);
dragonError_t dragon_memory_copy(dragonMemoryDescr_t* from_mem, dragonMemoryDescr_t* to_mem);
/* Allocates to_mem in to_pool (waiting up to *timeout; NULL: forever) and copies into it. */
dragonError_t dragon_memory_copy_to_pool(dragonMemoryDescr_t* from_mem, dragonMemoryDescr_t* to_mem,
                                         dragonMemoryPoolDescr_t* to_pool, const timespec_t* timeout);
/* Zeroes [start, stop); stop is clamped to the size (SIZE_MAX: to the end). */
dragonError_t dragon_memory_clear(dragonMemoryDescr_t* mem_descr, size_t start, size_t stop);

/* Process-local pools: the pool records this process as its owner and is destroyed when
 * the process exits normally (atexit); one whose owner died is an orphan (dragonmem ls:
 * process_local, owner_alive false). The timeouts are accepted; nothing here waits. */
dragonError_t dragon_create_process_local_pool(dragonMemoryPoolDescr_t* pool, size_t bytes, const char* name,
                                               dragonMemoryPoolAttr_t* attr, const timespec_t* timeout);
dragonError_t dragon_register_process_local_pool(dragonMemoryPoolDescr_t* pool, const timespec_t* timeout);
dragonError_t dragon_deregister_process_local_pool(dragonMemoryPoolDescr_t* pool, const timespec_t* timeout);
/* Page-lock a local host pool's heap for GPU transfers in this process (cudaHostRegister,
 * for the pool's gpu_device_id), and undo it. Every page of the heap gets memory. Needs a
 * library built with CUDA; a GPU pool is refused (its bytes are device memory already). */
dragonError_t dragon_memory_pool_process_local_register_with_gpu(dragonMemoryPoolDescr_t* pool_descr);
dragonError_t dragon_memory_pool_process_local_unregister_with_gpu(dragonMemoryPoolDescr_t* pool_descr);

/* Not provided: dragon_memory_manifest_info and dragon_memory_set_debug_flag (Dragon's
 * internal debugging), and the GPU registration calls
 * dragon_memory_pool_process_local_{register,unregister}_with_gpu (see libdragonmem(3)). */

/* dragonmem extension: verify the pool invariants (libdragonmem(3); in the sources,
 * docs/design.md section 4.12). On a broken pool returns DRAGON_FAILURE and the message
 * lists what is wrong. */
dragonError_t dragonmem_pool_check(dragonMemoryPoolDescr_t* pool_descr);

#ifdef __cplusplus
}
#endif

#endif
