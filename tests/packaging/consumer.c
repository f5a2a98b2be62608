/* A C program as a user of the installed library writes it: a pool's life through the C
 * API, one call that must fail cleanly, and the version checks. Built by
 * packaging_test.sh against an installed tree (pkg-config, static or shared, and CMake).
 * Usage: consumer POOL_NAME [EXPECTED_VERSION]; prints "consumer ok" on success. */
#include <dragon/managed_memory.h>
#include <dragonmem/c_extensions.h>
#include <dragonmem/version.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed(const char* what, dragonError_t rc) {
    char* why = dragon_getlasterrstr();
    fprintf(stderr, "consumer: %s: %s: %s\n", what, dragon_getrcstr(rc), why);
    free(why);
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: consumer POOL_NAME [EXPECTED_VERSION]\n");
        return 2;
    }
    /* The headers compiled against and the library loaded agree, with each other and
     * with the version the build says it made. */
    char from_macros[32];
    snprintf(from_macros, sizeof from_macros, "%d.%d.%d", DRAGONMEM_VERSION_MAJOR, DRAGONMEM_VERSION_MINOR,
             DRAGONMEM_VERSION_PATCH);
    if (strcmp(from_macros, DRAGONMEM_VERSION_STRING) != 0 || strcmp(dragonmem_version(), DRAGONMEM_VERSION_STRING) != 0 ||
        (argc > 2 && strcmp(argv[2], dragonmem_version()) != 0)) {
        fprintf(stderr, "consumer: versions disagree: macros %s, DRAGONMEM_VERSION_STRING %s, dragonmem_version() %s, expected %s\n",
                from_macros, DRAGONMEM_VERSION_STRING, dragonmem_version(), argc > 2 ? argv[2] : "-");
        return 1;
    }

    /* Bad input: a name with a '/' is refused with a message naming it. */
    dragonMemoryPoolDescr_t bad;
    dragonError_t rc = dragon_memory_pool_create(&bad, 1 << 16, "no/slash", 1, NULL);
    char* why = dragon_getlasterrstr();
    int named = why != NULL && strstr(why, "no/slash") != NULL;
    free(why);
    if (rc != DRAGON_INVALID_ARGUMENT || !named) {
        fprintf(stderr, "consumer: create(\"no/slash\") gave %s, message naming it: %d\n", dragon_getrcstr(rc), named);
        return 1;
    }

    dragonMemoryPoolDescr_t pool;
    rc = dragonmem_memory_pool_create_ext(&pool, 1 << 16, argv[1], 7, NULL, 0);
    if (rc != DRAGON_SUCCESS) return failed("pool create", rc);
    int status = 0;
    dragonMemoryDescr_t mem;
    void* ptr = NULL;
    rc = dragon_memory_alloc(&mem, &pool, 100);
    if (rc == DRAGON_SUCCESS) rc = dragon_memory_get_pointer(&mem, &ptr);
    if (rc == DRAGON_SUCCESS) {
        memcpy(ptr, "installed", 10);
        rc = dragon_memory_free(&mem);
    }
    if (rc != DRAGON_SUCCESS) status = failed("alloc/pointer/free", rc);
    rc = dragon_memory_pool_destroy(&pool);
    if (rc != DRAGON_SUCCESS) status = failed("pool destroy", rc);
    if (status == 0) printf("consumer ok: dragonmem %s\n", dragonmem_version());
    return status;
}
