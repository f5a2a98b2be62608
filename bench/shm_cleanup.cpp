// Run-unique shm names and their removal, including from a signal handler (which may
// only use async-signal-safe calls: open, getdents64, unlinkat, raise).
#include "shm_cleanup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace bench {
namespace {

constexpr const char* kShmDir = "/dev/shm";

// Written once before the handlers are installed; read-only afterwards, so the handler
// may read them without synchronisation.
char g_tag[32];
pid_t g_owner_pid = 0;

std::atomic<unsigned> g_next_seq{0};

bool contains(const char* haystack, const char* needle) {
    for (; *haystack != '\0'; ++haystack) {
        const char* h = haystack;
        const char* n = needle;
        while (*n != '\0' && *h == *n) {
            ++h;
            ++n;
        }
        if (*n == '\0') {
            return true;
        }
    }
    return false;
}

// Async-signal-safe: removes tagged entries of /dev/shm. Unlinking while reading a
// directory may skip entries, so passes repeat until one removes nothing.
void unlink_tagged_entries() {
    const int dir_fd = open(kShmDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        return;
    }
    alignas(dirent64) char buffer[8192];
    for (int pass = 0; pass < 8; ++pass) {
        bool removed_any = false;
        lseek(dir_fd, 0, SEEK_SET);
        for (;;) {
            const long bytes = syscall(SYS_getdents64, dir_fd, buffer, sizeof buffer);
            if (bytes <= 0) {
                break;
            }
            for (long at = 0; at < bytes;) {
                // glibc's dirent64 has the kernel's linux_dirent64 layout.
                const auto* entry = reinterpret_cast<const dirent64*>(buffer + at);
                if (contains(entry->d_name, g_tag) && unlinkat(dir_fd, entry->d_name, 0) == 0) {
                    removed_any = true;
                }
                at += entry->d_reclen;
            }
        }
        if (!removed_any) {
            break;
        }
    }
    close(dir_fd);
}

void on_fatal_signal(int signal_number) {
    if (getpid() == g_owner_pid) {
        unlink_tagged_entries();
    }
    ::signal(signal_number, SIG_DFL);
    raise(signal_number);
}

}  // namespace

const std::string& run_tag() {
    static const std::string tag = "dmb" + std::to_string(getpid()) + "_";
    return tag;
}

std::string unique_shm_name(std::string_view kind) {
    return run_tag() + std::string(kind) + std::to_string(g_next_seq.fetch_add(1));
}

void install_cleanup_handlers() {
    std::strncpy(g_tag, run_tag().c_str(), sizeof g_tag - 1);
    g_owner_pid = getpid();
    struct sigaction action {};
    action.sa_handler = on_fatal_signal;
    sigemptyset(&action.sa_mask);
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS}) {
        sigaction(signal_number, &action, nullptr);
    }
}

std::vector<std::string> sweep_leftovers() {
    std::vector<std::string> removed;
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(kShmDir, ignored)) {
        const std::string name = entry.path().filename().string();
        if (name.find(run_tag()) != std::string::npos) {
            removed.push_back(name);
        }
    }
    for (const auto& name : removed) {
        std::filesystem::remove(std::filesystem::path(kShmDir) / name, ignored);
    }
    return removed;
}

bool mapped_in_this_process(std::string_view name) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        if (line.find(name) != std::string::npos) {
            return true;
        }
    }
    return false;
}

}  // namespace bench
