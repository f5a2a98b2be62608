// Reading /proc (proc.hpp).
#include "os/proc.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dragonmem::detail {

namespace {

// Reads `path` into `buffer` (NUL-terminated, at most `size` - 1 bytes): one read, no
// allocation.
bool read_small_file(const char* path, char* buffer, std::size_t size) noexcept {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t got = ::read(fd, buffer, size - 1);
    ::close(fd);
    if (got <= 0) return false;
    buffer[got] = '\0';
    return true;
}

// /proc/<tid>/<file>.
bool read_task_file(std::uint32_t tid, const char* file, char* buffer, std::size_t size) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%u/%s", tid, file);
    return read_small_file(path, buffer, size);
}

// The value of the "key" line of a status file, without leading blanks.
void read_status_line(const char* text, const char* key, char* out, std::size_t capacity) noexcept {
    const char* line = std::strstr(text, key);
    if (line == nullptr || capacity == 0) return;
    line += std::strlen(key);
    while (*line == ' ' || *line == '\t') ++line;
    std::size_t n = 0;
    while (line[n] != '\0' && line[n] != '\n' && n + 1 < capacity) {
        out[n] = line[n];
        ++n;
    }
    out[n] = '\0';
}

}  // namespace

bool read_task_stat(std::uint32_t tid, char& state, std::uint64_t& start_ticks) noexcept {
    char buffer[1024];
    if (!read_task_file(tid, "stat", buffer, sizeof buffer)) return false;
    const char* after_name = std::strrchr(buffer, ')');  // the name may contain spaces
    if (after_name == nullptr) return false;
    const char* cursor = after_name + 2;
    state = *cursor;
    for (int field = 3; field < 22 && cursor != nullptr; ++field) {
        cursor = std::strchr(cursor, ' ');
        if (cursor != nullptr) ++cursor;
    }
    if (cursor == nullptr) return false;
    start_ticks = std::strtoull(cursor, nullptr, 10);
    return true;
}

bool read_task_status(std::uint32_t tid, TaskStatus& out) noexcept {
    char text[2048];
    if (!read_task_file(tid, "status", text, sizeof text)) return false;
    read_status_line(text, "Name:", out.name, sizeof out.name);
    read_status_line(text, "\nState:", out.state, sizeof out.state);
    char tgid[16] = {};
    read_status_line(text, "\nTgid:", tgid, sizeof tgid);
    out.tgid = static_cast<std::uint32_t>(std::strtoul(tgid, nullptr, 10));
    return true;
}

bool task_is_gone(std::uint32_t tid, std::uint32_t stamp) noexcept {
    // tid 0 or one beyond pid_t is no thread: a garbage word must not wedge the pool.
    if (tid == 0 || tid > static_cast<std::uint32_t>(INT_MAX)) return true;
    char state = 0;
    std::uint64_t start_ticks = 0;
    if (read_task_stat(tid, state, start_ticks))
        return state == 'Z' || state == 'X' || static_cast<std::uint32_t>(start_ticks) != stamp;
    // No /proc: only existence can be checked.
    return ::kill(static_cast<pid_t>(tid), 0) == -1 && errno == ESRCH;
}

std::uint64_t read_pid_namespace_inode() noexcept {
    struct stat st {};
    if (::stat("/proc/self/ns/pid", &st) != 0) return 0;
    return static_cast<std::uint64_t>(st.st_ino);
}

std::string read_boot_id() {
    char buffer[128];
    if (!read_small_file("/proc/sys/kernel/random/boot_id", buffer, sizeof buffer)) return {};
    std::string text(buffer);
    // The first line, without trailing blanks (the file is one line and a newline).
    if (std::size_t end = text.find('\n'); end != std::string::npos) text.resize(end);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.pop_back();
    return text;
}

std::string read_kernel_text(const char* path) {
    std::string text;
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return text;
    char chunk[4096];
    for (;;) {
        const ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        text.append(chunk, static_cast<std::size_t>(got));
    }
    ::close(fd);
    return text;
}

}  // namespace dragonmem::detail
