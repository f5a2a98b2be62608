/* Lock kinds a pool may be created with. dragonmem records the kind and always uses its
 * own crash-safe owner lock underneath (lib/pool/robust_lock.hpp). */
#ifndef HAVE_DRAGON_SHAREDLOCK_H
#define HAVE_DRAGON_SHAREDLOCK_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dragonLockKind_st {
    DRAGON_LOCK_FIFO = 0,
    DRAGON_LOCK_FIFO_LITE = 1,
    DRAGON_LOCK_GREEDY = 2
} dragonLockKind_t;

#ifdef __cplusplus
}
#endif

#endif
