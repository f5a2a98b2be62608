// Command-line options of dragonmem-bench.
#pragma once

#include "runner.hpp"

#include <optional>
#include <string>

namespace bench {

struct Options {
    bool quick = false;      // CI smoke: 3 short reps, checks structure, not speed
    bool list = false;       // print figure names and exit
    std::string json_path;   // also write the document here
    std::string filter;      // ECMAScript regex searched in figure names
    int reps = 0;            // 0: 15, or 3 with --quick
    double rep_ms = 0;       // 0: 20 ms, or 2 ms with --quick
    double procs_rep_ms = 0; // 0: 100 ms, or 20 ms with --quick
    int max_workers = 0;     // 0: the CPUs this process may use
};

// Parses argv into `options`. Returns an exit code when the program must stop now
// (--help: 0, a usage error: 2), nothing when it should run.
std::optional<int> parse_options(int argc, char** argv, Options& options);

RunConfig run_config(const Options& options);

}  // namespace bench
