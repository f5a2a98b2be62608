/* A C11 program against the installed-style header <dragon/managed_memory.h>: it must
 * compile as strict C (-std=c11 -Wall -Wextra -pedantic) and link with libdragonmem.
 * It walks the main C API paths a Dragon user takes. Own check macros; the last line
 * is "c_api: N passed, M failed" and the exit status is non-zero when M > 0. */
#include <dragon/managed_memory.h>
#include <dragonmem/c_extensions.h>
#include <dragonmem/lock_wait.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Dragon's numeric values, pinned at compile time. */
_Static_assert(DRAGON_SUCCESS == 0, "DRAGON_SUCCESS");
_Static_assert(DRAGON_INVALID_ARGUMENT == 1, "DRAGON_INVALID_ARGUMENT");
_Static_assert(DRAGON_FAILURE == 8, "DRAGON_FAILURE");
_Static_assert(DRAGON_TIMEOUT == 9, "DRAGON_TIMEOUT");
_Static_assert(DRAGON_OUT_OF_SPACE == 19, "DRAGON_OUT_OF_SPACE");
_Static_assert(DRAGON_KEY_NOT_FOUND == 20, "DRAGON_KEY_NOT_FOUND");
_Static_assert(DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE == 58, "TOO_LARGE");
_Static_assert(DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE == 59, "NOT_AVAILABLE");
_Static_assert(DRAGON_DYNHEAP_INVALID_POINTER == 63, "INVALID_POINTER");
_Static_assert(DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL == 70, "NONLOCAL");
_Static_assert(DRAGON_MEMORY_ERRNO == 71, "MEMORY_ERRNO");
_Static_assert(DRAGON_MEMORY_FILENAME_ERROR == 72, "FILENAME_ERROR");
_Static_assert(DRAGON_MAP_KEY_NOT_FOUND == 83, "MAP_KEY_NOT_FOUND");
_Static_assert(DRAGON_OBJECT_DESTROYED == 115, "OBJECT_DESTROYED");
_Static_assert(DRAGON_MEMORY_TYPE_SHM == 0 && DRAGON_MEMORY_TYPE_PRIVATE == 4, "pool types");
_Static_assert(DRAGON_MEMORY_GROWTH_NONE == 0 && DRAGON_MEMORY_GROWTH_CAPPED == 2, "growth types");
_Static_assert(DRAGON_MEMORY_ALLOC_DATA == 0 && DRAGON_MEMORY_ALLOC_BOOTSTRAP == 3, "allocation types");
_Static_assert(DRAGON_LOCK_FIFO == 0 && DRAGON_LOCK_FIFO_LITE == 1 && DRAGON_LOCK_GREEDY == 2, "lock kinds");
_Static_assert(sizeof(dragonULInt) == 8 && sizeof(dragonM_UID_t) == 8 && sizeof(dragonRT_UID_t) == 8, "uids");

/* dragonMemoryPoolAttr_t field for field as Dragon's (its HEAD, with gpu_device_id,
 * ipc_handle_size and numa_node): the same offsets, so that code using offsets or a
 * Dragon-built object file agrees with us (LP64). */
#if defined(__LP64__)
#define ATTR_AT(field, offset) _Static_assert(offsetof(dragonMemoryPoolAttr_t, field) == (offset), #field)
ATTR_AT(allocatable_data_size, 0);
ATTR_AT(utilization_pct, 24);
ATTR_AT(n_segments, 120);
ATTR_AT(gpu_device_id, 128);
ATTR_AT(ipc_handle_size, 136);
ATTR_AT(numa_node, 144);
ATTR_AT(lock_type, 148);
ATTR_AT(mem_type, 152);
ATTR_AT(growth_type, 156);
ATTR_AT(mode, 160);
ATTR_AT(npre_allocs, 168);
ATTR_AT(pre_allocs, 176);
ATTR_AT(mname, 184);
ATTR_AT(names, 192);
_Static_assert(sizeof(dragonMemoryPoolAttr_t) == 200, "sizeof(dragonMemoryPoolAttr_t)");
#endif

/* Code written for Dragon's struct: designated initializers of the new fields compile. */
static const dragonMemoryPoolAttr_t g_designated = {
    .data_min_block_size = 64, .gpu_device_id = 0, .ipc_handle_size = 0, .numa_node = -1,
    .lock_type = DRAGON_LOCK_FIFO_LITE, .mem_type = DRAGON_MEMORY_TYPE_SHM, .mode = 0600};

static int g_passed = 0;
static int g_failed = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (cond) {                                                                 \
            ++g_passed;                                                             \
        } else {                                                                    \
            ++g_failed;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

/* expr must return `expected`; a failure must leave a non-empty last error. */
#define CHECK_RC(expr, expected)                                                                      \
    do {                                                                                              \
        dragonError_t rc_ = (expr);                                                                   \
        dragonError_t want_ = (expected);                                                             \
        char* err_ = rc_ != DRAGON_SUCCESS ? dragon_getlasterrstr() : NULL;                          \
        if (rc_ == want_ && (want_ == DRAGON_SUCCESS || (err_ != NULL && err_[0] != '\0'))) {        \
            ++g_passed;                                                                               \
        } else {                                                                                      \
            ++g_failed;                                                                               \
            fprintf(stderr, "%s:%d: %s returned %s (%d), expected %s (%d); last error: '%s'\n",       \
                    __FILE__, __LINE__, #expr, dragon_getrcstr(rc_), (int)rc_, dragon_getrcstr(want_), \
                    (int)want_, err_ ? err_ : "");                                                    \
        }                                                                                             \
        free(err_);                                                                                   \
    } while (0)

/* Pool names this program used; unlinked at exit whatever happened. */
static char g_names[8][32];
static int g_name_count = 0;

static void cleanup_names(void) {
    char path[320];
    for (int i = 0; i < g_name_count; ++i) {
        snprintf(path, sizeof path, "/dev/shm/dragonmem.%s", g_names[i]);
        unlink(path);
    }
}

static const char* new_pool_name(void) {
    if (g_name_count >= 8) abort();
    snprintf(g_names[g_name_count], sizeof g_names[0], "dmc%ld_%d", (long)getpid(), g_name_count);
    return g_names[g_name_count++];
}

static int shm_exists(const char* name) {
    char path[320];
    snprintf(path, sizeof path, "/dev/shm/dragonmem.%s", name);
    return access(path, F_OK) == 0;
}

static void test_rc_strings(void) {
    CHECK(strcmp(dragon_getrcstr(DRAGON_SUCCESS), "DRAGON_SUCCESS") == 0);
    CHECK(strcmp(dragon_getrcstr(DRAGON_MAP_KEY_NOT_FOUND), "DRAGON_MAP_KEY_NOT_FOUND") == 0);
    CHECK(strcmp(dragon_get_rc_string(DRAGON_TIMEOUT), "DRAGON_TIMEOUT") == 0);
    CHECK(dragon_getrcstr((dragonError_t)9999) != NULL);
}

static void test_pool_lifecycle(void) {
    const char* name = new_pool_name();
    dragonMemoryPoolAttr_t attr;
    CHECK_RC(dragon_memory_attr_init(&attr), DRAGON_SUCCESS);
    attr.mode = 0640;
    attr.max_allocations = 64;
    dragonMemoryPoolDescr_t pool;
    CHECK_RC(dragon_memory_pool_create(&pool, 40000, name, 17, &attr), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_attr_destroy(&attr), DRAGON_SUCCESS);
    CHECK(shm_exists(name));
    CHECK(dragon_memory_pool_is_local(&pool));

    struct stat st;
    char path[320];
    snprintf(path, sizeof path, "/dev/shm/dragonmem.%s", name);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);

    dragonMemoryPoolAttr_t got;
    CHECK_RC(dragon_memory_get_attr(&pool, &got), DRAGON_SUCCESS);
    CHECK(got.allocatable_data_size == 65536);
    CHECK(got.max_allocations == 64);
    /* One 64 B record per allocation; the manifest region is page-rounded. */
    CHECK(got.manifest_table_size == 64 * 64);
    CHECK(got.manifest_allocated_size >= got.manifest_table_size);
    CHECK(got.mname != NULL && strstr(got.mname, name) != NULL);
    dragon_memory_attr_destroy(&got);

    dragonULInt muid = 0;
    CHECK_RC(dragon_memory_pool_muid(&pool, &muid), DRAGON_SUCCESS);
    CHECK(muid == 17);

    /* Allocate with a type outside the named ones (any integer is accepted). */
    dragonMemoryDescr_t mem;
    CHECK_RC(dragon_memory_alloc_type(&mem, &pool, 1000, (dragonMemoryAllocationType_t)12345), DRAGON_SUCCESS);
    void* ptr = NULL;
    CHECK_RC(dragon_memory_get_pointer(&mem, &ptr), DRAGON_SUCCESS);
    CHECK(ptr != NULL);
    if (ptr) memset(ptr, 0xAB, 1000);
    size_t size = 0;
    CHECK_RC(dragon_memory_get_size(&mem, &size), DRAGON_SUCCESS);
    CHECK(size == 1000);
    uint64_t id = 0;
    CHECK_RC(dragon_memory_id(&mem, &id), DRAGON_SUCCESS);
    CHECK(id != 0);

    dragonMemoryPoolAllocations_t allocs;
    CHECK_RC(dragon_memory_pool_get_type_allocations(&pool, (dragonMemoryAllocationType_t)12345, &allocs),
             DRAGON_SUCCESS);
    CHECK(allocs.nallocs == 1 && allocs.ids[0] == id && allocs.types[0] == 12345);
    CHECK_RC(dragon_memory_pool_allocations_free(&allocs), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_pool_get_type_allocations(&pool, DRAGON_MEMORY_ALLOC_DATA, &allocs), DRAGON_SUCCESS);
    CHECK(allocs.nallocs == 0);
    CHECK_RC(dragon_memory_pool_allocations_destroy(&allocs), DRAGON_SUCCESS);

    /* Serialize the allocation and attach it: same bytes. */
    dragonMemorySerial_t ser;
    CHECK_RC(dragon_memory_serialize(&ser, &mem), DRAGON_SUCCESS);
    CHECK(ser.len > 0 && ser.len <= dragon_memory_max_serialized_len());
    dragonMemoryDescr_t attached;
    CHECK_RC(dragon_memory_attach(&attached, &ser), DRAGON_SUCCESS);
    void* ptr2 = NULL;
    CHECK_RC(dragon_memory_get_pointer(&attached, &ptr2), DRAGON_SUCCESS);
    CHECK(ptr2 == ptr);
    CHECK_RC(dragon_memory_detach(&attached), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_serial_free(&ser), DRAGON_SUCCESS);

    /* A view. */
    dragonMemoryDescr_t view;
    size_t len = 10;
    CHECK_RC(dragon_memory_descr_clone(&view, &mem, 500, &len), DRAGON_SUCCESS);
    void* vptr = NULL;
    CHECK_RC(dragon_memory_get_pointer(&view, &vptr), DRAGON_SUCCESS);
    CHECK(ptr != NULL && vptr == (char*)ptr + 500);
    len = 600;
    CHECK_RC(dragon_memory_descr_clone(&view, &mem, 500, &len), DRAGON_INVALID_ARGUMENT);

    /* from_id, too large, free, double free. */
    dragonMemoryDescr_t by_id;
    CHECK_RC(dragon_memory_from_id(&pool, id, &by_id), DRAGON_SUCCESS);
    dragonMemoryDescr_t big;
    CHECK_RC(dragon_memory_alloc(&big, &pool, 65537), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    timespec_t timeout = {0, 20 * 1000000L};
    CHECK_RC(dragon_memory_alloc_blocking(&big, &pool, 65537, &timeout), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    CHECK_RC(dragon_memory_alloc_blocking(&big, &pool, 64, &DRAGON_MEMORY_TEMPORARY_TIMEOUT), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_free(&big), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_free(&mem), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_free(&mem), DRAGON_MAP_KEY_NOT_FOUND);
    CHECK(dragon_memory_free(&by_id) != DRAGON_SUCCESS);

    /* Zero bytes. */
    dragonMemoryDescr_t zero;
    CHECK_RC(dragon_memory_alloc(&zero, &pool, 0), DRAGON_SUCCESS);
    uint64_t zid = 99;
    CHECK_RC(dragon_memory_id(&zero, &zid), DRAGON_SUCCESS);
    CHECK(zid == 0);
    CHECK_RC(dragon_memory_free(&zero), DRAGON_SUCCESS);

    /* Statistics: whole again. */
    uint64_t free_size = 0, total = 0;
    CHECK_RC(dragon_memory_pool_get_free_size(&pool, &free_size), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_pool_get_total_size(&pool, &total), DRAGON_SUCCESS);
    CHECK(free_size == 65536 && total == 65536);
    size_t nsizes = 0;
    CHECK_RC(dragon_memory_pool_get_num_block_sizes(&pool, &nsizes), DRAGON_SUCCESS);
    CHECK(nsizes == 12); /* 32 B .. 64 KiB */
    if (nsizes == 12) {
        dragonHeapStatsAllocationItem_t items[12];
        CHECK_RC(dragon_memory_pool_get_free_blocks(&pool, items), DRAGON_SUCCESS);
        CHECK(items[0].block_size == 32 && items[11].block_size == 65536 && items[11].num_blocks == 1);
    }
    double pct = -1;
    CHECK_RC(dragon_memory_pool_get_utilization_pct(&pool, &pct), DRAGON_SUCCESS);
    CHECK(pct == 0.0);
    CHECK_RC(dragonmem_pool_check(&pool), DRAGON_SUCCESS);

    /* Pool descriptors: serialize, attach (same mapping), uid/fname, env, detach. */
    dragonMemoryPoolSerial_t pser;
    CHECK_RC(dragon_memory_pool_serialize(&pser, &pool), DRAGON_SUCCESS);
    CHECK(pser.len > 0 && pser.len <= dragon_memory_pool_max_serialized_len());
    dragonMemoryPoolDescr_t pool2;
    CHECK_RC(dragon_memory_pool_attach(&pool2, &pser), DRAGON_SUCCESS);
    void* base1 = NULL;
    void* base2 = NULL;
    CHECK_RC(dragon_memory_pool_get_pointer(&pool, &base1), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_pool_get_pointer(&pool2, &base2), DRAGON_SUCCESS);
    CHECK(base1 != NULL && base1 == base2);
    dragonULInt uid = 0;
    char* fname = NULL;
    CHECK_RC(dragon_memory_pool_get_uid_fname(&pser, &uid, &fname), DRAGON_SUCCESS);
    CHECK(uid == 17 && fname != NULL && strstr(fname, name) != NULL);
    free(fname);
    CHECK_RC(dragon_memory_pool_detach(&pool2), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_pool_serial_free(&pser), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_pool_attach_from_env(&pool2, "DMTEST_C_SURELY_UNSET_VARIABLE"), DRAGON_INVALID_ARGUMENT);

    /* Errors: bad names and sizes. */
    dragonMemoryPoolDescr_t bad;
    CHECK_RC(dragon_memory_pool_create(&bad, 65536, "", 1, NULL), DRAGON_INVALID_ARGUMENT);
    CHECK_RC(dragon_memory_pool_create(&bad, 65536, "has/slash", 1, NULL), DRAGON_INVALID_ARGUMENT);
    {
        char* msg = dragon_getlasterrstr();
        CHECK(msg != NULL && strstr(msg, "has/slash") != NULL);
        free(msg);
    }
    CHECK_RC(dragon_memory_pool_create(&bad, 128, new_pool_name(), 1, NULL), DRAGON_INVALID_ARGUMENT);
    CHECK_RC(dragon_memory_pool_create(&bad, 4096, name, 1, NULL), DRAGON_MEMORY_ERRNO);

    /* Destroy: gone from /dev/shm, and the descriptor is dead. */
    CHECK_RC(dragon_memory_pool_destroy(&pool), DRAGON_SUCCESS);
    CHECK(!shm_exists(name));
    CHECK_RC(dragon_memory_alloc(&mem, &pool, 64), DRAGON_MAP_KEY_NOT_FOUND);
    CHECK(!dragon_memory_pool_is_local(&pool));
}

/* dragonmem's extension: creation flags (<dragonmem/c_extensions.h>). */
static void test_create_ext(void) {
    const char* name = new_pool_name();
    dragonMemoryPoolDescr_t pool;
    CHECK_RC(dragonmem_memory_pool_create_ext(&pool, 65536, name, 3, NULL, 0x80u), DRAGON_INVALID_ARGUMENT);
    CHECK(!shm_exists(name));
    CHECK_RC(dragonmem_memory_pool_create_ext(&pool, 65536, name, 3, NULL, DRAGONMEM_POOL_CREATE_RESERVE),
             DRAGON_SUCCESS);
    CHECK(shm_exists(name));
    dragonMemoryDescr_t mem;
    void* ptr = NULL;
    CHECK_RC(dragon_memory_alloc(&mem, &pool, 65536), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_get_pointer(&mem, &ptr), DRAGON_SUCCESS);
    if (ptr != NULL) memset(ptr, 0xA5, 65536); /* reserved: every page is backed */
    CHECK_RC(dragon_memory_free(&mem), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_pool_destroy(&pool), DRAGON_SUCCESS);
    CHECK(!shm_exists(name));
}

/* The lock-wait limit extension compiles as C and refuses what is not a timespec. */
static void test_lock_wait_limit(void) {
    struct timespec limit = {0, 250000000};
    struct timespec negative = {-1, 0};
    struct timespec too_many_ns = {0, 1000000000};
    CHECK(dragonmem_set_lock_wait_limit(&limit) == DRAGON_SUCCESS);
    CHECK(dragonmem_set_lock_wait_limit(&negative) == DRAGON_INVALID_ARGUMENT);
    CHECK(dragonmem_set_thread_lock_wait_limit(&too_many_ns) == DRAGON_INVALID_ARGUMENT);
    CHECK(dragonmem_set_thread_lock_wait_limit(NULL) == DRAGON_SUCCESS);
    dragonmem_clear_thread_lock_wait_limit();
    CHECK(dragonmem_set_lock_wait_limit(NULL) == DRAGON_SUCCESS);
}

/* A pool from the designated-initializer attr: its settings are the ones taken. */
static void test_designated_attr(void) {
    const char* name = new_pool_name();
    dragonMemoryPoolDescr_t pool;
    CHECK_RC(dragon_memory_pool_create(&pool, 40000, name, 18, &g_designated), DRAGON_SUCCESS);
    dragonMemoryPoolAttr_t got;
    CHECK_RC(dragon_memory_get_attr(&pool, &got), DRAGON_SUCCESS);
    CHECK(got.data_min_block_size == 64);
    CHECK(got.lock_type == DRAGON_LOCK_FIFO_LITE);
    CHECK(got.numa_node == -1);
    CHECK(got.ipc_handle_size == 0);
    CHECK_RC(dragon_memory_attr_destroy(&got), DRAGON_SUCCESS);
    CHECK_RC(dragon_memory_pool_destroy(&pool), DRAGON_SUCCESS);
}

int main(void) {
    atexit(cleanup_names);
    test_rc_strings();
    test_pool_lifecycle();
    test_designated_attr();
    test_create_ext();
    test_lock_wait_limit();
    printf("c_api: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed > 0 ? 1 : 0;
}
