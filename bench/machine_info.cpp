// Collects the facts about the machine and the build recorded in the JSON.
#include "machine_info.hpp"

#include <dragonmem/version.hpp>

#include <gnu/libc-version.h>
#include <sys/utsname.h>
#include <unistd.h>

#if DRAGONMEM_BENCH_HAVE_BOOST
#include <boost/version.hpp>
#endif

#include <fmt/format.h>

#include <ctime>
#include <fstream>
#include <string>

#ifndef DRAGONMEM_BENCH_BUILDTYPE
#define DRAGONMEM_BENCH_BUILDTYPE "unknown"
#endif

namespace bench {
namespace {

std::string cpu_model() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
        }
    }
    return "unknown";
}

std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    std::tm parts{};
    gmtime_r(&now, &parts);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

}  // namespace

double load_average_1min() {
    std::ifstream loadavg("/proc/loadavg");
    double one_minute = -1;
    loadavg >> one_minute;
    return one_minute;
}

bool is_release_build() {
#ifdef NDEBUG
    return std::string(DRAGONMEM_BENCH_BUILDTYPE) != "debug";
#else
    return false;
#endif
}

nlohmann::ordered_json machine_info() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    utsname system{};
    uname(&system);
    nlohmann::ordered_json info;
    info["hostname"] = host;
    info["cpus_online"] = sysconf(_SC_NPROCESSORS_ONLN);
    info["cpu_model"] = cpu_model();
    info["kernel"] = fmt::format("{} {} {}", system.sysname, system.release, system.machine);
#ifdef __clang__
    info["compiler"] = "clang " __clang_version__;
#else
    info["compiler"] = "gcc " __VERSION__;
#endif
    info["glibc"] = gnu_get_libc_version();
#if DRAGONMEM_BENCH_HAVE_BOOST
    info["boost"] = fmt::format("{}.{}.{}", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100);
#else
    info["boost"] = nullptr;
#endif
    info["dragonmem"] = dragonmem::version_string;
    info["build_type"] = DRAGONMEM_BENCH_BUILDTYPE;
#ifdef NDEBUG
    info["ndebug"] = true;
#else
    info["ndebug"] = false;
#endif
    info["date_utc"] = utc_now();
    info["load_average_1min_start"] = load_average_1min();
    return info;
}

}  // namespace bench
