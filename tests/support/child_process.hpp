// Running the dm_child helper as a separate program (posix_spawn = fork+exec): its
// stdout+stderr are captured through a pipe, it can be waited for with a deadline and
// is SIGKILLed when the deadline passes or the handle is dropped, so a hung child
// turns into a failed check instead of a hung suite.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dmtest {

// Environment changes for a child: value to set, or nullopt to remove the variable.
using EnvChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;

struct ChildResult {
    bool started = false;
    bool timed_out = false;    // killed by us at the deadline
    int exit_code = -1;        // when it exited normally
    int term_signal = 0;       // when a signal ended it
    std::string output;        // stdout and stderr, interleaved
    double elapsed_ms = 0;     // from spawn to exit
    double cpu_ms = 0;         // user + system CPU time of the child

    bool exited_with(int code) const { return started && !timed_out && term_signal == 0 && exit_code == code; }
    std::string describe() const;  // one line for failure messages
};

class Child {
public:
    // argv[0] is the program path. The child gets this process's environment with
    // `env` applied.
    static Child spawn(const std::vector<std::string>& argv, const EnvChanges& env = {});

    Child() = default;
    Child(Child&& other) noexcept;
    Child& operator=(Child&& other) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();  // kills and reaps a child still running

    bool started() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    // Reads output until it contains `needle` (true) or the deadline/EOF (false).
    bool wait_for_output(const std::string& needle, int timeout_ms);
    // Waits for exit; SIGKILLs at the deadline (timed_out = true).
    ChildResult wait(int timeout_ms);
    const std::string& output() const { return result_.output; }

private:
    bool pump(int timeout_ms);  // reads what is available; false at EOF
    void reap(bool block);

    pid_t pid_ = -1;
    int out_fd_ = -1;
    double start_ms_ = 0;
    ChildResult result_;
};

// spawn + wait.
ChildResult run_child(const std::vector<std::string>& argv, const EnvChanges& env, int timeout_ms);

// Path of the dm_child helper from $DM_CHILD_PATH (set by meson's test env); empty
// when unset.
std::string child_program();

double monotonic_ms();

}  // namespace dmtest
