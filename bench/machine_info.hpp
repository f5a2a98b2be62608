// Where and how a run happened: machine, kernel, compiler, build type, versions.
// Numbers from a debug build or another machine are not comparable; this says which.
#pragma once

#include <nlohmann/json.hpp>

namespace bench {

nlohmann::ordered_json machine_info();

// The 1-minute load average (/proc/loadavg), recorded at the start and the end of a
// run: above the CPU count, other work shared the machine and the spread shows it.
double load_average_1min();

// False unless built with --buildtype=release (or another optimized, NDEBUG build).
bool is_release_build();

}  // namespace bench
