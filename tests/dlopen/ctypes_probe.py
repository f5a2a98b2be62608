#!/usr/bin/env python3
"""Loads libdragonmem.so from Python with ctypes (dlopen after the interpreter started,
as any extension module is) and runs pool create, alloc, write, read, free and destroy
through it, in the main thread and in a thread started afterwards.

    ctypes_probe.py LIBDRAGONMEM

Prints "ctypes: ok" (exit 0) or "ctypes: FAIL ..." (exit 1).
"""
import ctypes
import os
import sys
import threading


class PoolDescr(ctypes.Structure):
    _fields_ = [("_original", ctypes.c_int), ("_idx", ctypes.c_uint64), ("_rt_idx", ctypes.c_uint64)]


class MemDescr(ctypes.Structure):
    _fields_ = [("_original", ctypes.c_int), ("_idx", ctypes.c_uint64)]


def main():
    if len(sys.argv) != 2:
        print("usage: ctypes_probe.py LIBDRAGONMEM", file=sys.stderr)
        return 2
    try:
        lib = ctypes.CDLL(sys.argv[1])
    except OSError as e:
        print(f"ctypes: FAIL loading {sys.argv[1]}: {e}")
        return 1
    lib.dragon_memory_pool_create.argtypes = [ctypes.POINTER(PoolDescr), ctypes.c_size_t, ctypes.c_char_p,
                                              ctypes.c_uint64, ctypes.c_void_p]
    lib.dragon_memory_pool_destroy.argtypes = [ctypes.POINTER(PoolDescr)]
    lib.dragon_memory_alloc.argtypes = [ctypes.POINTER(MemDescr), ctypes.POINTER(PoolDescr), ctypes.c_size_t]
    lib.dragon_memory_get_pointer.argtypes = [ctypes.POINTER(MemDescr), ctypes.POINTER(ctypes.c_void_p)]
    lib.dragon_memory_free.argtypes = [ctypes.POINTER(MemDescr)]
    lib.dragon_getlasterrstr.restype = ctypes.c_void_p  # malloc'd: freed below
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]

    def last_error():
        raw = lib.dragon_getlasterrstr()
        if not raw:
            return ""
        text = ctypes.string_at(raw).decode(errors="replace")
        libc.free(raw)
        return text

    def check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: rc {rc}: {last_error()}")

    pool = PoolDescr()
    name = f"dmpy{os.getpid()}".encode()
    check(lib.dragon_memory_pool_create(ctypes.byref(pool), 1 << 20, name, 1, None), "pool_create")

    def churn():
        for i in range(100):
            for size in (64, 4096):
                mem = MemDescr()
                check(lib.dragon_memory_alloc(ctypes.byref(mem), ctypes.byref(pool), size), f"alloc {size} B")
                ptr = ctypes.c_void_p()
                check(lib.dragon_memory_get_pointer(ctypes.byref(mem), ctypes.byref(ptr)), "get_pointer")
                ctypes.memset(ptr, i & 0xFF, size)
                if ctypes.string_at(ptr, size) != bytes([i & 0xFF]) * size:
                    raise RuntimeError("the allocation does not read back what was written")
                check(lib.dragon_memory_free(ctypes.byref(mem)), "free")

    failures = []

    def in_thread():
        try:
            churn()
        except Exception as e:  # reported by the main thread
            failures.append(f"in a thread: {e}")

    try:
        churn()
        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
    except Exception as e:
        failures.append(str(e))
    rc = lib.dragon_memory_pool_destroy(ctypes.byref(pool))
    if rc != 0:
        failures.append(f"pool_destroy: rc {rc}: {last_error()}")
        try:
            os.unlink(f"/dev/shm/dragonmem.{name.decode()}")
        except OSError:
            pass
    if failures:
        print("ctypes: FAIL " + "; ".join(failures))
        return 1
    print("ctypes: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
