// The fork/start/stop/reap machinery of the multi-process figures. Children are told
// to start by closing a pipe (one event wakes them all), stopped by a flag in an
// anonymous shared mapping (no system call in their loop), and report through the
// same mapping. A child never returns into the parent's code: it leaves by _exit.
#include "procs_driver.hpp"

#include "bench_error.hpp"
#include "timing.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace bench {
namespace {

constexpr std::uint64_t kReadyTimeoutNs = 60'000'000'000;  // attaching takes ms; a minute means stuck
constexpr std::uint64_t kReapGraceNs = 30'000'000'000;     // beyond the run time, then SIGKILL

// One slot per child, written only by that child; read by the parent after reaping.
struct ChildReport {
    std::uint64_t pairs;
    std::uint64_t end_ns;
    int finished;
    char error[512];
};

struct Control {
    std::atomic<int> stop;
    ChildReport reports[kMaxHammerProcesses];
};
static_assert(std::atomic<int>::is_always_lock_free, "the stop flag is shared between processes");

// Anonymous MAP_SHARED memory, visible to children forked after it is mapped.
class SharedControl {
public:
    SharedControl() {
        void* memory = mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) {
            throw BenchError(fmt::format("mmap({} B, shared anonymous): {}", sizeof(Control), std::strerror(errno)));
        }
        control_ = new (memory) Control{};
    }
    SharedControl(const SharedControl&) = delete;
    SharedControl& operator=(const SharedControl&) = delete;
    ~SharedControl() { munmap(control_, sizeof(Control)); }
    Control& operator*() const { return *control_; }
    Control* operator->() const { return control_; }

private:
    Control* control_ = nullptr;
};

class Pipe {
public:
    Pipe() {
        if (pipe2(fds_, O_CLOEXEC) != 0) {
            throw BenchError(fmt::format("pipe2: {}", std::strerror(errno)));
        }
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    ~Pipe() {
        close_read();
        close_write();
    }
    int read_fd() const { return fds_[0]; }
    int write_fd() const { return fds_[1]; }
    void close_read() { close_fd(fds_[0]); }
    void close_write() { close_fd(fds_[1]); }

private:
    static void close_fd(int& fd) {
        if (fd >= 0) {
            close(fd);
            fd = -1;
        }
    }
    int fds_[2] = {-1, -1};
};

void sleep_until(std::uint64_t deadline_ns) {
    for (std::uint64_t now = now_ns(); now < deadline_ns; now = now_ns()) {
        const std::uint64_t left_ns = deadline_ns - now;
        timespec pause{static_cast<time_t>(left_ns / 1'000'000'000), static_cast<long>(left_ns % 1'000'000'000)};
        nanosleep(&pause, nullptr);
    }
}

[[noreturn]] void run_child(Contender& contender, Control& control, int index, std::size_t size_bytes,
                            Pipe& ready, Pipe& go, pid_t parent) {
    // Never outlive the parent: an orphan would hammer the pool forever.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(3);
    }
    ready.close_read();
    go.close_write();
    ChildReport& report = control.reports[index];
    try {
        auto session = contender.open_in_child();
        const char ready_byte = 'r';
        if (write(ready.write_fd(), &ready_byte, 1) != 1) {
            _exit(4);
        }
        ready.close_write();
        char go_byte = 0;
        while (read(go.read_fd(), &go_byte, 1) < 0 && errno == EINTR) {
        }  // returns 0 when the parent closes its end: the common start
        report.pairs = session->hammer(size_bytes, control.stop);
        report.end_ns = now_ns();
        session.reset();
        report.finished = 1;
        _exit(0);
    } catch (const std::exception& error) {
        std::snprintf(report.error, sizeof report.error, "%s", error.what());
    } catch (...) {
        std::snprintf(report.error, sizeof report.error, "unknown exception");
    }
    _exit(1);
}

// Reads up to `expected` ready bytes; fewer means some child failed before attaching.
int wait_ready(int fd, int expected) {
    int ready_count = 0;
    const std::uint64_t deadline_ns = now_ns() + kReadyTimeoutNs;
    while (ready_count < expected) {
        const std::uint64_t now = now_ns();
        if (now >= deadline_ns) {
            break;
        }
        pollfd waiting{fd, POLLIN, 0};
        const int polled = poll(&waiting, 1, static_cast<int>((deadline_ns - now) / 1'000'000 + 1));
        if (polled < 0 && errno == EINTR) {
            continue;
        }
        if (polled <= 0) {
            break;
        }
        char bytes[kMaxHammerProcesses];
        const ssize_t got = read(fd, bytes, sizeof bytes);
        if (got <= 0) {
            break;  // EOF: every child closed its end, some without being ready
        }
        ready_count += static_cast<int>(got);
    }
    return ready_count;
}

// Waits for every child until `deadline_ns`, then kills the rest. Returns one line per
// child that did not exit with status 0.
std::vector<std::string> reap(std::vector<pid_t>& children, std::uint64_t deadline_ns) {
    std::vector<std::string> problems;
    std::vector<bool> done(children.size(), false);
    std::size_t remaining = children.size();
    while (remaining > 0) {
        for (std::size_t i = 0; i < children.size(); ++i) {
            if (done[i]) {
                continue;
            }
            int status = 0;
            const pid_t reaped = waitpid(children[i], &status, WNOHANG);
            if (reaped == 0) {
                continue;
            }
            done[i] = true;
            --remaining;
            if (reaped < 0) {
                problems.push_back(fmt::format("child {}: waitpid: {}", i, std::strerror(errno)));
            } else if (WIFSIGNALED(status)) {
                problems.push_back(fmt::format("child {} died of signal {}", i, WTERMSIG(status)));
            } else if (WEXITSTATUS(status) != 0) {
                problems.push_back(fmt::format("child {} exited with status {}", i, WEXITSTATUS(status)));
            }
        }
        if (remaining == 0) {
            break;
        }
        if (now_ns() >= deadline_ns) {
            for (std::size_t i = 0; i < children.size(); ++i) {
                if (!done[i]) {
                    kill(children[i], SIGKILL);
                    waitpid(children[i], nullptr, 0);
                    problems.push_back(fmt::format("child {} hung and was killed", i));
                }
            }
            break;
        }
        sleep_until(now_ns() + 1'000'000);
    }
    return problems;
}

}  // namespace

HammerOutcome hammer(Contender& contender, int processes, std::size_t size_bytes, std::uint64_t duration_ns) {
    if (processes < 1 || processes > kMaxHammerProcesses) {
        throw BenchError(fmt::format("{} processes requested; 1 to {} supported", processes, kMaxHammerProcesses));
    }
    SharedControl control;
    Pipe ready;
    Pipe go;
    const pid_t parent = getpid();
    std::fflush(nullptr);  // output buffered so far is written once, by the parent
    std::vector<pid_t> children;
    for (int index = 0; index < processes; ++index) {
        const pid_t child = fork();
        if (child == 0) {
            run_child(contender, *control, index, size_bytes, ready, go, parent);
        }
        if (child < 0) {
            control->stop.store(1);
            go.close_write();
            const std::string fork_error = std::strerror(errno);
            reap(children, now_ns() + kReapGraceNs);
            throw BenchError(fmt::format("fork of child {} of {}: {}", index, processes, fork_error));
        }
        children.push_back(child);
    }
    ready.close_write();
    go.close_read();

    const int ready_count = wait_ready(ready.read_fd(), processes);
    if (ready_count < processes) {
        control->stop.store(1);  // the ready ones start and stop at once
    }
    const std::uint64_t start_ns = now_ns();
    go.close_write();
    if (ready_count == processes) {
        sleep_until(start_ns + duration_ns);
        control->stop.store(1, std::memory_order_relaxed);
    }
    std::vector<std::string> problems = reap(children, now_ns() + kReapGraceNs);

    HammerOutcome outcome;
    std::uint64_t last_end_ns = start_ns;
    for (int index = 0; index < processes; ++index) {
        const ChildReport& report = control->reports[index];
        if (report.error[0] != '\0') {
            problems.push_back(fmt::format("child {}: {}", index, report.error));
        } else if (report.finished == 0 && ready_count == processes) {
            problems.push_back(fmt::format("child {} did not finish", index));
        }
        outcome.pairs += report.pairs;
        last_end_ns = std::max(last_end_ns, report.end_ns);
    }
    if (ready_count < processes) {
        problems.push_back(fmt::format("only {} of {} children attached", ready_count, processes));
    }
    if (!problems.empty()) {
        std::string message = fmt::format("{} processes:", processes);
        for (const auto& problem : problems) {
            message += " " + problem + ";";
        }
        throw BenchError(message);
    }
    outcome.window_ns = last_end_ns - start_ns;
    return outcome;
}

}  // namespace bench
