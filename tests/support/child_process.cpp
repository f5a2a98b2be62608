// Spawning and supervising helper processes (see child_process.hpp).
#include "child_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <set>

extern char** environ;

namespace dmtest {

double now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// ---------------------------------------------------------------- child tracking

namespace {
// Children still running, so a watchdog exit does not leave them hammering a pool.
std::mutex g_children_mutex;
std::set<pid_t>& live_children() {
    static auto* set = new std::set<pid_t>;  // outlives atexit handlers
    return *set;
}
}  // namespace

void track_child(pid_t pid, bool alive) {
    std::lock_guard lock(g_children_mutex);
    if (alive)
        live_children().insert(pid);
    else
        live_children().erase(pid);
}

void kill_running_children() {
    std::lock_guard lock(g_children_mutex);
    for (pid_t pid : live_children()) ::kill(pid, SIGKILL);
}

// ---------------------------------------------------------------- the helper program

std::string child_program() {
    if (const char* path = std::getenv("DM_CHILD_PATH"); path != nullptr && *path != '\0') return path;
    // Run by hand: the build tree's tests/child/dm_child, from tests/<dir>/<this program>.
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return {};
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    const std::string path = dir.substr(0, dir.rfind('/') + 1) + "child/dm_child";
    return ::access(path.c_str(), X_OK) == 0 ? path : std::string();
}

// ---------------------------------------------------------------- results

std::string ChildResult::describe() const {
    if (!started) return "child did not start: " + output;
    std::string s;
    if (timed_out)
        s = "child timed out and was killed";
    else if (exited)
        s = "child exited with status " + std::to_string(code);
    else if (signal != 0)
        s = "child killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
    else
        s = "child not reaped";
    s += " after " + std::to_string(static_cast<long>(elapsed_ms)) + " ms, cpu " +
         std::to_string(static_cast<long>(cpu_ms)) + " ms; output:\n" + output;
    return s;
}

std::string field(const std::string& output, std::string_view key) {
    const std::string needle = std::string(key) + "=";
    std::size_t at = 0;
    while ((at = output.find(needle, at)) != std::string::npos) {
        if (at == 0 || output[at - 1] == ' ' || output[at - 1] == '\n') break;
        at += needle.size();
    }
    if (at == std::string::npos) return "";
    at += needle.size();
    const std::size_t end = key == "msg" ? output.find('\n', at) : output.find_first_of(" \n", at);
    return output.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// ---------------------------------------------------------------- Child

Child Child::spawn_impl(const std::vector<std::string>& argv, const EnvChanges& env, bool drop, uid_t uid, gid_t gid,
                        const std::vector<gid_t>& groups) {
    Child child;
    if (argv.empty()) return child;
    // Everything the child needs is built before fork: the child only calls
    // async-signal-safe functions (the parent may have other threads).
    std::map<std::string, std::string> vars;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string kv(*e);
        const auto eq = kv.find('=');
        if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [key, value] : env) {
        if (value)
            vars[key] = *value;
        else
            vars.erase(key);
    }
    std::vector<std::string> env_strings;
    for (const auto& [key, value] : vars) env_strings.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> argvp;
    for (std::string& s : args) argvp.push_back(s.data());
    argvp.push_back(nullptr);
    const std::string exec_failed = "spawn: exec " + argv[0] + " failed\n";

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        child.result_.output = std::string("pipe failed: ") + std::strerror(errno);
        return child;
    }
    std::fflush(nullptr);
    child.start_ms_ = now_ms();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        const int null_fd = ::open("/dev/null", O_RDONLY);
        if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
        if (drop && (::setgroups(groups.size(), groups.data()) != 0 || ::setresgid(gid, gid, gid) != 0 ||
                     ::setresuid(uid, uid, uid) != 0)) {
            static const char msg[] = "spawn: dropping to another uid failed\n";
            (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
            ::_exit(126);
        }
        ::execve(argvp[0], argvp.data(), envp.data());
        (void)!::write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
        ::_exit(127);
    }
    ::close(fds[1]);
    if (pid < 0) {
        ::close(fds[0]);
        child.result_.output = "fork(" + argv[0] + ") failed: " + std::strerror(errno);
        return child;
    }
    track_child(pid, true);
    child.pid_ = pid;
    child.out_fd_ = fds[0];
    child.result_.started = true;
    return child;
}

Child Child::spawn(const std::vector<std::string>& argv, const EnvChanges& env) {
    return spawn_impl(argv, env, false, 0, 0, {});
}

Child Child::spawn_as(const std::vector<std::string>& argv, uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                      const EnvChanges& env) {
    return spawn_impl(argv, env, true, uid, gid, groups);
}

Child::Child(Child&& other) noexcept { *this = std::move(other); }

Child& Child::operator=(Child&& other) noexcept {
    if (this != &other) {
        end();  // not ~Child(): the members must stay alive to be assigned
        pid_ = other.pid_;
        out_fd_ = other.out_fd_;
        reaped_ = other.reaped_;
        start_ms_ = other.start_ms_;
        consumed_ = other.consumed_;
        result_ = std::move(other.result_);
        other.pid_ = -1;
        other.out_fd_ = -1;
    }
    return *this;
}

Child::~Child() { end(); }

void Child::end() noexcept {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        track_child(pid_, false);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    pid_ = -1;
    out_fd_ = -1;
}

bool Child::pump(int timeout_ms) {
    if (out_fd_ < 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (ready <= 0) return true;
    char buffer[4096];
    const ssize_t got = ::read(out_fd_, buffer, sizeof buffer);
    if (got > 0) {
        result_.output.append(buffer, static_cast<std::size_t>(got));
        return true;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    ::close(out_fd_);
    out_fd_ = -1;
    return false;
}

bool Child::wait_for_output(const std::string& needle, int timeout_ms) {
    const double deadline = now_ms() + timeout_ms;
    while (result_.output.find(needle) == std::string::npos) {
        const double left = deadline - now_ms();
        if (left <= 0) return false;
        if (!pump(static_cast<int>(std::min(left, 50.0)) + 1)) return result_.output.find(needle) != std::string::npos;
    }
    return true;
}

std::optional<std::string> Child::wait_line(std::string_view prefix, int timeout_ms) {
    const double deadline = now_ms() + timeout_ms;
    for (;;) {
        std::size_t line_start = consumed_;
        for (;;) {
            const std::size_t end = result_.output.find('\n', line_start);
            if (end == std::string::npos) break;
            std::string line = result_.output.substr(line_start, end - line_start);
            line_start = end + 1;
            if (line.rfind(prefix, 0) == 0) {
                consumed_ = line_start;
                return line;
            }
        }
        const double left = deadline - now_ms();
        if (left <= 0) return std::nullopt;
        if (!pump(static_cast<int>(std::min(left, 50.0)))) {
            // EOF: the scan above saw everything there will ever be.
            if (result_.output.find('\n', line_start) == std::string::npos) return std::nullopt;
        }
    }
}

void Child::kill_now(int sig) {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

bool Child::try_reap() {
    if (pid_ <= 0) return false;
    if (reaped_) return true;
    int status = 0;
    rusage usage{};
    pid_t r;
    do {
        r = ::wait4(pid_, &status, WNOHANG, &usage);
    } while (r < 0 && errno == EINTR);
    if (r != pid_) return false;
    reaped_ = true;
    track_child(pid_, false);
    result_.elapsed_ms = now_ms() - start_ms_;
    result_.exited = WIFEXITED(status);
    result_.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    result_.cpu_ms = (static_cast<double>(usage.ru_utime.tv_sec) + static_cast<double>(usage.ru_stime.tv_sec)) * 1e3 +
                     (static_cast<double>(usage.ru_utime.tv_usec) + static_cast<double>(usage.ru_stime.tv_usec)) / 1e3;
    while (pump(0) && out_fd_ >= 0) {  // what it wrote before exiting
        pollfd p{out_fd_, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) break;
    }
    return true;
}

ChildResult Child::wait(int timeout_ms) {
    if (pid_ <= 0 || reaped_) return result_;
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        if (try_reap()) return result_;
        if (now_ms() > deadline && !result_.timed_out) {
            result_.timed_out = true;
            ::kill(pid_, SIGKILL);
            deadline = now_ms() + 5000;
        }
        if (out_fd_ >= 0)
            pump(5);
        else
            ::usleep(2000);
    }
}

ChildResult run_child(const std::vector<std::string>& argv, const EnvChanges& env, int timeout_ms) {
    Child child = Child::spawn(argv, env);
    if (!child.started()) return child.result();
    return child.wait(timeout_ms);
}

}  // namespace dmtest
