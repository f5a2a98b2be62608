/* Basic types shared by the Dragon-compatible C API (names and widths as in Dragon). */
#ifndef HAVE_DRAGON_GLOBAL_TYPES_H
#define HAVE_DRAGON_GLOBAL_TYPES_H

#include <stdint.h>
#include <inttypes.h>
#include <time.h>
#include <sys/time.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRAGON_UUID_NELEM 16
#define DRAGON_UUID_SIZE (DRAGON_UUID_NELEM * sizeof(uint8_t))

typedef uint64_t dragonC_UID_t;
typedef uint64_t dragonP_UID_t;
typedef uint64_t dragonM_UID_t;
typedef uint64_t dragonQ_UID_t;
typedef uint64_t dragonRT_UID_t;
typedef uint64_t dragonG_UID_t;
typedef uint64_t dragonULInt;
typedef uint32_t dragonUInt;
typedef uint8_t dragonUUID[DRAGON_UUID_NELEM];
typedef struct timespec timespec_t;
typedef struct timeval timeval_t;

/* Dragon's environment variable names. DRAGON_DEFAULT_PD holds the default pool's
 * serialized descriptor (base64), read by dragon_memory_pool_attach_default. */
#define DRAGON_NUM_GW_ENV_VAR "DRAGON_NUM_GW_CHANNELS_PER_NODE"
#define DRAGON_DEFAULT_PD_VAR "DRAGON_DEFAULT_PD"
#define DRAGON_INF_PD_VAR "DRAGON_INF_PD"
#define DRAGON_CHANNEL_DEFAULT_GW_ENV_PREFIX "DRAGON_GW"

typedef enum dragonWaitMode_st {
    DRAGON_IDLE_WAIT = 0,
    DRAGON_SPIN_WAIT = 1,
    DRAGON_ADAPTIVE_WAIT = 2
} dragonWaitMode_t;

static const dragonWaitMode_t DRAGON_DEFAULT_WAIT_MODE = DRAGON_ADAPTIVE_WAIT;

/* The rest of Dragon's global types, for its other headers (channels, bcast) that a
 * Dragon program includes next to this one; dragonmem itself does not use them. */
typedef enum dragonChannelSendReturnWhen_st {
    DRAGON_CHANNEL_SEND_RETURN_IMMEDIATELY,
    DRAGON_CHANNEL_SEND_RETURN_WHEN_BUFFERED,
    DRAGON_CHANNEL_SEND_RETURN_WHEN_DEPOSITED,
    DRAGON_CHANNEL_SEND_RETURN_WHEN_RECEIVED,
    DRAGON_CHANNEL_SEND_RETURN_WHEN_NONE
} dragonChannelSendReturnWhen_t;

typedef enum dragonChannelOpType_st {
    DRAGON_OP_TYPE_SEND_MSG = 0,
    DRAGON_OP_TYPE_GET_MSG,
    DRAGON_OP_TYPE_POLL
} dragonChannelOpType_t;

typedef void (*dragonReleaseFun)(void* unlock_arg);

#ifdef __cplusplus
}
#endif

#endif
