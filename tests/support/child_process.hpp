// Running helper programs (the dm_child helper above all) as separate processes
// (fork+exec): their stdout+stderr are captured through a pipe, read line by line or
// searched, and waited for with a deadline. A child still running when its handle is
// dropped, or when its deadline passes, is SIGKILLed, so a hung child turns into a
// failed check instead of a hung suite; the watchdog (watchdog.hpp) also kills every
// child still running before it ends a hung test process.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dmtest {

double now_ms();  // CLOCK_MONOTONIC, comparable across processes

// Environment changes for a child: value to set, or nullopt to remove the variable.
using EnvChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;

// How a child ended (or did not start).
struct ChildResult {
    bool started = false;
    bool timed_out = false;  // killed by us at the deadline
    bool exited = false;     // exited normally, with `code`
    int code = -1;
    int signal = 0;          // when a signal ended it
    std::string output;      // stdout and stderr, interleaved
    double elapsed_ms = 0;   // from spawn to exit
    double cpu_ms = 0;       // user + system CPU time of the child

    bool exited_with(int expected) const { return started && !timed_out && exited && code == expected; }
    std::string describe() const;  // for failure messages: how it ended, then its output
};

class Child {
public:
    // argv[0] is the program path. The child gets this process's environment with `env`
    // applied, /dev/null as stdin. spawn_as drops to uid/gid/groups before exec (needs root).
    static Child spawn(const std::vector<std::string>& argv, const EnvChanges& env = {});
    static Child spawn_as(const std::vector<std::string>& argv, uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                          const EnvChanges& env = {});

    Child() = default;
    Child(Child&& other) noexcept;
    Child& operator=(Child&& other) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();  // SIGKILLs and reaps a child still running

    bool started() const { return result_.started; }
    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0 && !reaped_; }
    // Reads output until it contains `needle` (true) or the deadline/EOF (false).
    bool wait_for_output(const std::string& needle, int timeout_ms);
    // Reads output until a line starting with `prefix` appears after the lines returned
    // so far; returns it (nullopt on timeout or EOF).
    std::optional<std::string> wait_line(std::string_view prefix, int timeout_ms);
    const std::string& output() const { return result_.output; }
    void kill_now(int sig = SIGKILL);  // does not reap
    // Reaps the child if it has exited (no waiting); true when it has.
    bool try_reap();
    // Waits for exit; SIGKILLs at the deadline (then timed_out, signal == SIGKILL).
    ChildResult wait(int timeout_ms);
    const ChildResult& result() const { return result_; }

private:
    static Child spawn_impl(const std::vector<std::string>& argv, const EnvChanges& env, bool drop, uid_t uid,
                            gid_t gid, const std::vector<gid_t>& groups);
    bool pump(int timeout_ms);  // reads what is available; false at EOF
    void end() noexcept;        // SIGKILLs and reaps a child still running, closes the pipe

    pid_t pid_ = -1;
    int out_fd_ = -1;
    bool reaped_ = false;
    double start_ms_ = 0;
    std::size_t consumed_ = 0;  // output before this was returned by wait_line
    ChildResult result_;
};

// spawn + wait.
ChildResult run_child(const std::vector<std::string>& argv, const EnvChanges& env, int timeout_ms);

// Path of the dm_child helper: $DM_CHILD_PATH (set by meson's test environment), else
// tests/child/dm_child of the build tree this test program belongs to; empty when
// neither exists.
std::string child_program();

// SIGKILLs every child of this process still running (spawned or forked by run_isolated).
void kill_running_children();
// Bookkeeping for kill_running_children(), for code that forks by itself.
void track_child(pid_t pid, bool alive);

// Reads a key=value field out of a child's output of "k1=v1 k2=v2 ..." lines: the first
// "key=" at the start of a line or after a space; the value runs to the next space or
// end of line, except for "msg=", which runs to the end of the line. "" when absent.
std::string field(const std::string& output, std::string_view key);

}  // namespace dmtest
