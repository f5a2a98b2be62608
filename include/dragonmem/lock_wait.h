/* dragonmem's C extension (not part of Dragon's API): the lock-wait limit, which bounds
 * how long a call waits for a pool's lock held by a live thread that does not release it
 * (stopped by SIGSTOP or a debugger). When it passes, the call fails with DRAGON_TIMEOUT
 * and dragon_getlasterrstr() names the holder. NULL: no limit (the default). Calls with a
 * timeout are bounded by it as well. A bounded wait lasts at least 10 ms. See
 * dragonmem/lock_wait.hpp for the whole story. */
#ifndef DRAGONMEM_LOCK_WAIT_H
#define DRAGONMEM_LOCK_WAIT_H

#include <dragon/return_codes.h>

#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* For the whole process. DRAGON_INVALID_ARGUMENT for a negative or non-normalised
 * timespec; a limit too long for 64-bit nanoseconds counts as none. */
dragonError_t dragonmem_set_lock_wait_limit(const struct timespec* limit);

/* For the calling thread only, overriding the process-wide limit (NULL: no limit for
 * this thread), until dragonmem_clear_thread_lock_wait_limit. */
dragonError_t dragonmem_set_thread_lock_wait_limit(const struct timespec* limit);
void dragonmem_clear_thread_lock_wait_limit(void);

#ifdef __cplusplus
}
#endif

#endif
