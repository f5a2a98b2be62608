// The pieces every command of dm_child shares (see commands.hpp).
#include "commands.hpp"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>

namespace dmchild {

void say(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

std::string last_error() {
    char* s = dragon_getlasterrstr();
    std::string out = s != nullptr ? std::string(s) : std::string();
    std::free(s);
    return out;
}

std::string last_error_line() {
    std::string out = last_error();
    for (char& c : out)
        if (c == '\n') c = ' ';
    return out;
}

double cpu_ms() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return (static_cast<double>(u.ru_utime.tv_sec) + static_cast<double>(u.ru_stime.tv_sec)) * 1e3 +
           (static_cast<double>(u.ru_utime.tv_usec) + static_cast<double>(u.ru_stime.tv_usec)) / 1e3;
}

std::string rc_text(dragonError_t rc) {
    return std::string(dragon_getrcstr(rc)) + " (" + std::to_string(static_cast<int>(rc)) + ")";
}

bool attach_pool(dragonMemoryPoolDescr_t& pool) {
    dragonError_t rc = dragon_memory_pool_attach_from_env(&pool, "DMR_POOL");
    if (rc != DRAGON_SUCCESS) {
        say("FAIL attach rc=" + std::to_string(static_cast<int>(rc)) + " msg=" + last_error_line());
        return false;
    }
    return true;
}

}  // namespace dmchild
