// Pool creation seen from outside (issue 9 items 7, 8 and exception-safe creation;
// BAD_INPUTS.md rows C*): a slow creator is waited for, never called dead, and
// `destroy --force` refuses to remove its pool; a dead creator is named at once; a
// process of another PID namespace is refused; a creation that throws leaves nothing.
#include "testing.hpp"

#include "pool/pool_creator.hpp"
#include "pool/pool_layout.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

using dragonmem::Pool;
using dragonmem::PoolOptions;
using namespace dmtest;
using dragonmem::detail::PoolHeader;

TEST_SUITE_BEGIN("creator");

namespace {

// A forked child running `fn` while the test goes on; its verdict comes back on a pipe.
class Forked {
public:
    explicit Forked(const std::function<std::string()>& fn) {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        std::fflush(nullptr);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::close(fds[0]);
            std::string text;
            try {
                text = fn();
            } catch (const dragonmem::Error& e) {
                text = std::string("error ") + dragon_getrcstr(e.code()) + " msg=" + e.what();
            } catch (const std::exception& e) {
                text = std::string("exception ") + e.what();
            }
            if (::write(fds[1], text.data(), text.size()) < 0) std::_Exit(3);
            std::_Exit(0);
        }
        ::close(fds[1]);
        fd_ = fds[0];
    }
    ~Forked() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (fd_ >= 0) ::close(fd_);
    }
    Forked(const Forked&) = delete;
    Forked& operator=(const Forked&) = delete;

    pid_t pid() const { return pid_; }
    bool running() {
        if (reaped_) return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            reaped_ = true;
            status_ = status;
        }
        return !reaped_;
    }
    // Waits for the child (SIGKILL after `timeout_ms`) and returns its verdict.
    std::string finish(int timeout_ms) {
        double deadline = now_ms() + timeout_ms;
        while (running() && now_ms() < deadline) ::usleep(2000);
        if (running()) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status_, 0);
            reaped_ = true;
            return "HANG";
        }
        std::string text;
        char buffer[4096];
        ssize_t got;
        while ((got = ::read(fd_, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(got));
        if (!WIFEXITED(status_)) return "CRASH signal " + std::to_string(WTERMSIG(status_)) + " " + text;
        return text;
    }
    void kill_and_reap() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
        reaped_ = true;
    }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

// The object's header as a reader with pread sees it (zeros where it is shorter).
bool read_header(const std::string& name, PoolHeader& out) {
    std::memset(static_cast<void*>(&out), 0, sizeof out);
    int fd = ::open(shm_path(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t got = ::pread(fd, &out, sizeof out, 0);
    ::close(fd);
    return got >= 0;
}

// Starts a creator that formats for a long time (2 million preallocated 64 B blocks:
// about half a second unloaded) and stops it (SIGSTOP) once it has recorded itself and
// before it finished. Tries three times; nullptr if it was never caught mid-format.
std::unique_ptr<Forked> stopped_creator(const std::string& name, std::string& why) {
    for (int attempt = 0; attempt < 3; ++attempt) {
        auto creator = std::make_unique<Forked>([name]() -> std::string {
            PoolOptions options;
            options.preallocs = {2'000'000};  // 32 B requests: one 64 B granule each
            Pool pool = Pool::create(name, 128 * MiB, 0, options);
            return "created";
        });
        double deadline = now_ms() + 30000;
        while (now_ms() < deadline && creator->running()) {
            PoolHeader h;
            if (read_header(name, h) && h.creator.owner != 0 && h.magic.load() == 0) {
                ::kill(creator->pid(), SIGSTOP);
                if (read_header(name, h) && h.magic.load() == 0) return creator;  // stopped mid-format
                ::kill(creator->pid(), SIGCONT);
                break;
            }
            ::usleep(200);
        }
        why += "attempt " + std::to_string(attempt) + ": " + creator->finish(60000) + "; ";
        unlink_pool_objects(name);
    }
    return nullptr;
}

}  // namespace

TEST_CASE("C1: a creator still formatting is waited for, and destroy --force refuses to remove its pool") {
    const std::string name = unique_pool_name("slow");
    ShmGuard guard(name);
    std::string why;
    std::unique_ptr<Forked> creator = stopped_creator(name, why);
    REQUIRE_MESSAGE(creator != nullptr, "could not stop the creator mid-format: " << why);
    count_bad_inputs(2);

    // An attach now waits (the creator lives, stopped) instead of calling it dead.
    Forked attacher([name]() -> std::string {
        Pool pool = Pool::attach_local(name);
        return "attached live=" + std::to_string(pool.attributes().live_allocations);
    });
    ::usleep(1500 * 1000);
    bool still_waiting = attacher.running();
    CHECK_MESSAGE(still_waiting, "the attach returned while the creator was alive and formatting: "
                                     << (still_waiting ? "" : attacher.finish(1000)));

    // destroy --force refuses a live creator's pool, naming it.
    try {
        Pool::force_remove(name);
        FAIL_CHECK("force_remove removed a pool whose creator is alive");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == DRAGON_INVALID_OPERATION, toString(e.code()) << ": " << e.what());
        CHECK_MESSAGE(std::string(e.what()).find(std::to_string(creator->pid())) != std::string::npos, e.what());
    }
    CHECK_MESSAGE(shm_exists(name), "the pool's object is gone");

    ::kill(creator->pid(), SIGCONT);
    CHECK(creator->finish(120000) == "created");
    if (still_waiting) CHECK(attacher.finish(60000) == "attached live=0");
    Pool pool = Pool::attach_local(name);
    CHECK(pool.check().ok);
    pool.destroy();
}

TEST_CASE("C2: a creator killed while formatting is named at once, and destroy --force removes its object") {
    const std::string name = unique_pool_name("dead");
    ShmGuard guard(name);
    std::string why;
    std::unique_ptr<Forked> creator = stopped_creator(name, why);
    REQUIRE_MESSAGE(creator != nullptr, "could not stop the creator mid-format: " << why);
    const pid_t pid = creator->pid();
    creator->kill_and_reap();
    count_bad_inputs(1);

    Isolated attach = run_isolated([&]() -> std::string {
        try {
            Pool::attach_local(name);
            return "attached";
        } catch (const dragonmem::Error& e) {
            return "rc=" + std::to_string(static_cast<int>(e.code())) + " msg=" + e.what();
        }
    });
    REQUIRE_MESSAGE(attach.completed, attach.text);
    CHECK_MESSAGE(field(attach.text, "rc") == std::to_string(static_cast<int>(DRAGON_INVALID_ARGUMENT)), attach.text);
    const std::string msg = field(attach.text, "msg");
    CHECK_MESSAGE(msg.find("creator (pid " + std::to_string(pid)) != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("died") != std::string::npos, msg);

    Pool::force_remove(name);
    CHECK_MESSAGE(!shm_exists(name), "destroy --force left the dead creator's object");
}

TEST_CASE("C3: a blank object with no creator recorded: waited for while young, then refused and removable") {
    const std::string name = unique_pool_name("blank");
    ShmGuard guard(name);
    int fd = ::open(shm_path(name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 64 * 1024) == 0);
    ::close(fd);
    count_bad_inputs(2);
    // Young: it may be a creator between shm_open and its first write. (Its mtime an hour
    // ahead, so that a stall of the test past the grace period cannot age it first.)
    REQUIRE(set_shm_mtime(name, 3600));
    try {
        Pool::force_remove(name);
        FAIL_CHECK("force_remove removed an object created a moment ago");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == DRAGON_INVALID_OPERATION, toString(e.code()) << ": " << e.what());
    }
    // Once older than the grace period, attach refuses it and force_remove removes it.
    // (Its mtime back in the past; its ctime, now, then ages past the grace period.)
    REQUIRE(set_shm_mtime(name, -3600));
    ::usleep((dragonmem::detail::k_unrecorded_grace_ms + 200) * 1000);
    try {
        Pool::attach_local(name);
        FAIL_CHECK("attached a blank object");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == DRAGON_INVALID_ARGUMENT, toString(e.code()) << ": " << e.what());
        CHECK_MESSAGE(std::string(e.what()).find("no creator is recorded") != std::string::npos, e.what());
    }
    Pool::force_remove(name);
    CHECK(!shm_exists(name));
}

TEST_CASE("C4: a pool is refused across PID namespaces, both ways, naming both namespaces") {
    const std::string host_pool = unique_pool_name("hostns");
    const std::string ns_pool = unique_pool_name("newns");
    ShmGuard g1(host_pool), g2(ns_pool);
    // Made by another process: a mapping this process holds would be inherited by the
    // child below, which would then use it without opening (and checking) the pool.
    Isolated made = run_isolated([&]() -> std::string {
        Pool::create(host_pool, 64 * 1024);
        return "created";
    });
    REQUIRE_MESSAGE(made.text == "created", made.text);
    count_bad_inputs(2);
    // A child in a new PID namespace (pid 1 there) attaches the host's pool, then creates
    // one of its own.
    Isolated run = run_isolated([&]() -> std::string {
        if (::unshare(CLONE_NEWPID) != 0)
            return std::string("SKIP: unshare(CLONE_NEWPID) (needs root): ") + std::strerror(errno);
        Forked inner([&]() -> std::string {
            std::string out = "pid=" + std::to_string(::getpid()) + " ";
            try {
                Pool::attach_local(host_pool);
                out += "attach=0 ";
            } catch (const dragonmem::Error& e) {
                out += "attach=" + std::to_string(static_cast<int>(e.code())) + " ";
                out += "attach_msg_ns=" + std::to_string(std::string(e.what()).find("pid:[") != std::string::npos &&
                                                         std::string(e.what()).rfind("pid:[") !=
                                                             std::string(e.what()).find("pid:[")) + " ";
            }
            Pool::create(ns_pool, 64 * 1024);
            return out + "created=1 msg=ok";
        });
        return inner.finish(30000);
    });
    REQUIRE_MESSAGE(run.completed, run.text);
    if (run.text.rfind("SKIP", 0) == 0) {
        MESSAGE(run.text);
        return;
    }
    CHECK_MESSAGE(field(run.text, "pid") == "1", "the child was not pid 1 of a new namespace: " << run.text);
    CHECK_MESSAGE(field(run.text, "attach") == std::to_string(static_cast<int>(DRAGON_INVALID_OPERATION)), run.text);
    CHECK_MESSAGE(field(run.text, "attach_msg_ns") == "1", "the message does not name both namespaces: " << run.text);
    REQUIRE_MESSAGE(field(run.text, "created") == "1", run.text);
    try {
        Pool::attach_local(ns_pool);
        FAIL_CHECK("attached a pool made in another PID namespace");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == DRAGON_INVALID_OPERATION, toString(e.code()) << ": " << e.what());
        std::string msg = e.what();
        CHECK_MESSAGE(msg.find(dragonmem::detail::describe_pid_namespace(dragonmem::detail::this_pid_namespace())) !=
                          std::string::npos,
                      msg);
    }
    Pool::attach_local(host_pool).destroy();
}

TEST_CASE("C5: a creation that runs out of memory (std::bad_alloc) leaves nothing behind") {
    if (k_address_sanitizer) {
        MESSAGE("SKIP: under AddressSanitizer a memory limit aborts its allocator before the library sees std::bad_alloc");
        return;
    }
    const std::string name = unique_pool_name("oom");
    ShmGuard guard(name);
    count_bad_inputs(1);
    Isolated run = run_isolated([&]() -> std::string {
        // RLIMIT_DATA caps private writable memory (malloc), not the pool's shared mapping:
        // 16 MiB above what the process uses now, while the preallocations' list needs 32.
        std::uint64_t data_kib = 0;
        std::ifstream status("/proc/self/status");
        for (std::string line; std::getline(status, line);)
            if (line.rfind("VmData:", 0) == 0) data_kib = std::stoull(line.substr(7));
        if (data_kib == 0) return "SKIP: no VmData in /proc/self/status";
        rlimit limit{(data_kib + 16 * 1024) * 1024, (data_kib + 16 * 1024) * 1024};
        if (::setrlimit(RLIMIT_DATA, &limit) != 0) return std::string("SKIP: setrlimit: ") + std::strerror(errno);
        std::string out;
        try {
            PoolOptions options;
            options.preallocs = {2 * 1024 * 1024};  // the whole 128 MiB heap in 64 B granules
            Pool::create(name, 128 * MiB, 0, options);
            out = "created";
        } catch (const dragonmem::Error& e) {
            out = "rc=" + std::to_string(static_cast<int>(e.code())) + " msg=" + e.what();
        } catch (const std::bad_alloc&) {
            out = "rc=bad_alloc msg=std::bad_alloc escaped";
        }
        return out + " left=" + (shm_exists(name) ? "1" : "0");
    });
    REQUIRE_MESSAGE(run.completed, run.text);
    if (run.text.rfind("SKIP", 0) == 0) {
        MESSAGE(run.text);
        return;
    }
    CHECK_MESSAGE(run.text.find("rc=" + std::to_string(static_cast<int>(DRAGON_INTERNAL_MALLOC_FAIL))) == 0, run.text);
    CHECK_MESSAGE(run.text.find("left=0") != std::string::npos, "the failed creation left its object: " << run.text);
    CHECK(!shm_exists(name));
}

TEST_SUITE_END();
