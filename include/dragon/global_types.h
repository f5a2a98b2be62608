/* Basic types shared by the Dragon-compatible C API (names and widths as in Dragon). */
#ifndef HAVE_DRAGON_GLOBAL_TYPES_H
#define HAVE_DRAGON_GLOBAL_TYPES_H

#include <stdint.h>
#include <time.h>
#include <sys/time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t dragonC_UID_t;
typedef uint64_t dragonP_UID_t;
typedef uint64_t dragonM_UID_t;
typedef uint64_t dragonQ_UID_t;
typedef uint64_t dragonRT_UID_t;
typedef uint64_t dragonULInt;
typedef uint32_t dragonUInt;
typedef uint8_t dragonUUID[16];
typedef struct timespec timespec_t;
typedef struct timeval timeval_t;

typedef enum dragonWaitMode_st {
    DRAGON_IDLE_WAIT = 0,
    DRAGON_SPIN_WAIT = 1,
    DRAGON_ADAPTIVE_WAIT = 2
} dragonWaitMode_t;

#ifdef __cplusplus
}
#endif

#endif
