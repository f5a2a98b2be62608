// The start/stop machinery of the scaling figures. Processes: children are told to
// start by closing a pipe (one event wakes them all), stopped by a flag in an anonymous
// shared mapping (no system call in their loop), and report through the same mapping; a
// child never returns into the parent's code: it leaves by _exit. Threads: the same
// flag and reports, a latch for the start.
#include "scaling_driver.hpp"


#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <thread>
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

// One slot per worker, written only by that worker; read by the parent after reaping.
// A line of its own: workers writing their reports at the end never share one.
struct alignas(64) ChildReport {
    std::uint64_t pairs;
    std::uint64_t end_ns;
    std::uint64_t cpu_ns;  // CPU time of the worker's hammer loop (its thread's)
    int finished;
    char error[512];
};

struct Control {
    alignas(64) std::atomic<int> stop;  // read by every worker's loop: nothing else on its line
    ChildReport reports[kMaxHammerWorkers];
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

// CPU time of the calling thread: what a pair costs whether or not the worker was
// descheduled meanwhile (on a busy machine wall time is mostly waiting for a CPU).
void sleep_until(std::uint64_t deadline_ns) {
    for (std::uint64_t now = now_ns(); now < deadline_ns; now = now_ns()) {
        const std::uint64_t left_ns = deadline_ns - now;
        timespec pause{static_cast<time_t>(left_ns / 1'000'000'000), static_cast<long>(left_ns % 1'000'000'000)};
        nanosleep(&pause, nullptr);
    }
}

[[noreturn]] void run_child(Contender& contender, Control& control, int index, bool pinned, std::size_t size_bytes,
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
        if (pinned && !pin_to_cpu(index)) {
            throw BenchError(fmt::format("pinning child {} to CPU {} failed", index,
                                         usable_cpus()[static_cast<std::size_t>(index) % usable_cpus().size()]));
        }
        auto session = contender.open_in_child();
        const char ready_byte = 'r';
        if (write(ready.write_fd(), &ready_byte, 1) != 1) {
            _exit(4);
        }
        ready.close_write();
        char go_byte = 0;
        while (read(go.read_fd(), &go_byte, 1) < 0 && errno == EINTR) {
        }  // returns 0 when the parent closes its end: the common start
        const std::uint64_t cpu_start_ns = thread_cpu_ns();
        report.pairs = session->hammer(size_bytes, control.stop);
        report.end_ns = now_ns();
        report.cpu_ns = thread_cpu_ns() - cpu_start_ns;
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
        char bytes[64];
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

// One thread of a threads figure: opens its own session, waits for the common start.
void run_thread(Contender& contender, Control& control, int index, bool pinned, std::size_t size_bytes,
                std::latch& ready, std::latch& go) {
    ChildReport& report = control.reports[index];
    bool counted_ready = false;
    try {
        if (pinned && !pin_to_cpu(index)) {
            throw BenchError(fmt::format("pinning thread {} to CPU {} failed", index,
                                         usable_cpus()[static_cast<std::size_t>(index) % usable_cpus().size()]));
        }
        auto session = contender.open_in_child();
        ready.count_down();
        counted_ready = true;
        go.wait();
        const std::uint64_t cpu_start_ns = thread_cpu_ns();
        report.pairs = session->hammer(size_bytes, control.stop);
        report.end_ns = now_ns();
        report.cpu_ns = thread_cpu_ns() - cpu_start_ns;
        session.reset();
        report.finished = 1;
        return;
    } catch (const std::exception& error) {
        std::snprintf(report.error, sizeof report.error, "%s", error.what());
    } catch (...) {
        std::snprintf(report.error, sizeof report.error, "unknown exception");
    }
    control.stop.store(1);  // the others stop at once
    if (!counted_ready) ready.count_down();
}

HammerOutcome collect(const Control& control, int workers, bool all_started, std::uint64_t start_ns,
                      std::vector<std::string> problems, const char* what) {
    HammerOutcome outcome;
    std::uint64_t last_end_ns = start_ns;
    for (int index = 0; index < workers; ++index) {
        const ChildReport& report = control.reports[index];
        if (report.error[0] != '\0') {
            problems.push_back(fmt::format("{} {}: {}", what, index, report.error));
        } else if (report.finished == 0 && all_started) {
            problems.push_back(fmt::format("{} {} did not finish", what, index));
        }
        outcome.pairs += report.pairs;
        outcome.cpu_ns += report.cpu_ns;
        last_end_ns = std::max(last_end_ns, report.end_ns);
    }
    if (!problems.empty()) {
        std::string message = fmt::format("{} {}s:", workers, what);
        for (const auto& problem : problems) {
            message += " " + problem + ";";
        }
        throw BenchError(message);
    }
    outcome.window_ns = last_end_ns - start_ns;
    return outcome;
}

HammerOutcome hammer_processes(Contender& contender, int processes, bool pinned, std::size_t size_bytes,
                               std::uint64_t duration_ns) {
    SharedControl control;
    Pipe ready;
    Pipe go;
    const pid_t parent = getpid();
    std::fflush(nullptr);  // output buffered so far is written once, by the parent
    std::vector<pid_t> children;
    for (int index = 0; index < processes; ++index) {
        const pid_t child = fork();
        if (child == 0) {
            run_child(contender, *control, index, pinned, size_bytes, ready, go, parent);
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
    if (ready_count < processes) {
        problems.push_back(fmt::format("only {} of {} children attached", ready_count, processes));
    }
    return collect(*control, processes, ready_count == processes, start_ns, std::move(problems), "process");
}

HammerOutcome hammer_threads(Contender& contender, int threads, bool pinned, std::size_t size_bytes,
                             std::uint64_t duration_ns) {
    SharedControl control;  // the same layout as for processes; only this process uses it
    std::latch ready(threads);
    std::latch go(1);
    std::vector<std::thread> workers;
    std::vector<std::string> problems;
    for (int index = 0; index < threads; ++index) {
        try {
            workers.emplace_back(run_thread, std::ref(contender), std::ref(*control), index, pinned, size_bytes,
                                 std::ref(ready), std::ref(go));
        } catch (const std::system_error& error) {
            problems.push_back(fmt::format("thread {} not started: {}", index, error.what()));
            control->stop.store(1);
            for (int rest = index; rest < threads; ++rest) ready.count_down();
            break;
        }
    }
    ready.wait();
    const std::uint64_t start_ns = now_ns();
    go.count_down();
    if (control->stop.load() == 0) {
        sleep_until(start_ns + duration_ns);
        control->stop.store(1, std::memory_order_relaxed);
    }
    for (std::thread& worker : workers) worker.join();
    return collect(*control, static_cast<int>(workers.size()), problems.empty(), start_ns, std::move(problems),
                   "thread");
}

}  // namespace

const std::vector<int>& usable_cpus() {
    static const std::vector<int> cpus = [] {
        std::vector<int> out;
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) == 0) {
            for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
                if (CPU_ISSET(cpu, &set)) out.push_back(cpu);
            }
        }
        if (out.empty()) out.push_back(0);
        return out;
    }();
    return cpus;
}

bool pin_to_cpu(int index) {
    const std::vector<int>& cpus = usable_cpus();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[static_cast<std::size_t>(index) % cpus.size()], &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

std::vector<int> worker_counts(int limit) {
    std::vector<int> counts;
    for (int n = 1; n < limit; n *= 2) counts.push_back(n);
    counts.push_back(std::max(limit, 1));
    return counts;
}

HammerOutcome hammer(Contender& contender, WorkerKind kind, int workers, bool pinned, std::size_t size_bytes,
                     std::uint64_t duration_ns) {
    if (workers < 1 || workers > kMaxHammerWorkers) {
        throw BenchError(fmt::format("{} workers requested; 1 to {} supported", workers, kMaxHammerWorkers));
    }
    return kind == WorkerKind::process ? hammer_processes(contender, workers, pinned, size_bytes, duration_ns)
                                       : hammer_threads(contender, workers, pinned, size_bytes, duration_ns);
}

}  // namespace bench
