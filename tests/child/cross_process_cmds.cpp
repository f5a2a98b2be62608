// dm_child commands of tests/unit's cross_process and listing suites. Each
// command attaches what the parent handed over (a pool descriptor's base64 in an
// environment variable, or an allocation descriptor's base64 in an argument), does one
// thing and reports on stdout. Exit status: 0 = everything as expected; for a failed
// library call, the call's dragonError_t; 2 = bad usage; 3 = data mismatch; 4 = one
// or more checks failed (each printed as a "FAIL:" line).
//
//   write-mem      MEM_B64 SEED              attach an allocation, fill it with a pattern
//   cxx-write-mem  MEM_B64 SEED              the same through dragonmem::Memory (C++ API)
//   read-mem       MEM_B64 SEED              attach an allocation, verify the pattern
//   alloc-write    POOL_VAR BYTES SEED TYPE  attach the pool, allocate, fill, print id= and mem=
//   free-id        POOL_VAR ID               attach the pool, free allocation ID
//   alloc-blocking POOL_VAR BYTES TIMEOUT_MS print "ready", then alloc_blocking (-1: no timeout)
//   attach-pool    POOL_VAR                  attach, print rc= and local=; exit with the rc
//   list-empty     POOL_VAR                  get_allocations on an empty pool, then more calls
//   remote-pool    POOL_VAR HOSTID MUID NAME RT_UID RT_LOCAL POOL_SIZE
//                                            the pool must look remote; every call checked
//   remote-mem     MEM_B64 ID SIZE HOSTID    the allocation must look remote; every call checked
//   process-local  NAME ACTION               create process-local pool NAME (64 KiB), print "ready",
//                                            then ACTION: exit (normally), kill (SIGKILL itself),
//                                            deregister (then exit), hold (sleep until killed)
//   register-hold  POOL_VAR                  attach, register it process-local, print "ready", sleep
#include "commands.hpp"

#include "codec.hpp"
#include "child_process.hpp"

#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include <unistd.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace dmchild {

using namespace dmtest;

namespace {

int g_checks = 0;
int g_failed = 0;



void check(bool ok, const std::string& what) {
    ++g_checks;
    if (!ok) {
        ++g_failed;
        std::printf("FAIL: %s\n", what.c_str());
        std::fflush(stdout);
    }
}


// rc must be `expected`; a failure must leave a non-empty message.
void check_rc(dragonError_t rc, dragonError_t expected, const std::string& call) {
    const std::string err = rc != DRAGON_SUCCESS ? last_error() : std::string();
    check(rc == expected, call + ": expected " + rc_text(expected) + ", got " + rc_text(rc) + " '" + err + "'");
    if (rc == expected && expected != DRAGON_SUCCESS)
        check(!err.empty(), call + ": failed with an empty dragon_getlasterrstr()");
}

int finish(const char* command) {
    std::printf("%s: %d checks, %d failed\n", command, g_checks, g_failed);
    return g_failed ? 4 : 0;
}

[[noreturn]] void die_rc(dragonError_t rc, const char* call) {
    std::printf("%s failed: %s: %s\n", call, rc_text(rc).c_str(), last_error().c_str());
    std::fflush(stdout);
    std::exit(static_cast<int>(rc) == 0 ? 1 : static_cast<int>(rc));
}

std::vector<std::uint8_t> decode_b64_arg(const char* arg) {
    auto bytes = base64_decode(arg);
    if (!bytes) {
        std::printf("argument is not base64: %s\n", arg);
        std::exit(2);
    }
    return *bytes;
}

std::uint64_t parse_u64(const char* s) { return std::strtoull(s, nullptr, 0); }

dragonMemoryDescr_t attach_mem(const char* b64) {
    auto bytes = decode_b64_arg(b64);
    dragonMemorySerial_t ser{bytes.size(), bytes.data()};
    dragonMemoryDescr_t mem{};
    dragonError_t rc = dragon_memory_attach(&mem, &ser);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_attach");
    return mem;
}

dragonMemoryPoolDescr_t attach_pool_env(const char* var) {
    dragonMemoryPoolDescr_t pool{};
    dragonError_t rc = dragon_memory_pool_attach_from_env(&pool, var);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_pool_attach_from_env");
    return pool;
}

// The bytes of an attached allocation (the child dies naming the call that failed).
void bytes_of(dragonMemoryDescr_t& mem, void*& ptr, size_t& size) {
    dragonError_t rc = dragon_memory_get_pointer(&mem, &ptr);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_get_pointer");
    rc = dragon_memory_get_size(&mem, &size);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_get_size");
}

int write_mem(const char* b64, std::uint64_t seed) {
    dragonMemoryDescr_t mem = attach_mem(b64);
    void* ptr = nullptr;
    size_t size = 0;
    bytes_of(mem, ptr, size);
    fill_pattern(ptr, size, seed);
    std::printf("wrote %zu\n", size);
    const dragonError_t rc = dragon_memory_detach(&mem);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_detach");
    return 0;
}

int cxx_write_mem(const char* b64, std::uint64_t seed) {
    try {
        dragonmem::Memory mem = dragonmem::Memory::attach_base64(b64);
        auto bytes = mem.bytes();
        fill_pattern(bytes.data(), bytes.size(), seed);
        std::printf("wrote %zu\n", bytes.size());
        return 0;
    } catch (const dragonmem::Error& e) {
        std::printf("dragonmem::Error %s: %s\n", e.code_name(), e.what());
        return static_cast<int>(e.code());
    }
}

int read_mem(const char* b64, std::uint64_t seed) {
    dragonMemoryDescr_t mem = attach_mem(b64);
    void* ptr = nullptr;
    size_t size = 0;
    bytes_of(mem, ptr, size);
    long long bad = find_pattern_mismatch(ptr, size, seed);
    (void)dragon_memory_detach(&mem);
    if (bad >= 0) {
        std::printf("mismatch at byte %lld of %zu\n", bad, size);
        return 3;
    }
    std::printf("read %zu ok\n", size);
    return 0;
}

int alloc_write(const char* var, size_t bytes, std::uint64_t seed, int type) {
    dragonMemoryPoolDescr_t pool = attach_pool_env(var);
    dragonMemoryDescr_t mem{};
    dragonError_t rc = dragon_memory_alloc_type(&mem, &pool, bytes, static_cast<dragonMemoryAllocationType_t>(type));
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_alloc_type");
    void* ptr = nullptr;
    rc = dragon_memory_get_pointer(&mem, &ptr);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_get_pointer");
    fill_pattern(ptr, bytes, seed);
    std::uint64_t id = 0;
    rc = dragon_memory_id(&mem, &id);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_id");
    dragonMemorySerial_t ser{};
    rc = dragon_memory_serialize(&ser, &mem);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_serialize");
    std::printf("id=%" PRIu64 "\nmem=%s\n", id, base64_encode(ser.data, ser.len).c_str());
    dragon_memory_serial_free(&ser);
    (void)dragon_memory_detach(&mem);
    rc = dragon_memory_pool_detach(&pool);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_pool_detach");
    return 0;
}

int free_id(const char* var, std::uint64_t id) {
    dragonMemoryPoolDescr_t pool = attach_pool_env(var);
    dragonMemoryDescr_t mem{};
    dragonError_t rc = dragon_memory_from_id(&pool, id, &mem);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_from_id");
    rc = dragon_memory_free(&mem);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_memory_free");
    std::printf("freed %" PRIu64 "\n", id);
    (void)dragon_memory_pool_detach(&pool);
    return 0;
}

int alloc_blocking(const char* var, size_t bytes, long timeout_ms) {
    dragonMemoryPoolDescr_t pool = attach_pool_env(var);
    timespec timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    std::printf("ready\n");
    std::fflush(stdout);
    dragonMemoryDescr_t mem{};
    const double t0 = dmtest::now_ms();
    dragonError_t rc = dragon_memory_alloc_blocking(&mem, &pool, bytes, timeout_ms < 0 ? nullptr : &timeout);
    const double elapsed = dmtest::now_ms() - t0;
    std::printf("rc=%d elapsed_ms=%.1f\n", static_cast<int>(rc), elapsed);
    if (rc == DRAGON_SUCCESS) {
        std::uint64_t id = 0;
        (void)dragon_memory_id(&mem, &id);
        std::printf("id=%" PRIu64 "\n", id);
    } else {
        std::printf("error: %s\n", last_error().c_str());
    }
    std::fflush(stdout);
    (void)dragon_memory_pool_detach(&pool);
    return static_cast<int>(rc);
}

int attach_and_report(const char* var) {
    dragonMemoryPoolDescr_t pool{};
    dragonError_t rc = dragon_memory_pool_attach_from_env(&pool, var);
    std::printf("rc=%d local=%d\n", static_cast<int>(rc),
                rc == DRAGON_SUCCESS ? static_cast<int>(dragon_memory_pool_is_local(&pool)) : 0);
    if (rc != DRAGON_SUCCESS)
        std::printf("error: %s\n", last_error().c_str());
    else
        (void)dragon_memory_pool_detach(&pool);
    return static_cast<int>(rc);
}

int list_empty(const char* var) {
    dragonMemoryPoolDescr_t pool = attach_pool_env(var);
    for (int round = 0; round < 2; ++round) {
        dragonMemoryPoolAllocations_t allocs{};
        check_rc(dragon_memory_pool_get_allocations(&pool, &allocs), DRAGON_SUCCESS, "get_allocations (empty)");
        check(allocs.nallocs == 0, "empty pool lists " + std::to_string(allocs.nallocs) + " allocations");
        dragon_memory_pool_allocations_free(&allocs);
        dragonMemoryPoolAllocations_t typed{};
        check_rc(dragon_memory_pool_get_type_allocations(&pool, DRAGON_MEMORY_ALLOC_DATA, &typed), DRAGON_SUCCESS,
                 "get_type_allocations (empty)");
        dragon_memory_pool_allocations_free(&typed);
    }
    // Each of these takes the pool lock: they hang if the empty listing kept it.
    dragonMemoryDescr_t mem{};
    check_rc(dragon_memory_alloc(&mem, &pool, 64), DRAGON_SUCCESS, "alloc after empty listing");
    dragonMemoryPoolAllocations_t allocs{};
    check_rc(dragon_memory_pool_get_allocations(&pool, &allocs), DRAGON_SUCCESS, "get_allocations (one)");
    check(allocs.nallocs == 1, "pool with one allocation lists " + std::to_string(allocs.nallocs));
    dragon_memory_pool_allocations_free(&allocs);
    check_rc(dragon_memory_free(&mem), DRAGON_SUCCESS, "free after listing");
    (void)dragon_memory_pool_detach(&pool);
    return finish("list-empty");
}

int remote_pool(const char* var, std::uint64_t hostid, std::uint64_t muid, const char* name,
                    std::uint64_t rt_uid, bool expect_runtime_local, size_t pool_size) {
    const dragonError_t NL = DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL;
    dragonMemoryPoolDescr_t pool{};
    dragonError_t rc = dragon_memory_pool_attach_from_env(&pool, var);
    check_rc(rc, DRAGON_SUCCESS, "pool_attach_from_env of a remote pool");
    if (rc != DRAGON_SUCCESS) return finish("remote-pool");

    check(!dragon_memory_pool_is_local(&pool), "pool_is_local is true for a remote pool");
    bool runtime_local = !expect_runtime_local;
    check_rc(dragon_memory_pool_runtime_is_local(&pool, &runtime_local), DRAGON_SUCCESS, "pool_runtime_is_local");
    check(runtime_local == expect_runtime_local,
          "pool_runtime_is_local gave " + std::to_string(runtime_local) + ", expected " +
              std::to_string(expect_runtime_local));

    // What a remote descriptor answers.
    dragonULInt value = 0;
    check_rc(dragon_memory_pool_get_hostid(&pool, &value), DRAGON_SUCCESS, "pool_get_hostid");
    check(value == hostid, "hostid " + std::to_string(value) + " != " + std::to_string(hostid));
    value = 0;
    check_rc(dragon_memory_pool_muid(&pool, &value), DRAGON_SUCCESS, "pool_muid");
    check(value == muid, "muid " + std::to_string(value) + " != " + std::to_string(muid));
    value = 12345;
    check_rc(dragon_memory_pool_get_rt_uid(&pool, &value), DRAGON_SUCCESS, "pool_get_rt_uid");
    check(value == rt_uid, "rt_uid " + std::to_string(value) + " != " + std::to_string(rt_uid));

    dragonMemoryPoolSerial_t ser{};
    check_rc(dragon_memory_pool_serialize(&ser, &pool), DRAGON_SUCCESS, "pool_serialize");
    if (ser.data) {
        check(ser.len > 0 && ser.len <= dragon_memory_pool_max_serialized_len(), "remote serial length out of bounds");
        dragonULInt uid = 0;
        char* fname = nullptr;
        check_rc(dragon_memory_pool_get_uid_fname(&ser, &uid, &fname), DRAGON_SUCCESS, "pool_get_uid_fname");
        check(uid == muid, "uid_fname uid " + std::to_string(uid) + " != " + std::to_string(muid));
        check(fname && std::strstr(fname, name) != nullptr,
              std::string("uid_fname fname '") + (fname ? fname : "(null)") + "' lacks '" + name + "'");
        std::free(fname);
        dragonMemoryPoolDescr_t again{};
        check_rc(dragon_memory_pool_attach(&again, &ser), DRAGON_SUCCESS, "pool_attach of the re-serialized remote");
        check(!dragon_memory_pool_is_local(&again), "re-serialized remote descriptor became local");
        (void)dragon_memory_pool_detach(&again);
        dragon_memory_pool_serial_free(&ser);
    }
    dragonMemoryPoolDescr_t clone{};
    check_rc(dragon_memory_pool_descr_clone(&clone, &pool), DRAGON_SUCCESS, "pool_descr_clone");
    check(!dragon_memory_pool_is_local(&clone), "clone of a remote pool is local");
    value = 0;
    check_rc(dragon_memory_pool_get_hostid(&clone, &value), DRAGON_SUCCESS, "pool_get_hostid (clone)");
    check(value == hostid, "clone hostid differs");

    // The size is part of the descriptor (docs/design.md section 3.1: "size" works remotely).
    size_t size = 0;
    check_rc(dragon_memory_pool_get_size(&pool, &size), DRAGON_SUCCESS, "pool_get_size");
    check(size == pool_size, "pool_get_size " + std::to_string(size) + " != " + std::to_string(pool_size));

    // Everything that needs the memory.
    void* base = nullptr;
    check_rc(dragon_memory_pool_get_pointer(&pool, &base), NL, "pool_get_pointer");
    std::uint64_t u64 = 0;
    check_rc(dragon_memory_pool_get_free_size(&pool, &u64), NL, "pool_get_free_size");
    check_rc(dragon_memory_pool_get_total_size(&pool, &u64), NL, "pool_get_total_size");
    double pct = 0;
    check_rc(dragon_memory_pool_get_utilization_pct(&pool, &pct), NL, "pool_get_utilization_pct");
    check_rc(dragon_memory_pool_get_num_block_sizes(&pool, &size), NL, "pool_get_num_block_sizes");
    dragonHeapStatsAllocationItem_t items[64];
    check_rc(dragon_memory_pool_get_free_blocks(&pool, items), NL, "pool_get_free_blocks");
    dragonMemoryPoolAllocations_t allocs{};
    check_rc(dragon_memory_pool_get_allocations(&pool, &allocs), NL, "pool_get_allocations");
    check_rc(dragon_memory_pool_get_type_allocations(&pool, DRAGON_MEMORY_ALLOC_DATA, &allocs), NL,
             "pool_get_type_allocations");
    dragonMemoryPoolAttr_t attr{};
    check_rc(dragon_memory_get_attr(&pool, &attr), NL, "get_attr");
    dragonMemoryDescr_t mem{};
    timespec short_timeout{0, 20 * 1000000L};
    check_rc(dragon_memory_alloc(&mem, &pool, 64), NL, "alloc");
    check_rc(dragon_memory_alloc_blocking(&mem, &pool, 64, &short_timeout), NL, "alloc_blocking (timeout)");
    check_rc(dragon_memory_alloc_blocking(&mem, &pool, 64, nullptr), NL, "alloc_blocking (no timeout)");
    check_rc(dragon_memory_alloc_type(&mem, &pool, 64, DRAGON_MEMORY_ALLOC_CHANNEL), NL, "alloc_type");
    check_rc(dragon_memory_alloc_type_blocking(&mem, &pool, 64, DRAGON_MEMORY_ALLOC_CHANNEL, &short_timeout), NL,
             "alloc_type_blocking");
    check_rc(dragon_memory_from_id(&pool, 1, &mem), NL, "from_id");
    dragonULInt len = 8;
    check_rc(dragon_memory_get_alloc_memdescr(&mem, &pool, 1, 0, &len), NL, "get_alloc_memdescr");
    check_rc(dragonmem_pool_check(&pool), NL, "dragonmem_pool_check");
    check_rc(dragon_memory_pool_destroy(&pool), NL, "pool_destroy");

    check_rc(dragon_memory_pool_detach(&clone), DRAGON_SUCCESS, "pool_detach (clone)");
    check_rc(dragon_memory_pool_detach(&pool), DRAGON_SUCCESS, "pool_detach");
    return finish("remote-pool");
}

int remote_mem(const char* b64, std::uint64_t id, size_t size, std::uint64_t hostid) {
    const dragonError_t NL = DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL;
    auto bytes = decode_b64_arg(b64);
    dragonMemorySerial_t ser{bytes.size(), bytes.data()};
    dragonMemoryDescr_t mem{};
    dragonError_t rc = dragon_memory_attach(&mem, &ser);
    check_rc(rc, DRAGON_SUCCESS, "memory_attach of a remote allocation");
    if (rc != DRAGON_SUCCESS) return finish("remote-mem");

    std::uint64_t got_id = 0;
    check_rc(dragon_memory_id(&mem, &got_id), DRAGON_SUCCESS, "memory_id");
    check(got_id == id, "id " + std::to_string(got_id) + " != " + std::to_string(id));
    size_t got_size = 0;
    check_rc(dragon_memory_get_size(&mem, &got_size), DRAGON_SUCCESS, "memory_get_size");
    check(got_size == size, "size " + std::to_string(got_size) + " != " + std::to_string(size));

    dragonMemoryPoolDescr_t pool{};
    check_rc(dragon_memory_get_pool(&mem, &pool), DRAGON_SUCCESS, "memory_get_pool");
    check(!dragon_memory_pool_is_local(&pool), "the pool of a remote allocation is local");
    dragonULInt got_host = 0;
    check_rc(dragon_memory_pool_get_hostid(&pool, &got_host), DRAGON_SUCCESS, "pool_get_hostid (of memory)");
    check(got_host == hostid, "hostid of the allocation's pool differs");

    dragonMemorySerial_t again{};
    check_rc(dragon_memory_serialize(&again, &mem), DRAGON_SUCCESS, "memory_serialize");
    if (again.data) {
        check(again.len > 0 && again.len <= dragon_memory_max_serialized_len(), "remote memory serial length");
        dragonMemoryDescr_t reattached{};
        check_rc(dragon_memory_attach(&reattached, &again), DRAGON_SUCCESS, "memory_attach of re-serialized");
        size_t n = 0;
        check_rc(dragon_memory_get_size(&reattached, &n), DRAGON_SUCCESS, "get_size of re-serialized");
        check(n == size, "re-serialized size differs");
        (void)dragon_memory_detach(&reattached);
        dragon_memory_serial_free(&again);
    }
    dragonMemoryDescr_t view{};
    size_t view_len = 8;
    check_rc(dragon_memory_descr_clone(&view, &mem, 8, &view_len), DRAGON_SUCCESS, "memory_descr_clone");
    size_t n = 0;
    check_rc(dragon_memory_get_size(&view, &n), DRAGON_SUCCESS, "get_size (clone)");
    check(n == 8, "clone size " + std::to_string(n) + " != 8");
    std::uint64_t view_id = 0;
    check_rc(dragon_memory_id(&view, &view_id), DRAGON_SUCCESS, "memory_id (clone)");
    check(view_id == id, "clone id differs");

    void* ptr = nullptr;
    check_rc(dragon_memory_get_pointer(&mem, &ptr), NL, "memory_get_pointer");
    check_rc(dragon_memory_get_pointer(&view, &ptr), NL, "memory_get_pointer (clone)");
    int flag = -1;
    check_rc(dragon_memory_pool_allocation_exists(&mem, &flag), NL, "pool_allocation_exists");
    check_rc(dragon_memory_free(&view), NL, "memory_free (clone)");
    check_rc(dragon_memory_free(&mem), NL, "memory_free");

    check_rc(dragon_memory_detach(&view), DRAGON_SUCCESS, "memory_detach (clone)");
    check_rc(dragon_memory_detach(&mem), DRAGON_SUCCESS, "memory_detach");
    return finish("remote-mem");
}

int process_local(const char* name, const std::string& action) {
    dragonMemoryPoolDescr_t pool{};
    dragonError_t rc = dragon_create_process_local_pool(&pool, 65536, name, nullptr, nullptr);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_create_process_local_pool");
    if (action == "deregister") {
        rc = dragon_deregister_process_local_pool(&pool, nullptr);
        if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_deregister_process_local_pool");
    }
    std::printf("ready\n");
    std::fflush(stdout);
    if (action == "kill") ::raise(SIGKILL);
    if (action == "hold")
        for (;;) ::pause();
    return 0;  // exit: the pool goes at exit (unless deregistered)
}

int register_hold(const char* var) {
    dragonMemoryPoolDescr_t pool = attach_pool_env(var);
    dragonError_t rc = dragon_register_process_local_pool(&pool, nullptr);
    if (rc != DRAGON_SUCCESS) die_rc(rc, "dragon_register_process_local_pool");
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) ::pause();
}

}  // namespace

int cmd_write_mem(int, char** argv) { return write_mem(argv[2], parse_u64(argv[3])); }
int cmd_cxx_write_mem(int, char** argv) { return cxx_write_mem(argv[2], parse_u64(argv[3])); }
int cmd_read_mem(int, char** argv) { return read_mem(argv[2], parse_u64(argv[3])); }
int cmd_alloc_write(int, char** argv) {
    return alloc_write(argv[2], parse_u64(argv[3]), parse_u64(argv[4]), std::atoi(argv[5]));
}
int cmd_free_id(int, char** argv) { return free_id(argv[2], parse_u64(argv[3])); }
int cmd_alloc_blocking(int, char** argv) { return alloc_blocking(argv[2], parse_u64(argv[3]), std::atol(argv[4])); }
int cmd_attach_pool(int, char** argv) { return attach_and_report(argv[2]); }
int cmd_list_empty(int, char** argv) { return list_empty(argv[2]); }
int cmd_process_local(int, char** argv) { return process_local(argv[2], argv[3]); }
int cmd_register_hold(int, char** argv) { return register_hold(argv[2]); }
int cmd_remote_pool(int, char** argv) {
    return remote_pool(argv[2], parse_u64(argv[3]), parse_u64(argv[4]), argv[5], parse_u64(argv[6]),
                       std::atoi(argv[7]) != 0, parse_u64(argv[8]));
}
int cmd_remote_mem(int, char** argv) {
    return remote_mem(argv[2], parse_u64(argv[3]), parse_u64(argv[4]), parse_u64(argv[5]));
}

}  // namespace dmchild
