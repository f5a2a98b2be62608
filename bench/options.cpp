// Command-line parsing (CLI11, as the dragonmem CLI) and the defaults it implies.
#include "options.hpp"

#include <CLI/CLI.hpp>

#include <regex>

namespace bench {

std::optional<int> parse_options(int argc, char** argv, Options& options) {
    CLI::App app{
        "dragonmem-bench: dragonmem against Boost.Interprocess managed_shared_memory and glibc malloc, "
        "interleaved rep by rep. Prints one JSON document on stdout; progress on stderr."};
    app.add_flag("--quick", options.quick, "few short reps: a smoke test of every figure (CI)");
    app.add_flag("--list", options.list, "print the figure names and exit");
    app.add_option("--json", options.json_path, "also write the JSON document to this file");
    app.add_option("--filter", options.filter, "run only figures whose name matches this regex (e.g. 'pair|live')");
    app.add_option("--reps", options.reps, "repetitions per figure (default 15; 3 with --quick)")->check(CLI::Range(1, 1000));
    app.add_option("--rep-ms", options.rep_ms, "target duration of one rep of a latency figure (default 20)")
        ->check(CLI::Range(0.01, 10000.0));
    app.add_option("--procs-rep-ms", options.procs_rep_ms,
                   "duration of one rep of a scaling (procs/threads) or mixed figure (default 100)")
        ->check(CLI::Range(1.0, 100000.0));
    app.add_option("--max-workers", options.max_workers,
                   "scaling figures run 1, 2, 4, ... up to this many processes/threads (default: the CPUs usable)")
        ->check(CLI::Range(1, 256));
    try {
        app.parse(argc, argv);
        std::regex check(options.filter);
    } catch (const CLI::ParseError& error) {
        const int code = app.exit(error);
        return code == 0 ? 0 : 2;
    } catch (const std::regex_error& error) {
        std::fprintf(stderr, "--filter '%s' is not a valid regex: %s\n", options.filter.c_str(), error.what());
        return 2;
    }
    return std::nullopt;
}

RunConfig run_config(const Options& options) {
    RunConfig config;
    config.reps = options.reps > 0 ? options.reps : (options.quick ? 3 : 15);
    const double rep_ms = options.rep_ms > 0 ? options.rep_ms : (options.quick ? 2 : 20);
    const double procs_rep_ms = options.procs_rep_ms > 0 ? options.procs_rep_ms : (options.quick ? 20 : 100);
    config.target_rep_ns = static_cast<std::uint64_t>(rep_ms * 1e6);
    config.procs_rep_ns = static_cast<std::uint64_t>(procs_rep_ms * 1e6);
    config.max_workers = options.max_workers;
    return config;
}

}  // namespace bench
