// The pieces every command of dm_child shares (see main.cpp for the list of commands).
#pragma once

#include <dragon/managed_memory.h>

#include <string>

namespace dmchild {

// How the commands report: one line per event on stdout, flushed at once (the test
// reads it while the child still runs).
void say(const std::string& line);
// The library's last error message on one line (newlines become spaces).
std::string last_error_line();
// The library's last error message as it is.
std::string last_error();
double cpu_ms();  // this process's user + system time
std::string rc_text(dragonError_t rc);  // "NAME (N)"

// Attaches the pool whose serialized descriptor's base64 is in environment variable
// DMR_POOL (the robustness tests' commands); false, after saying "FAIL attach ...", when
// that fails.
bool attach_pool(dragonMemoryPoolDescr_t& pool);

// Each command: argv[1] is its name, argv[2..] its arguments (main checked their count).
// Exit status 2: bad usage.
using Command = int (*)(int argc, char** argv);

// tests/unit (cross_process, listing, process_local): cross_process_cmds.cpp
int cmd_write_mem(int argc, char** argv);
int cmd_cxx_write_mem(int argc, char** argv);
int cmd_read_mem(int argc, char** argv);
int cmd_alloc_write(int argc, char** argv);
int cmd_free_id(int argc, char** argv);
int cmd_alloc_blocking(int argc, char** argv);
int cmd_attach_pool(int argc, char** argv);
int cmd_list_empty(int argc, char** argv);
int cmd_process_local(int argc, char** argv);
int cmd_register_hold(int argc, char** argv);
int cmd_remote_pool(int argc, char** argv);
int cmd_remote_mem(int argc, char** argv);
// tests/robust: workload_cmds.cpp
int cmd_hammer(int argc, char** argv);
int cmd_stress(int argc, char** argv);
int cmd_waiter(int argc, char** argv);
int cmd_pingpong(int argc, char** argv);
// tests/robust: pool_cmds.cpp
int cmd_attach(int argc, char** argv);
int cmd_keys_exhausted(int argc, char** argv);
int cmd_create_and_wait(int argc, char** argv);
int cmd_force_remove(int argc, char** argv);
int cmd_open_shm(int argc, char** argv);
// tests/robust (thread_cache): cache_cmds.cpp
int cmd_cache_hold(int argc, char** argv);
int cmd_cache_fill(int argc, char** argv);
int cmd_cache_crash(int argc, char** argv);
int cmd_fork_cache(int argc, char** argv);
// tests/robust: crash_point.cpp, c_boundary.cpp
int cmd_crash_point(int argc, char** argv);
int cmd_c_boundary(int argc, char** argv);

}  // namespace dmchild
