/* Loads libdragonmem.so with dlopen(3), as a plugin host or a Python extension does
 * (this program is not linked with it), and runs pool create, alloc, write, free and
 * destroy through dlsym(3), in the main thread and in a thread started afterwards.
 *
 *   dlopen_probe LIBDRAGONMEM [HOG...]
 *
 * glibc keeps a little static TLS (about 1.5 KiB) for libraries loaded after start-up
 * whose thread-locals use the initial-exec model; when it is used up, dlopen of such a
 * library fails ("cannot allocate memory in static TLS block"), whatever memory is free.
 * Each HOG (tls_hog.c: 128 B of initial-exec thread-locals) is dlopen'ed first, in
 * order, until one fails: the static TLS is then used up, as other plugins or extension
 * modules may have done before a host loads dragonmem.
 * Prints "dlopen: ok ..." (exit 0) or "dlopen: FAIL ..." (exit 1). */
#include <dragon/managed_memory.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef dragonError_t (*create_fn)(dragonMemoryPoolDescr_t*, size_t, const char*, dragonM_UID_t,
                                   dragonMemoryPoolAttr_t*);
typedef dragonError_t (*pool_fn)(dragonMemoryPoolDescr_t*);
typedef dragonError_t (*alloc_fn)(dragonMemoryDescr_t*, const dragonMemoryPoolDescr_t*, const size_t);
typedef dragonError_t (*pointer_fn)(const dragonMemoryDescr_t*, void**);
typedef dragonError_t (*free_fn)(dragonMemoryDescr_t*);
typedef char* (*errstr_fn)(void);

static create_fn pool_create;
static pool_fn pool_destroy;
static alloc_fn mem_alloc;
static pointer_fn mem_pointer;
static free_fn mem_free;
static errstr_fn last_error;

static char pool_name[64];
static dragonMemoryPoolDescr_t pool;

/* Stores dlsym's answer in the function pointer at `fn` (POSIX guarantees that a data
 * pointer from dlsym converts; ISO C has no direct cast for it). */
static void symbol(void* lib, const char* name, void* fn, size_t fn_bytes) {
    void* sym = dlsym(lib, name);
    if (sym == NULL || fn_bytes != sizeof sym) {
        printf("dlopen: FAIL dlsym(%s): %s\n", name, sym == NULL ? dlerror() : "pointer size");
        exit(1);
    }
    memcpy(fn, &sym, sizeof sym);
}

static char main_failure[256];
static char thread_failure[256];

/* 100 rounds of alloc, write, free of 64 B and 4 KiB: NULL on success, else `why`
 * holding a message. */
static char* churn(char* why, size_t why_bytes) {
    for (int i = 0; i < 100; ++i) {
        for (size_t bytes = 64; bytes <= 4096; bytes *= 64) {
            dragonMemoryDescr_t mem;
            void* ptr = NULL;
            dragonError_t rc = mem_alloc(&mem, &pool, bytes);
            if (rc == DRAGON_SUCCESS) rc = mem_pointer(&mem, &ptr);
            if (rc == DRAGON_SUCCESS) {
                memset(ptr, 0x5A, bytes);
                rc = mem_free(&mem);
            }
            if (rc != DRAGON_SUCCESS) {
                char* msg = last_error();
                snprintf(why, why_bytes, "alloc/pointer/free of %zu B: rc %d: %s", bytes, (int)rc, msg ? msg : "");
                free(msg);
                return why;
            }
        }
    }
    return NULL;
}

static void* churn_thread(void* arg) {
    (void)arg;
    return (void*)churn(thread_failure, sizeof thread_failure);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dlopen_probe LIBDRAGONMEM [PRELOAD...]\n");
        return 2;
    }
    int hogs = 0;
    for (int i = 2; i < argc && dlopen(argv[i], RTLD_NOW | RTLD_LOCAL) != NULL; ++i) ++hogs;
    if (argc > 2 && hogs == argc - 2) {
        printf("dlopen: FAIL all %d TLS hogs loaded: the static TLS may not be used up; add hogs\n", hogs);
        return 1;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        printf("dlopen: FAIL dlopen(%s): %s\n", argv[1], dlerror());
        return 1;
    }
    symbol(lib, "dragon_memory_pool_create", &pool_create, sizeof pool_create);
    symbol(lib, "dragon_memory_pool_destroy", &pool_destroy, sizeof pool_destroy);
    symbol(lib, "dragon_memory_alloc", &mem_alloc, sizeof mem_alloc);
    symbol(lib, "dragon_memory_get_pointer", &mem_pointer, sizeof mem_pointer);
    symbol(lib, "dragon_memory_free", &mem_free, sizeof mem_free);
    symbol(lib, "dragon_getlasterrstr", &last_error, sizeof last_error);

    snprintf(pool_name, sizeof pool_name, "dmdl%ld", (long)getpid());
    dragonError_t rc = pool_create(&pool, 1 << 20, pool_name, 1, NULL);
    if (rc != DRAGON_SUCCESS) {
        char* msg = last_error();
        printf("dlopen: FAIL pool_create: rc %d: %s\n", (int)rc, msg ? msg : "");
        return 1;
    }
    const char* failure = churn(main_failure, sizeof main_failure);
    pthread_t thread;
    if (failure == NULL) {
        void* result = NULL;
        if (pthread_create(&thread, NULL, churn_thread, NULL) != 0)
            failure = "pthread_create failed";
        else if (pthread_join(thread, &result) == 0 && result != NULL)
            failure = (const char*)result;
    }
    rc = pool_destroy(&pool);
    if (rc != DRAGON_SUCCESS && failure == NULL) failure = "pool_destroy failed";
    if (rc != DRAGON_SUCCESS) {
        char path[80];
        snprintf(path, sizeof path, "/dragonmem.%s", pool_name);
        shm_unlink(path);
    }
    if (failure != NULL) {
        printf("dlopen: FAIL %s\n", failure);
        return 1;
    }
    if (argc > 2)
        printf("dlopen: ok (after %d TLS hogs of 128 B used up the static TLS)\n", hogs);
    else
        printf("dlopen: ok\n");
    return 0;
}
