// Implementation of the robustness tests' shared pieces (see support.hpp).
#include "support.hpp"

#include <dirent.h>
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
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>

extern char** environ;

namespace robust {

// ---------------------------------------------------------------- names and cleanup

namespace {
std::mutex g_names_mutex;
std::set<std::string>& names_handed_out() {
    static auto* names = new std::set<std::string>;  // outlives atexit handlers
    return *names;
}
std::atomic<unsigned> g_name_counter{0};
std::once_flag g_sweep_once;
void sweep_at_exit() { (void)sweep(); }
}  // namespace

std::string unique_name(std::string_view suffix) {
    std::call_once(g_sweep_once, [] { std::atexit(sweep_at_exit); });
    std::string name = "dmr" + std::to_string(::getpid()) + "_" + std::to_string(++g_name_counter) + std::string(suffix);
    if (name.size() > 29) name.resize(29);
    std::lock_guard lock(g_names_mutex);
    names_handed_out().insert(name);
    return name;
}

std::string shm_path(std::string_view pool_name) { return "/dev/shm/dragonmem." + std::string(pool_name); }

bool shm_exists(std::string_view pool_name) { return ::access(shm_path(pool_name).c_str(), F_OK) == 0; }

void unlink_pool(std::string_view pool_name) { (void)::unlink(shm_path(pool_name).c_str()); }

std::vector<std::string> sweep() {
    std::vector<std::string> removed;
    std::set<std::string> names;
    {
        std::lock_guard lock(g_names_mutex);
        names = names_handed_out();
    }
    for (const std::string& name : names)
        if (::unlink(shm_path(name).c_str()) == 0) removed.push_back(shm_path(name));
    return removed;
}

std::vector<std::string> sweep_dead_runs() {
    std::vector<std::string> removed;
    DIR* dir = ::opendir("/dev/shm");
    if (dir == nullptr) return removed;
    const std::string prefix = "dragonmem.dmr";
    while (dirent* entry = ::readdir(dir)) {
        std::string file = entry->d_name;
        if (file.rfind(prefix, 0) != 0) continue;
        char* end = nullptr;
        long pid = std::strtol(file.c_str() + prefix.size(), &end, 10);
        if (pid <= 0 || end == nullptr || *end != '_') continue;
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH && ::unlink(("/dev/shm/" + file).c_str()) == 0)
            removed.push_back("/dev/shm/" + file);
    }
    ::closedir(dir);
    return removed;
}

ScopedPool::ScopedPool(std::size_t bytes, dragonmem::PoolOptions options, std::string_view suffix)
    : guard_(unique_name(suffix)) {
    pool_ = dragonmem::Pool::create(guard_.name(), bytes, 1, options);
}

ScopedPool::~ScopedPool() {
    try {
        if (pool_.valid()) pool_.destroy();
    } catch (const dragonmem::Error&) {
        // Already destroyed or unusable: the guard unlinks the object anyway.
    }
}

// ---------------------------------------------------------------- child tracking

namespace {
// Children still running, so a watchdog exit does not leave them hammering a pool.
std::mutex g_children_mutex;
std::set<pid_t>& live_children() {
    static auto* set = new std::set<pid_t>;
    return *set;
}
void track_child(pid_t pid, bool alive) {
    std::lock_guard lock(g_children_mutex);
    if (alive)
        live_children().insert(pid);
    else
        live_children().erase(pid);
}
void kill_tracked_children() {
    std::lock_guard lock(g_children_mutex);
    for (pid_t pid : live_children()) ::kill(pid, SIGKILL);
}
}  // namespace

// ---------------------------------------------------------------- time

double now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

timespec ms_timespec(long ms) {
    timespec ts{};
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    return ts;
}

namespace {
std::atomic<int> g_long_mode{-1};
}

bool long_mode() {
    int mode = g_long_mode.load();
    if (mode < 0) {
        const char* env = std::getenv("DRAGONMEM_LONG_TESTS");
        mode = env != nullptr && std::strcmp(env, "1") == 0 ? 1 : 0;
        g_long_mode.store(mode);
    }
    return mode == 1;
}

void set_long_mode(bool on) { g_long_mode.store(on ? 1 : 0); }

namespace {

// What every thread of this process is blocked in, for a hang report: state, kernel wait
// channel and current system call (for a futex, its second field is the futex address:
// a pool lock or wake word lives inside a pool mapping, a std::barrier's does not).
void describe_threads() {
    DIR* dir = ::opendir("/proc/self/task");
    if (dir == nullptr) return;
    std::fprintf(stderr, "WATCHDOG: threads (tid: wchan | syscall nr args...):\n");
    while (dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        auto read_line = [&](const char* what) {
            std::string path = std::string("/proc/self/task/") + e->d_name + "/" + what;
            char buf[256] = {};
            int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) return std::string("?");
            ssize_t n = ::read(fd, buf, sizeof buf - 1);
            ::close(fd);
            std::string line(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
            while (!line.empty() && line.back() == '\n') line.pop_back();
            return line;
        };
        std::fprintf(stderr, "  %s: %s | %s\n", e->d_name, read_line("wchan").c_str(), read_line("syscall").c_str());
    }
    ::closedir(dir);
    std::fprintf(stderr, "WATCHDOG: mappings of pools:\n");
    if (FILE* maps = std::fopen("/proc/self/maps", "r")) {
        char line[512];
        while (std::fgets(line, sizeof line, maps) != nullptr)
            if (std::strstr(line, "dragonmem.") != nullptr) std::fprintf(stderr, "  %s", line);
        std::fclose(maps);
    }
}

}  // namespace

Watchdog::Watchdog() : thread_([this] { run(); }) {}

Watchdog::~Watchdog() {
    stop_.store(true);
    thread_.join();
}

void Watchdog::arm(double limit_ms, std::string what) {
    {
        std::lock_guard lock(g_names_mutex);
        what_ = std::move(what);
    }
    deadline_ms_.store(now_ms() + limit_ms);
    generation_.fetch_add(1);
}

void Watchdog::disarm() { deadline_ms_.store(0); }

void Watchdog::run() {
    while (!stop_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        double deadline = deadline_ms_.load();
        if (deadline != 0 && now_ms() > deadline) {
            std::string what;
            {
                std::lock_guard lock(g_names_mutex);
                what = what_;
            }
            std::fprintf(stderr, "\nWATCHDOG: '%s' did not finish in time: the library hung. Cleaning up and exiting.\n",
                         what.c_str());
            describe_threads();
            kill_tracked_children();
            for (const std::string& removed : sweep()) std::fprintf(stderr, "  removed %s\n", removed.c_str());
            std::fprintf(stdout, "[doctest] test cases: 1 | 0 passed | 1 failed | (watchdog: %s)\n", what.c_str());
            std::fflush(stdout);
            std::_Exit(124);
        }
    }
}

Watchdog& watchdog() {
    static auto* dog = new Watchdog();  // never destroyed: may fire during static destruction
    return *dog;
}

// ---------------------------------------------------------------- children

std::string child_program() {
    if (const char* path = std::getenv("DM_ROBUST_CHILD"); path != nullptr && *path != '\0') return path;
    char self[4096];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return "dm_robust_child";
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/') + 1);
    return dir + "dm_robust_child";
}

std::string ChildExit::describe() const {
    std::ostringstream out;
    if (exited)
        out << "exited with status " << code;
    else if (signal != 0)
        out << "killed by signal " << signal << " (" << strsignal(signal) << ")";
    else
        out << "not reaped";
    out << ", cpu " << cpu_ms << " ms";
    return out.str();
}

namespace {

void spawn_impl(const std::vector<std::string>& argv, const std::vector<std::string>& env_add, bool drop, uid_t uid,
                gid_t gid, const std::vector<gid_t>& groups, pid_t& pid_out, int& fd_out) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return;
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    for (const std::string& add : env_add) {
        std::string key = add.substr(0, add.find('=') + 1);
        env_strings.erase(std::remove_if(env_strings.begin(), env_strings.end(),
                                         [&](const std::string& s) { return s.rfind(key, 0) == 0; }),
                          env_strings.end());
        env_strings.push_back(add);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipe_fds[1], 1);
        ::dup2(pipe_fds[1], 2);
        if (drop) {
            if (::setgroups(groups.size(), groups.data()) != 0 || ::setresgid(gid, gid, gid) != 0 ||
                ::setresuid(uid, uid, uid) != 0) {
                std::fprintf(stderr, "spawn: dropping to uid %u failed: %s\n", static_cast<unsigned>(uid),
                             std::strerror(errno));
                std::_Exit(126);
            }
        }
        ::execve(args[0], args.data(), envp.data());
        std::fprintf(stderr, "spawn: exec %s failed: %s\n", args[0], std::strerror(errno));
        std::_Exit(127);
    }
    ::close(pipe_fds[1]);
    if (pid < 0) {
        ::close(pipe_fds[0]);
        return;
    }
    pid_out = pid;
    fd_out = pipe_fds[0];
    track_child(pid, true);
}

}  // namespace

Child Child::spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env_add) {
    Child child;
    spawn_impl(argv, env_add, false, 0, 0, {}, child.pid_, child.out_fd_);
    return child;
}

Child Child::spawn_as(const std::vector<std::string>& argv, uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                      const std::vector<std::string>& env_add) {
    Child child;
    spawn_impl(argv, env_add, true, uid, gid, groups, child.pid_, child.out_fd_);
    return child;
}

Child::Child(Child&& other) noexcept { *this = std::move(other); }

Child& Child::operator=(Child&& other) noexcept {
    if (this != &other) {
        end();  // not ~Child(): the members must stay alive to be assigned
        pid_ = other.pid_;
        out_fd_ = other.out_fd_;
        reaped_ = other.reaped_;
        output_ = std::move(other.output_);
        consumed_ = other.consumed_;
        exit_ = other.exit_;
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
        ::waitpid(pid_, &status, 0);
        track_child(pid_, false);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    pid_ = -1;
    out_fd_ = -1;
}

bool Child::pump(int timeout_ms) {
    if (out_fd_ < 0) return false;
    pollfd p{out_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, timeout_ms);
    if (ready <= 0) return ready == 0;
    char buffer[4096];
    ssize_t got = ::read(out_fd_, buffer, sizeof buffer);
    if (got <= 0) {
        ::close(out_fd_);
        out_fd_ = -1;
        return false;
    }
    output_.append(buffer, static_cast<std::size_t>(got));
    return true;
}

std::optional<std::string> Child::wait_line(std::string_view prefix, int timeout_ms) {
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        std::size_t line_start = consumed_;
        while (true) {
            std::size_t end = output_.find('\n', line_start);
            if (end == std::string::npos) break;
            std::string line = output_.substr(line_start, end - line_start);
            line_start = end + 1;
            if (line.rfind(prefix, 0) == 0) {
                consumed_ = line_start;
                return line;
            }
        }
        double left = deadline - now_ms();
        if (left <= 0) return std::nullopt;
        if (!pump(static_cast<int>(std::min(left, 50.0))) && out_fd_ < 0) {
            // EOF: one last scan happened above.
            std::size_t end = output_.find('\n', consumed_);
            if (end == std::string::npos) return std::nullopt;
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
    if (::wait4(pid_, &status, WNOHANG, &usage) != pid_) return false;
    reaped_ = true;
    track_child(pid_, false);
    exit_.exited = WIFEXITED(status);
    exit_.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    exit_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    exit_.cpu_ms = (static_cast<double>(usage.ru_utime.tv_sec) + static_cast<double>(usage.ru_stime.tv_sec)) * 1e3 +
                   (static_cast<double>(usage.ru_utime.tv_usec) + static_cast<double>(usage.ru_stime.tv_usec)) / 1e3;
    while (pump(0)) {
    }
    return true;
}

ChildExit Child::wait(int timeout_ms, bool* timed_out) {
    if (timed_out != nullptr) *timed_out = false;
    if (pid_ <= 0) return exit_;
    if (reaped_) return exit_;
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        if (try_reap()) return exit_;
        if (now_ms() > deadline) {
            if (timed_out != nullptr) *timed_out = true;
            ::kill(pid_, SIGKILL);
            deadline = now_ms() + 5000;
            timeout_ms = 5000;
        }
        if (out_fd_ >= 0)
            pump(5);
        else
            ::usleep(2000);
    }
}

Isolated run_isolated(const std::function<std::string()>& fn, int timeout_ms) {
    Isolated result;
    int verdict_fds[2];
    int diag_fds[2];
    if (::pipe2(verdict_fds, O_CLOEXEC) != 0 || ::pipe2(diag_fds, O_CLOEXEC) != 0) {
        result.text = "CRASH: pipe failed";
        return result;
    }
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid > 0) track_child(pid, true);
    if (pid == 0) {
        // The child dies plainly on a fault (no doctest crash report from a copy of the
        // test runner); its stdout/stderr (an ASan report, say) go to the parent.
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, SIG_DFL);
        ::dup2(diag_fds[1], 1);
        ::dup2(diag_fds[1], 2);
        std::string text = fn();
        std::size_t off = 0;
        while (off < text.size()) {
            ssize_t put = ::write(verdict_fds[1], text.data() + off, text.size() - off);
            if (put <= 0) break;
            off += static_cast<std::size_t>(put);
        }
        std::_Exit(0);  // no atexit: the parent owns the cleanup of its names
    }
    ::close(verdict_fds[1]);
    ::close(diag_fds[1]);
    std::string text, diag;
    double deadline = now_ms() + timeout_ms;
    bool hung = false;
    bool verdict_open = true, diag_open = true;
    while (verdict_open || diag_open) {
        int left = static_cast<int>(deadline - now_ms());
        if (left <= 0) {
            hung = true;
            break;
        }
        pollfd p[2] = {{verdict_open ? verdict_fds[0] : -1, POLLIN, 0}, {diag_open ? diag_fds[0] : -1, POLLIN, 0}};
        if (::poll(p, 2, std::min(left, 100)) <= 0) continue;
        char buffer[4096];
        if (p[0].revents != 0) {
            ssize_t got = ::read(verdict_fds[0], buffer, sizeof buffer);
            if (got <= 0)
                verdict_open = false;
            else
                text.append(buffer, static_cast<std::size_t>(got));
        }
        if (p[1].revents != 0) {
            ssize_t got = ::read(diag_fds[0], buffer, sizeof buffer);
            if (got <= 0)
                diag_open = false;
            else if (diag.size() < 65536)
                diag.append(buffer, static_cast<std::size_t>(got));
        }
    }
    ::close(verdict_fds[0]);
    ::close(diag_fds[0]);
    if (hung) ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    track_child(pid, false);
    auto tail = [&] {
        std::string d = diag.size() > 3000 ? "..." + diag.substr(diag.size() - 3000) : diag;
        return d.empty() ? std::string() : "; its output: " + d;
    };
    if (hung) {
        result.text = "HANG: no result within " + std::to_string(timeout_ms) + " ms" + tail();
    } else if (WIFSIGNALED(status)) {
        result.text = std::string("CRASH: killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                      strsignal(WTERMSIG(status)) + ")" + tail();
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        result.text = "CRASH: exit status " + std::to_string(WEXITSTATUS(status)) + tail();
    } else {
        result.completed = true;
        result.text = text;
    }
    return result;
}

std::string field(const std::string& line, std::string_view key) {
    std::string needle = std::string(key) + "=";
    std::size_t at = 0;
    while ((at = line.find(needle, at)) != std::string::npos) {
        if (at == 0 || line[at - 1] == ' ') break;
        at += needle.size();
    }
    if (at == std::string::npos) return "";
    at += needle.size();
    if (key == "msg") return line.substr(at);
    std::size_t end = line.find(' ', at);
    return line.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// ---------------------------------------------------------------- pools

bool PoolSnapshot::operator==(const PoolSnapshot& o) const {
    if (free_bytes != o.free_bytes || live != o.live || free_block_counts != o.free_block_counts ||
        check_ok != o.check_ok || problems != o.problems || allocations.size() != o.allocations.size())
        return false;
    for (std::size_t i = 0; i < allocations.size(); ++i) {
        const auto& a = allocations[i];
        const auto& b = o.allocations[i];
        if (a.id != b.id || a.type != b.type || a.offset != b.offset || a.size != b.size) return false;
    }
    return true;
}

std::string PoolSnapshot::describe() const {
    std::ostringstream out;
    out << "{free " << free_bytes << " B, live " << live << ", allocations [";
    for (const auto& a : allocations) out << " id" << a.id << "@" << a.offset << ":" << a.size << "t" << a.type;
    out << " ], free blocks [";
    for (std::size_t c : free_block_counts) out << " " << c;
    out << " ], check " << (check_ok ? "ok" : "FAILED");
    for (const auto& p : problems) out << "; " << p;
    out << "}";
    return out.str();
}

PoolSnapshot snapshot(const dragonmem::Pool& pool) {
    PoolSnapshot s;
    auto attrs = pool.attributes();
    s.free_bytes = attrs.free_bytes;
    s.live = attrs.live_allocations;
    s.allocations = pool.allocations();
    for (const auto& fb : pool.free_blocks()) s.free_block_counts.push_back(fb.count);
    auto report = pool.check();
    s.check_ok = report.ok;
    s.problems = report.problems;
    return s;
}

std::size_t free_all(const dragonmem::Pool& pool) {
    std::size_t freed = 0;
    for (const auto& info : pool.allocations()) {
        dragonmem::Memory mem = pool.from_id(info.id);
        mem.free();
        ++freed;
    }
    return freed;
}

std::string last_error() {
    char* s = dragon_getlasterrstr();
    std::string out = s != nullptr ? std::string(s) : std::string();
    std::free(s);
    return out;
}

// ---------------------------------------------------------------- descriptors

namespace {
std::atomic<std::uint64_t> g_bad_inputs{0};
}
void count_bad_inputs(std::uint64_t n) { g_bad_inputs.fetch_add(n); }
std::uint64_t bad_inputs_tried() { return g_bad_inputs.load(); }

std::uint32_t crc32c(const std::uint8_t* data, std::size_t len) {
    // Bitwise CRC-32C (Castagnoli), written independently of the library's table version.
    std::uint32_t crc = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void reseal(std::vector<std::uint8_t>& d) {
    if (d.size() < 16) return;
    auto length = static_cast<std::uint32_t>(d.size());
    for (int i = 0; i < 4; ++i) d[8 + i] = static_cast<std::uint8_t>(length >> (8 * i));
    for (int i = 0; i < 4; ++i) d[12 + i] = 0;
    std::uint32_t crc = crc32c(d.data(), d.size());
    for (int i = 0; i < 4; ++i) d[12 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
}

std::string base64(const std::vector<std::uint8_t>& bytes) {
    static const char* k_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        std::uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += k_alphabet[(v >> 6) & 63];
        out += k_alphabet[v & 63];
    }
    if (i < bytes.size()) {
        std::uint32_t v = bytes[i] << 16;
        if (i + 1 < bytes.size()) v |= bytes[i + 1] << 8;
        out += k_alphabet[(v >> 18) & 63];
        out += k_alphabet[(v >> 12) & 63];
        out += i + 1 < bytes.size() ? k_alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

dragonError_t rc_of(const std::function<void()>& fn, std::string& message) {
    try {
        fn();
        return DRAGON_SUCCESS;
    } catch (const dragonmem::Error& e) {
        message = e.what();
        return e.code();
    }
}

}  // namespace robust
