// Unique pool names and /dev/shm cleanup for the tests (see shm_names.hpp).
#include "shm_names.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>

namespace dmtest {

namespace {
std::mutex g_names_mutex;
std::set<std::string>& handed_out() {
    static std::set<std::string>* names = new std::set<std::string>;  // outlives atexit
    return *names;
}
std::atomic<unsigned> g_counter{0};
std::once_flag g_atexit_once;

void sweep_at_exit() { (void)sweep_my_shm(); }
}  // namespace

std::string my_name_prefix() { return "dmt" + std::to_string(::getpid()) + "_"; }

namespace {
std::string remembered(std::string name) {
    std::call_once(g_atexit_once, [] { std::atexit(sweep_at_exit); });
    std::lock_guard<std::mutex> lock(g_names_mutex);
    handed_out().insert(name);
    return name;
}
std::string next_name() { return my_name_prefix() + std::to_string(g_counter.fetch_add(1) + 1); }
}  // namespace

std::string unique_pool_name(std::string_view suffix) {
    std::string name = next_name() + std::string(suffix);
    if (name.size() > 29) name.resize(29);
    return remembered(std::move(name));
}

std::string padded_pool_name(std::size_t length) {
    std::string name = next_name();
    if (length > name.size()) name += std::string(length - name.size(), 'x');
    return remembered(std::move(name));
}

bool shm_exists(std::string_view pool_name) { return ::access(shm_path(pool_name).c_str(), F_OK) == 0; }

bool set_shm_mtime(std::string_view pool_name, long seconds) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const timespec when{now.tv_sec + seconds, now.tv_nsec};
    const timespec times[2] = {when, when};  // atime, mtime
    return ::utimensat(AT_FDCWD, shm_path(pool_name).c_str(), times, 0) == 0;
}

std::vector<std::string> shm_entries_with_prefix(std::string_view prefix) {
    std::vector<std::string> found;
    DIR* dir = ::opendir("/dev/shm");
    if (!dir) return found;
    while (dirent* entry = ::readdir(dir)) {
        std::string_view entry_name(entry->d_name);
        if (entry_name.substr(0, prefix.size()) == prefix) found.emplace_back(entry_name);
    }
    ::closedir(dir);
    return found;
}

std::vector<std::string> shm_objects_of(std::string_view pool_name) {
    const std::string exact = "dragonmem." + std::string(pool_name);
    std::vector<std::string> found;
    for (auto& entry : shm_entries_with_prefix(exact)) {
        if (entry.size() == exact.size() || entry[exact.size()] == '.' || entry[exact.size()] == '_' ||
            entry[exact.size()] == '-')
            found.push_back(entry);
    }
    return found;
}

int unlink_pool_objects(std::string_view pool_name) {
    int removed = 0;
    for (auto& entry : shm_objects_of(pool_name))
        if (::unlink(("/dev/shm/" + entry).c_str()) == 0) ++removed;
    return removed;
}

std::vector<std::string> sweep_my_shm() {
    std::vector<std::string> leftovers;
    std::set<std::string> names;
    {
        std::lock_guard<std::mutex> lock(g_names_mutex);
        names = handed_out();
    }
    for (auto& name : names)
        for (const std::string& variant : {name, "." + name, "-" + name})  // also wrongly accepted names
            for (auto& entry : shm_objects_of(variant))
                if (::unlink(("/dev/shm/" + entry).c_str()) == 0) leftovers.push_back(entry);
    return leftovers;
}

std::vector<std::string> sweep_dead_owners() {
    std::vector<std::string> removed;
    for (const auto& entry : shm_entries_with_prefix("dragonmem.")) {
        std::string_view rest(entry);
        rest.remove_prefix(std::strlen("dragonmem."));
        if (!rest.empty() && (rest.front() == '.' || rest.front() == '-')) rest.remove_prefix(1);
        if (rest.substr(0, 3) != "dmt" && rest.substr(0, 3) != "dmc") continue;
        rest.remove_prefix(3);
        std::size_t digits = 0;
        while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
        if (digits == 0 || digits > 9 || digits >= rest.size() || rest[digits] != '_') continue;
        const pid_t owner = static_cast<pid_t>(std::stol(std::string(rest.substr(0, digits))));
        if (owner == ::getpid()) continue;
        if (::kill(owner, 0) == 0 || errno != ESRCH) continue;  // still alive (or not ours to judge)
        if (::unlink(("/dev/shm/" + entry).c_str()) == 0) removed.push_back(entry);
    }
    return removed;
}

}  // namespace dmtest
