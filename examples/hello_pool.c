/* A pool's life through the C API: create, allocate, write, hand the allocation to
 * another process as a serialized descriptor, read it back, free, destroy.
 * Build: cc hello_pool.c $(pkg-config --cflags --libs dragonmem) */
#include <dragon/managed_memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        dragonError_t rc_ = (call);                                                    \
        if (rc_ != DRAGON_SUCCESS) {                                                   \
            char* why = dragon_getlasterrstr();                                        \
            fprintf(stderr, "%s failed: %s: %s\n", #call, dragon_getrcstr(rc_), why);  \
            free(why);                                                                 \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

int main(void) {
    char name[32];
    snprintf(name, sizeof name, "hello%ld", (long)getpid());
    dragonMemoryPoolDescr_t pool;
    CHECK(dragon_memory_pool_create(&pool, 1 << 20, name, 1, NULL));

    dragonMemoryDescr_t mem;
    CHECK(dragon_memory_alloc(&mem, &pool, 64));
    void* ptr = NULL;
    CHECK(dragon_memory_get_pointer(&mem, &ptr));
    strcpy((char*)ptr, "hello from dragonmem");

    /* What another process would receive (over a pipe, a queue, an env var...). */
    dragonMemorySerial_t ser;
    CHECK(dragon_memory_serialize(&ser, &mem));
    dragonMemoryDescr_t other;
    CHECK(dragon_memory_attach(&other, &ser));
    void* other_ptr = NULL;
    CHECK(dragon_memory_get_pointer(&other, &other_ptr));
    uint64_t id = 0;
    CHECK(dragon_memory_id(&other, &id));
    printf("allocation %llu says: %s (descriptor of %zu bytes)\n", (unsigned long long)id, (char*)other_ptr, ser.len);

    CHECK(dragon_memory_serial_free(&ser));
    CHECK(dragon_memory_detach(&other));
    CHECK(dragon_memory_free(&mem));
    CHECK(dragon_memory_pool_destroy(&pool));
    return 0;
}
