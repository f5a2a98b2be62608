/* Dragon's general utilities (its <dragon/utils.h>, not managed memory) that Dragon's
 * memory tests call: written here so that those tests link against libdragonmem alone.
 * Only what test_mem.c, test_attach.c, test_serialized_uid.c and test_gpu_mem.c
 * reference. Built by run_dragon_tests.sh with Dragon's utils.h for the prototypes. */
#include <dragon/utils.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void dragon_generate_uuid(dragonUUID uuid) {
    /* 16 random bytes: all the tests ask of a uuid is that two differ. */
    size_t got = 0;
    while (got < sizeof(dragonUUID)) {
        ssize_t n = getrandom(uuid + got, sizeof(dragonUUID) - got, 0);
        if (n > 0) got += (size_t)n;
    }
}

void dragon_copy_uuid(dragonUUID dest, const dragonUUID src) { memcpy(dest, src, sizeof(dragonUUID)); }

/* 0 when equal, as Dragon's (the tests read non-zero as "different"). */
int dragon_compare_uuid(const dragonUUID u1, const dragonUUID u2) {
    return memcmp(u1, u2, sizeof(dragonUUID)) != 0;
}

char* dragon_uuid_to_hex_str(dragonUUID uuid) {
    char* out = malloc(2 * sizeof(dragonUUID) + 1);
    if (out == NULL) return NULL;
    for (size_t i = 0; i < sizeof(dragonUUID); ++i) sprintf(out + 2 * i, "%02x", uuid[i]);
    return out;
}

/* Referenced by test_mem.c's test_hash(), which its main never calls; dragonmem's hash
 * of an allocation is dragon_memory_hash. */
dragonULInt dragon_hash(void* ptr, size_t num_bytes) {
    (void)ptr;
    (void)num_bytes;
    fprintf(stderr, "dragon_hash (Dragon's utils) is not provided by this shim\n");
    abort();
}
