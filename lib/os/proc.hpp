// What /proc says about tasks, this process's PID namespace and this boot: the only file
// that reads /proc. The task readers make one read into a buffer on the stack and
// allocate nothing: they run in lock waits and in a thread's identity set-up.
#pragma once

#include <cstdint>
#include <string>

namespace dragonmem::detail {

// Field 3 (state, e.g. 'R', 'S', 'T', 'Z') and field 22 (start time, clock ticks since
// boot) of /proc/<tid>/stat. False when it cannot be read (no such task, no /proc).
bool read_task_stat(std::uint32_t tid, char& state, std::uint64_t& start_ticks) noexcept;

// From /proc/<tid>/status, for error messages: the command name, the state as text
// (e.g. "T (stopped)") and the thread group (process) id; each empty or 0 when unknown.
struct TaskStatus {
    char name[20] = {};
    char state[32] = {};
    std::uint32_t tgid = 0;
};
bool read_task_status(std::uint32_t tid, TaskStatus& out) noexcept;

// Whether task `tid`, started at `stamp` (the low 32 bits of its start time), is gone: it
// does not exist, is a zombie, or the tid now belongs to a task started at another time.
// tid 0 or one beyond pid_t is no task. Without /proc only existence can be checked.
bool task_is_gone(std::uint32_t tid, std::uint32_t stamp) noexcept;

// The inode of /proc/self/ns/pid (this process's PID namespace); 0 when /proc cannot say.
std::uint64_t read_pid_namespace_inode() noexcept;

// /proc/sys/kernel/random/boot_id, trimmed; empty when it cannot be read.
std::string read_boot_id();

// The whole text of a kernel file of /proc or /sys (meminfo, mounts, the online NUMA
// nodes): these are generated on read and report a size of 0, so the reader loops until
// end of file. Empty when it cannot be read.
std::string read_kernel_text(const char* path);

}  // namespace dragonmem::detail
