// Who creates a pool, whether it still lives, which PID namespace we are in.
#include "pool/pool_creator.hpp"

#include "os/proc.hpp"
#include "pool/robust_lock.hpp"

#include <fmt/format.h>

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>

namespace dragonmem::detail {

CreatorRecord this_creator() noexcept {
    CreatorRecord record{};
    record.owner = current_owner_word();
    record.pid_ns = this_pid_namespace();
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    record.created_ns =
        static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
    record.pid = static_cast<std::uint32_t>(::getpid());
    record.uid = static_cast<std::uint32_t>(::geteuid());
    return record;
}

namespace {

// (pid << 32) | namespace inode of the process that asked last. A process's own PID
// namespace never changes; a child made by fork or clone may be in another one, and has
// another pid (and a fork child is reset explicitly): asking /proc costs ~10 us, which
// every attach would pay twice.
std::atomic<std::uint64_t> g_pid_namespace{0};

void forget_pid_namespace() noexcept { g_pid_namespace.store(0, std::memory_order_relaxed); }

}  // namespace

std::uint64_t this_pid_namespace() noexcept {
    static const int registered = pthread_atfork(nullptr, nullptr, forget_pid_namespace);
    (void)registered;
    auto pid = static_cast<std::uint64_t>(static_cast<std::uint32_t>(::getpid()));
    std::uint64_t cached = g_pid_namespace.load(std::memory_order_relaxed);
    if (cached != 0 && (cached >> 32) == pid) return cached & 0xFFFFFFFFu;
    const std::uint64_t ns = read_pid_namespace_inode();
    if (ns == 0) return 0;
    // nsfs inode numbers are 32-bit; anything else is simply not remembered.
    if (ns != 0 && ns <= 0xFFFFFFFFu) g_pid_namespace.store((pid << 32) | ns, std::memory_order_relaxed);
    return ns;
}

std::string describe_pid_namespace(std::uint64_t ns) {
    return ns == 0 ? std::string("an unknown PID namespace") : fmt::format("pid:[{}]", ns);
}

CreatorState creator_state(const CreatorRecord& creator, std::uint64_t my_pid_ns) noexcept {
    if (creator.owner == 0) return CreatorState::none;
    if (other_pid_namespace(creator.pid_ns, my_pid_ns)) return CreatorState::other_namespace;
    auto tid = static_cast<std::uint32_t>(creator.owner);
    auto stamp = static_cast<std::uint32_t>(creator.owner >> 32);
    if (stamp == 0) {
        // The creator could not read its start time: existence is all we can check.
        if (tid == 0 || tid > 0x7FFFFFFFu) return CreatorState::dead;
        return ::kill(static_cast<pid_t>(tid), 0) == 0 || errno == EPERM ? CreatorState::alive : CreatorState::dead;
    }
    return task_is_gone(tid, stamp) ? CreatorState::dead : CreatorState::alive;
}

}  // namespace dragonmem::detail
