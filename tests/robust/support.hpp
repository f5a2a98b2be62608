// Shared pieces of the robustness tests (tests/robust): unique pool names with cleanup
// that survives failures, running the dm_robust_child helper (fork+exec) and killing
// it, running a risky call in a forked child so a crash becomes a failed check, a
// watchdog that turns a hang into a failure, a snapshot of everything observable about
// a pool (to assert "unchanged"), and an independent CRC-32C to forge descriptors.
#pragma once

#include <doctest/doctest.h>

#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include <sys/types.h>

#include <csignal>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

inline doctest::String toString(dragonError_t rc) {
    std::string s = std::string(dragon_getrcstr(rc)) + " (" + std::to_string(static_cast<int>(rc)) + ")";
    return doctest::String(s.c_str());
}

namespace robust {

// Built with AddressSanitizer? Its allocator takes memory in big mmapped chunks and treats
// a refusal as fatal, so tests that starve a process of memory (RLIMIT_DATA) run only in
// the other builds.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_address_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool k_address_sanitizer = true;
#else
inline constexpr bool k_address_sanitizer = false;
#endif
#else
inline constexpr bool k_address_sanitizer = false;
#endif

// ---- names and cleanup

// "dmr<pid>_<n><suffix>": unique per process, remembered for the sweep at exit.
std::string unique_name(std::string_view suffix = "");
std::string shm_path(std::string_view pool_name);  // /dev/shm/dragonmem.<name>
bool shm_exists(std::string_view pool_name);
// Unlinks /dev/shm/dragonmem.<name> (ignores errors).
void unlink_pool(std::string_view pool_name);
// Unlinks every object named by unique_name() in this process; returns what it removed.
std::vector<std::string> sweep();
// Unlinks the objects of earlier runs that died before their own sweep (a sanitizer
// halting the process, a SIGKILL): dmr<pid>_* whose pid no longer exists.
std::vector<std::string> sweep_dead_runs();

// Removes a pool's object on scope exit, whatever happened.
class ShmGuard {
public:
    explicit ShmGuard(std::string name) : name_(std::move(name)) {}
    ShmGuard(const ShmGuard&) = delete;
    ShmGuard& operator=(const ShmGuard&) = delete;
    ~ShmGuard() { unlink_pool(name_); }
    const std::string& name() const { return name_; }

private:
    std::string name_;
};

// A C++ pool with a unique name; destroyed (if still usable) and unlinked at scope exit.
class ScopedPool {
public:
    explicit ScopedPool(std::size_t bytes, dragonmem::PoolOptions options = {}, std::string_view suffix = "");
    ~ScopedPool();
    ScopedPool(const ScopedPool&) = delete;
    ScopedPool& operator=(const ScopedPool&) = delete;
    dragonmem::Pool& pool() { return pool_; }
    const std::string& name() const { return guard_.name(); }

private:
    ShmGuard guard_;
    dragonmem::Pool pool_;
};

// ---- time

double now_ms();  // CLOCK_MONOTONIC, comparable across processes
timespec ms_timespec(long ms);
bool long_mode();  // DRAGONMEM_LONG_TESTS=1 or --long on the command line
void set_long_mode(bool on);

// SIGKILLs nothing and aborts nothing: if `arm()`ed and not `disarm()`ed within the
// limit, prints `what` and ends the process with exit status 124 (the meson test then
// fails instead of hanging until the harness timeout, and says where it hung).
class Watchdog {
public:
    Watchdog();
    ~Watchdog();
    void arm(double limit_ms, std::string what);
    void disarm();

private:
    void run();
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<double> deadline_ms_{0};
    std::string what_;
    std::thread thread_;
};
Watchdog& watchdog();

// ---- child processes

// Path of dm_robust_child from $DM_ROBUST_CHILD (set by meson), else next to this binary.
std::string child_program();

struct ChildExit {
    bool exited = false;
    int code = -1;
    int signal = 0;
    double cpu_ms = 0;  // user + system time of the child (rusage)
    std::string describe() const;
};

// A running program with its stdout (and stderr) on a pipe.
class Child {
public:
    // argv[0] is the program; `env_add` holds "NAME=value" entries set for the child.
    // spawn_as drops to uid/gid/groups in the child before exec (needs root).
    static Child spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env_add = {});
    static Child spawn_as(const std::vector<std::string>& argv, uid_t uid, gid_t gid,
                          const std::vector<gid_t>& groups, const std::vector<std::string>& env_add = {});

    Child() = default;
    Child(Child&& other) noexcept;
    Child& operator=(Child&& other) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child();  // SIGKILLs and reaps a child still running

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0 && !reaped_; }
    // Reads output until a line starting with `prefix` appears; returns it (nullopt on
    // timeout or EOF).
    std::optional<std::string> wait_line(std::string_view prefix, int timeout_ms);
    const std::string& output() const { return output_; }
    void kill_now(int sig = SIGKILL);  // does not reap
    // Waits for exit (SIGKILLs at the deadline: then signal == SIGKILL and timed_out).
    ChildExit wait(int timeout_ms, bool* timed_out = nullptr);
    // Reaps the child if it has exited (no waiting); true when it has.
    bool try_reap();
    const ChildExit& exit_status() const { return exit_; }

private:
    bool pump(int timeout_ms);
    void end() noexcept;  // SIGKILLs and reaps a child still running, closes the pipe
    pid_t pid_ = -1;
    int out_fd_ = -1;
    bool reaped_ = false;
    std::string output_;
    std::size_t consumed_ = 0;  // lines before this were returned by wait_line
    ChildExit exit_;
};

// Runs `fn` in a forked child (no exec): whatever it returns (a verdict text) comes back;
// a crash or a hang past `timeout_ms` comes back as "CRASH: ..." / "HANG: ...".
struct Isolated {
    bool completed = false;  // fn returned (exit 0)
    std::string text;        // what fn returned, or how it died
};
Isolated run_isolated(const std::function<std::string()>& fn, int timeout_ms = 10000);

// Reads a key=value field out of a line of "k1=v1 k2=v2 ..."; the value runs to the next
// space, except for the last key "msg=" which runs to the end of the line.
std::string field(const std::string& line, std::string_view key);

// ---- pool observation

// Everything observable about a pool's occupancy, to assert "the pool is unchanged".
struct PoolSnapshot {
    std::uint64_t free_bytes = 0;
    std::uint64_t live = 0;
    std::vector<dragonmem::AllocationInfo> allocations;
    std::vector<std::size_t> free_block_counts;
    bool check_ok = false;
    std::vector<std::string> problems;
    bool operator==(const PoolSnapshot& o) const;
    std::string describe() const;
};
PoolSnapshot snapshot(const dragonmem::Pool& pool);

// Frees every live allocation of the pool (anyone may free anything); returns how many.
std::size_t free_all(const dragonmem::Pool& pool);

// The library's last error message for this thread.
std::string last_error();

// ---- descriptors

// Counts bad inputs the tests tried (printed by main at the end of the run).
void count_bad_inputs(std::uint64_t n = 1);
std::uint64_t bad_inputs_tried();

std::uint32_t crc32c(const std::uint8_t* data, std::size_t len);
// Recomputes a serialized descriptor's length and CRC fields (offsets 8 and 12) so a
// forged body passes the envelope checks and reaches the field validation.
void reseal(std::vector<std::uint8_t>& descriptor);
std::string base64(const std::vector<std::uint8_t>& bytes);

// A C++ call as rc + message: DRAGON_SUCCESS, or the code and message of the dragonmem::Error it threw.
dragonError_t rc_of(const std::function<void()>& fn, std::string& message);

}  // namespace robust

// `rc` equals `expected` and, on failure, a non-empty message was left.
#define ROBUST_CHECK_RC(expr, expected)                                                                      \
    do {                                                                                                     \
        const dragonError_t robust_rc_ = (expr);                                                             \
        const dragonError_t robust_expected_ = (expected);                                                   \
        const std::string robust_msg_ = robust_rc_ != DRAGON_SUCCESS ? ::robust::last_error() : std::string(); \
        CHECK_MESSAGE(robust_rc_ == robust_expected_,                                                        \
                      #expr " returned " << toString(robust_rc_) << " (expected " << toString(robust_expected_) \
                                         << "); message: '" << robust_msg_ << "'");                           \
        if (robust_expected_ != DRAGON_SUCCESS && robust_rc_ == robust_expected_)                            \
            CHECK_MESSAGE(!robust_msg_.empty(), #expr " failed without a message");                          \
    } while (0)
