/* Off-node access to allocations' bytes (C): a byte range of an allocation, read or
 * written given its descriptor, whether the allocation is on this node (a copy) or on
 * another one (over UCX: the descriptor, serialized there while DRAGONMEM_AGENT named
 * that node's `dragonmem serve`, says where to ask). Not in Dragon's API. C11 and C++;
 * link with -ldragonmem. README.md, "Off-node data", explains the model. */
#ifndef DRAGONMEM_REMOTE_H
#define DRAGONMEM_REMOTE_H

#include <dragon/managed_memory.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Copies `bytes` bytes of the descriptor's view, from byte `offset`, into `buffer`.
 * The range must lie within the view (else DRAGON_INVALID_ARGUMENT, nothing read).
 * `timeout` (relative; NULL: none) bounds a remote read: DRAGON_TIMEOUT when it
 * passes. Remote failures: the agent's refusal with its code (a wrong secret or an
 * allocation not live: DRAGON_INVALID_ARGUMENT / DRAGON_KEY_NOT_FOUND; a pool destroyed
 * since: DRAGON_OBJECT_DESTROYED or DRAGON_MEMORY_ERRNO; DRAGON_EAGAIN: the agent is busy,
 * try again), DRAGON_FAILURE when the agent cannot be reached, goes away or rejects the
 * connection, DRAGON_INVALID_OPERATION where DRAGONMEM_REMOTE_TRUSTED_FABRIC is not 1
 * (remote access over UCX is for trusted fabrics only; DRAGON_INVALID_ARGUMENT where it is
 * set to anything but 1 or 0), DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL for a
 * descriptor that names no agent, DRAGON_NOT_IMPLEMENTED in a library built without
 * UCX. dragon_getlasterrstr() says which. A remote transfer goes in pieces of at most
 * 1 MiB, up to 4 in flight, each checked by the agent; in a transfer of several pieces, a
 * piece refused with DRAGON_EAGAIN is sent again (within the timeout). An error in a
 * transfer of several pieces may leave part of the range moved (part of `buffer`
 * filled; for a write, part of the range written); the message names the piece. */
dragonError_t dragonmem_memory_read(const dragonMemoryDescr_t* mem_descr, size_t offset, void* buffer, size_t bytes,
                                    const timespec_t* timeout);
/* Copies `bytes` bytes from `buffer` into the descriptor's view at byte `offset`; as
 * dragonmem_memory_read. */
dragonError_t dragonmem_memory_write(const dragonMemoryDescr_t* mem_descr, size_t offset, const void* buffer,
                                     size_t bytes, const timespec_t* timeout);
/* 1 when this library was built with UCX (remote access possible), else 0. */
int dragonmem_remote_available(void);

#ifdef __cplusplus
}
#endif

#endif /* DRAGONMEM_REMOTE_H */
