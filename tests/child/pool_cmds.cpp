// dm_child commands of tests/robust's bad_descriptors, permissions, stopped_holder and
// api_misuse suites: attaching, creating and removing pools as another process or user.
// The pool descriptor's base64 comes in environment variable DMR_POOL. Output is one line
// per event, "key=value ..." with a free-text "msg=" last.
//
//   attach
//        attach the pool, then alloc+free 64 B: "attach rc= alloc_rc= msg=".
//   create-and-wait NAME BYTES MODE
//        create pool NAME with permission bits MODE (octal), print "created b64=...",
//        then sleep (the test kills it; the pool stays behind for it to attach).
//   force-remove NAME
//        dragonmem::Pool::force_remove(NAME) (destroy --force): "removed rc= msg=".
//   open-shm PATH
//        open(2) PATH read-only and read-write: "open rdonly_errno= rdwr_errno=".
//   keys-exhausted
//        takes every pthread key the process has left, then, in a new thread, attaches
//        the pool for the first time in this process (the C API's descriptor tables are
//        made then), allocates, writes and frees 64 B and detaches; prints
//        "keys taken= clobbered= rc= msg=" (clobbered: keys, all owned by someone else,
//        whose value in that thread the library changed).
#include "commands.hpp"

#include "codec.hpp"

#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace dmchild {

int cmd_attach(int, char**) {
    dragonMemoryPoolDescr_t pool;
    dragonError_t rc = dragon_memory_pool_attach_from_env(&pool, "DMR_POOL");
    std::string msg = rc != DRAGON_SUCCESS ? last_error_line() : "";
    dragonError_t alloc_rc = DRAGON_FAILURE;
    if (rc == DRAGON_SUCCESS) {
        dragonMemoryDescr_t mem;
        alloc_rc = dragon_memory_alloc(&mem, &pool, 64);
        if (alloc_rc == DRAGON_SUCCESS) {
            void* ptr = nullptr;
            (void)dragon_memory_get_pointer(&mem, &ptr);
            std::memset(ptr, 0x5A, 64);
            alloc_rc = dragon_memory_free(&mem);
        } else {
            msg = last_error_line();
        }
        (void)dragon_memory_pool_detach(&pool);
    }
    say("attach rc=" + std::to_string(static_cast<int>(rc)) + " alloc_rc=" + std::to_string(static_cast<int>(alloc_rc)) +
        " msg=" + msg);
    return 0;
}

int cmd_keys_exhausted(int, char**) {
    std::vector<pthread_key_t> taken;
    for (;;) {
        pthread_key_t key;
        if (pthread_key_create(&key, nullptr) != 0) break;
        taken.push_back(key);
    }
    dragonError_t rc = DRAGON_FAILURE;
    std::string msg;
    int clobbered = 0;
    std::thread([&] {
        // A fresh thread: every key's value starts NULL here.
        std::vector<void*> before;
        for (pthread_key_t key = 0; key < PTHREAD_KEYS_MAX; ++key) before.push_back(pthread_getspecific(key));
        dragonMemoryPoolDescr_t pool;
        rc = dragon_memory_pool_attach_from_env(&pool, "DMR_POOL");
        if (rc == DRAGON_SUCCESS) {
            dragonMemoryDescr_t mem;
            rc = dragon_memory_alloc(&mem, &pool, 64);
            void* ptr = nullptr;
            if (rc == DRAGON_SUCCESS) rc = dragon_memory_get_pointer(&mem, &ptr);
            if (rc == DRAGON_SUCCESS) {
                std::memset(ptr, 0x5A, 64);
                rc = dragon_memory_free(&mem);
            }
            if (rc != DRAGON_SUCCESS) msg = last_error_line();
            dragonError_t detached = dragon_memory_pool_detach(&pool);
            if (rc == DRAGON_SUCCESS && detached != DRAGON_SUCCESS) {
                rc = detached;
                msg = last_error_line();
            }
        } else {
            msg = last_error_line();
        }
        for (pthread_key_t key = 0; key < PTHREAD_KEYS_MAX; ++key)
            if (pthread_getspecific(key) != before[key]) ++clobbered;
    }).join();
    say("keys taken=" + std::to_string(taken.size()) + " clobbered=" + std::to_string(clobbered) +
        " rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + msg);
    return 0;
}

int cmd_create_and_wait(int argc, char** argv) {
    if (argc < 5) return 2;
    dragonMemoryPoolAttr_t attr;
    dragon_memory_attr_init(&attr);
    attr.mode = static_cast<mode_t>(std::strtoul(argv[4], nullptr, 8));
    dragonMemoryPoolDescr_t pool;
    dragonError_t rc = dragon_memory_pool_create(&pool, std::strtoull(argv[3], nullptr, 10), argv[2], 1, &attr);
    if (rc != DRAGON_SUCCESS) {
        say("FAIL create rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
        return 3;
    }
    dragonMemoryPoolSerial_t ser{};
    (void)dragon_memory_pool_serialize(&ser, &pool);
    const std::string b64 = dmtest::base64_encode(ser.data, ser.len);
    dragon_memory_pool_serial_free(&ser);
    say("created b64=" + b64);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}

int cmd_force_remove(int argc, char** argv) {
    if (argc < 3) return 2;
    int rc = 0;
    std::string msg;
    try {
        dragonmem::Pool::force_remove(argv[2]);
    } catch (const dragonmem::Error& e) {
        rc = static_cast<int>(e.code());
        msg = e.what();
    }
    say("removed rc=" + std::to_string(rc) + " msg=" + msg);
    return 0;
}

int cmd_open_shm(int argc, char** argv) {
    if (argc < 3) return 2;
    int ro = ::open(argv[2], O_RDONLY);
    int ro_errno = ro < 0 ? errno : 0;
    if (ro >= 0) ::close(ro);
    int rw = ::open(argv[2], O_RDWR);
    int rw_errno = rw < 0 ? errno : 0;
    if (rw >= 0) ::close(rw);
    say("open rdonly_errno=" + std::to_string(ro_errno) + " rdwr_errno=" + std::to_string(rw_errno));
    return 0;
}

}  // namespace dmchild
