// dm_child: the one helper program the tests run as a separate process (fork+exec), to
// do things from another process, as another user, or in a way that may crash: attach
// and use what the parent handed over, hammer a pool until killed, die holding the pool
// lock, fail every allocation in turn. Tests find it through $DM_CHILD_PATH (set by
// meson; see tests/support/child_process.hpp).
//
//   dm_child COMMAND ARGS...
//
// The commands, by the suites that use them (each file's header says what its commands
// do and print):
//   cross_process_cmds.cpp  tests/unit: write-mem, cxx-write-mem, read-mem, alloc-write,
//                           free-id, alloc-blocking, attach-pool, process-local,
//                           register-hold, list-empty, remote-pool, remote-mem
//                           (descriptors in arguments or a named variable)
//   workload_cmds.cpp       tests/robust: hammer, stress, waiter, pingpong
//   pool_cmds.cpp           tests/robust: attach, create-and-wait, force-remove, open-shm,
//                           keys-exhausted
//   cache_cmds.cpp          tests/robust: cache-hold, cache-fill, cache-crash, fork-cache
//   crash_point.cpp         tests/robust: crash-point
//   c_boundary.cpp          tests/robust: c-boundary (replaces the global operator new)
// Exit status 2: unknown command or wrong number of arguments.
// $DMTEST_WAIT_SLICE_MS, when set, is the library's wait slice here (wait_slice.hpp).
#include "commands.hpp"
#include "wait_slice.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Entry {
    const char* name;
    const char* args;  // synopsis, for the usage text
    int min_args;
    int max_args;  // -1: any number
    dmchild::Command run;
};

using namespace dmchild;

constexpr Entry k_commands[] = {
    {"write-mem", "MEM_B64 SEED", 2, 2, cmd_write_mem},
    {"cxx-write-mem", "MEM_B64 SEED", 2, 2, cmd_cxx_write_mem},
    {"read-mem", "MEM_B64 SEED", 2, 2, cmd_read_mem},
    {"alloc-write", "POOL_VAR BYTES SEED TYPE", 4, 4, cmd_alloc_write},
    {"free-id", "POOL_VAR ID", 2, 2, cmd_free_id},
    {"alloc-blocking", "POOL_VAR BYTES TIMEOUT_MS", 3, 3, cmd_alloc_blocking},
    {"attach-pool", "POOL_VAR", 1, 1, cmd_attach_pool},
    {"process-local", "NAME exit|kill|deregister|hold", 2, 2, cmd_process_local},
    {"register-hold", "POOL_VAR", 1, 1, cmd_register_hold},
    {"list-empty", "POOL_VAR", 1, 1, cmd_list_empty},
    {"remote-pool", "POOL_VAR HOSTID MUID NAME RT_UID RT_LOCAL POOL_SIZE", 7, 7, cmd_remote_pool},
    {"remote-mem", "MEM_B64 ID SIZE HOSTID", 4, 4, cmd_remote_mem},
    {"hammer", "SEED TYPE_BASE MAX_LIVE COUNTER_FILE SLOT", 5, 5, cmd_hammer},
    {"stress", "THREADS OPS SEED", 3, 3, cmd_stress},
    {"waiter", "BYTES TIMEOUT_MS [TYPE]", 2, 3, cmd_waiter},
    {"pingpong", "BYTES ITERATIONS TIMEOUT_MS", 3, 3, cmd_pingpong},
    {"attach", "", 0, 0, cmd_attach},
    {"create-and-wait", "NAME BYTES MODE", 3, 3, cmd_create_and_wait},
    {"force-remove", "NAME", 1, 1, cmd_force_remove},
    {"open-shm", "PATH", 1, 1, cmd_open_shm},
    {"keys-exhausted", "", 0, 0, cmd_keys_exhausted},
    {"cache-hold", "ROUNDS COUNT keep|detach SIZE...", 4, -1, cmd_cache_hold},
    {"cache-fill", "BYTES [TYPE]", 1, 2, cmd_cache_fill},
    {"cache-crash", "TYPE SEED", 2, 2, cmd_cache_crash},
    {"fork-cache", "COUNT", 1, 1, cmd_fork_cache},
    {"crash-point", "NAME MODE [ID]", 2, 3, cmd_crash_point},
    {"c-boundary", "NAME once|from", 2, 2, cmd_c_boundary},
};

int usage(const char* why) {
    std::fprintf(stderr, "dm_child: %s\nusage: dm_child COMMAND ARGS... (see tests/child/main.cpp)\n", why);
    for (const Entry& e : k_commands) std::fprintf(stderr, "  %s %s\n", e.name, e.args);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage("no command");
    if (const char* slice = std::getenv(dmtest::k_wait_slice_env)) dragonmem::detail::set_wait_slice_for_tests(std::atol(slice));
    for (const Entry& e : k_commands) {
        if (std::strcmp(argv[1], e.name) != 0) continue;
        const int given = argc - 2;
        if (given < e.min_args || (e.max_args >= 0 && given > e.max_args))
            return usage((std::string("wrong number of arguments for ") + e.name).c_str());
        return e.run(argc, argv);
    }
    return usage((std::string("unknown command '") + argv[1] + "'").c_str());
}
