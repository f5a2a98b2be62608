// Spawning and supervising helper processes (see child_process.hpp).
#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>

extern char** environ;

namespace dmtest {

double monotonic_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

std::string child_program() {
    const char* path = std::getenv("DM_CHILD_PATH");
    return path ? std::string(path) : std::string();
}

std::string ChildResult::describe() const {
    std::string s;
    if (!started) return "child did not start: " + output;
    if (timed_out)
        s = "child timed out and was killed";
    else if (term_signal)
        s = "child killed by signal " + std::to_string(term_signal);
    else
        s = "child exit code " + std::to_string(exit_code);
    s += " after " + std::to_string(static_cast<long>(elapsed_ms)) + " ms; output:\n" + output;
    return s;
}

Child Child::spawn(const std::vector<std::string>& argv, const EnvChanges& env) {
    Child child;
    if (argv.empty()) return child;

    std::map<std::string, std::string> vars;
    for (char** e = environ; e && *e; ++e) {
        std::string kv(*e);
        auto eq = kv.find('=');
        if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (auto& [key, value] : env) {
        if (value)
            vars[key] = *value;
        else
            vars.erase(key);
    }
    std::vector<std::string> env_strings;
    for (auto& [key, value] : vars) env_strings.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> argvp;
    for (auto& s : args) argvp.push_back(s.data());
    argvp.push_back(nullptr);

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return child;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);

    pid_t pid = -1;
    child.start_ms_ = monotonic_ms();
    int rc = ::posix_spawn(&pid, argvp[0], &actions, nullptr, argvp.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        child.result_.output = "posix_spawn(" + argv[0] + ") failed: " + std::strerror(rc);
        return child;
    }
    child.pid_ = pid;
    child.out_fd_ = fds[0];
    child.result_.started = true;
    return child;
}

Child::Child(Child&& other) noexcept
    : pid_(other.pid_), out_fd_(other.out_fd_), start_ms_(other.start_ms_), result_(std::move(other.result_)) {
    other.pid_ = -1;
    other.out_fd_ = -1;
}

Child& Child::operator=(Child&& other) noexcept {
    if (this != &other) {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            reap(true);
        }
        if (out_fd_ >= 0) ::close(out_fd_);
        pid_ = other.pid_;
        out_fd_ = other.out_fd_;
        start_ms_ = other.start_ms_;
        result_ = std::move(other.result_);
        other.pid_ = -1;
        other.out_fd_ = -1;
    }
    return *this;
}

Child::~Child() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        reap(true);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
}

bool Child::pump(int timeout_ms) {
    if (out_fd_ < 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    int n = ::poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (n <= 0) return true;
    char buf[4096];
    ssize_t got = ::read(out_fd_, buf, sizeof buf);
    if (got > 0) {
        result_.output.append(buf, static_cast<std::size_t>(got));
        return true;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    ::close(out_fd_);
    out_fd_ = -1;
    return false;
}

bool Child::wait_for_output(const std::string& needle, int timeout_ms) {
    double deadline = monotonic_ms() + timeout_ms;
    while (result_.output.find(needle) == std::string::npos) {
        double left = deadline - monotonic_ms();
        if (left <= 0) return false;
        if (!pump(static_cast<int>(left) + 1)) return result_.output.find(needle) != std::string::npos;
    }
    return true;
}

void Child::reap(bool block) {
    if (pid_ <= 0) return;
    int status = 0;
    rusage usage{};
    pid_t r;
    do {
        r = ::wait4(pid_, &status, block ? 0 : WNOHANG, &usage);
    } while (r < 0 && errno == EINTR);
    if (r != pid_) return;
    result_.elapsed_ms = monotonic_ms() - start_ms_;
    result_.cpu_ms = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
                     static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
    if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result_.term_signal = WTERMSIG(status);
    pid_ = -1;
}

ChildResult Child::wait(int timeout_ms) {
    double deadline = monotonic_ms() + timeout_ms;
    while (pid_ > 0) {
        double left = deadline - monotonic_ms();
        if (left <= 0) {
            ::kill(pid_, SIGKILL);
            result_.timed_out = true;
            reap(true);
            break;
        }
        if (out_fd_ >= 0) {
            if (!pump(left > 20 ? 20 : static_cast<int>(left) + 1)) reap(false);
        } else {
            ::usleep(1000);
        }
        reap(false);
    }
    while (pump(0) && out_fd_ >= 0) {
        pollfd p{out_fd_, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) break;
    }
    return result_;
}

ChildResult run_child(const std::vector<std::string>& argv, const EnvChanges& env, int timeout_ms) {
    Child child = Child::spawn(argv, env);
    if (!child.started()) {
        ChildResult r;
        r.output = child.output();
        return r;
    }
    return child.wait(timeout_ms);
}

}  // namespace dmtest
