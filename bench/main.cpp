// dragonmem-bench: measures dragonmem against Boost.Interprocess and glibc malloc in
// one run, interleaved rep by rep, and prints one JSON document (docs/design.md section 6).
// Exit status: 0 all contenders ran, 1 a contender failed or the report is malformed
// (timings are never judged), 2 bad usage.
#include "figures.hpp"
#include "machine_info.hpp"
#include "options.hpp"
#include "report.hpp"
#include "scaling_driver.hpp"
#include "shm_cleanup.hpp"

#include <cstdio>
#include <fstream>
#include <string>

namespace {

using bench::Options;

nlohmann::ordered_json config_json(const Options& options, const bench::RunConfig& config) {
    nlohmann::ordered_json out;
    out["quick"] = options.quick;
    out["reps"] = config.reps;
    out["target_rep_ms"] = static_cast<double>(config.target_rep_ns) / 1e6;
    out["procs_rep_ms"] = static_cast<double>(config.procs_rep_ns) / 1e6;
    out["max_workers"] = config.max_workers > 0 ? config.max_workers : static_cast<int>(bench::usable_cpus().size());
    out["usable_cpus"] = bench::usable_cpus();
    out["filter"] = options.filter;
    out["heap_pool_bytes"] = bench::kHeapPoolBytes;
    out["interleaving"] = "per figure: calibrate every contender, then rep 1 of each contender in order, rep 2, ...";
    return out;
}

nlohmann::ordered_json contenders_json(const bench::Contenders& all) {
    nlohmann::ordered_json out;
    for (const bench::Contender* contender : {all.dragonmem.get(), all.boost.get(), all.malloc.get(), all.raw_shm.get()}) {
        if (contender != nullptr) {
            out[contender->name()] = contender->description();
        }
    }
    return out;
}

int emit(const nlohmann::ordered_json& report, const Options& options) {
    const std::string text = report.dump(2);
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
    int status = report["ok"].get<bool>() ? 0 : 1;
    if (!options.json_path.empty()) {
        std::ofstream file(options.json_path);
        file << text << '\n';
        if (!file) {
            std::fprintf(stderr, "cannot write %s\n", options.json_path.c_str());
            status = 1;
        }
    }
    // The smoke test's real check: the document as printed parses back and is well formed.
    for (const auto& problem : bench::validate_report(nlohmann::json::parse(text))) {
        std::fprintf(stderr, "malformed report: %s\n", problem.c_str());
        status = 1;
    }
    for (const auto& error : report["errors"]) {
        std::fprintf(stderr, "error: %s\n", error.get<std::string>().c_str());
    }
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    if (const auto exit_code = bench::parse_options(argc, argv, options)) {
        return *exit_code;
    }
    const bench::RunConfig config = bench::run_config(options);
    bench::install_cleanup_handlers();

    bench::RunInfo info;
    info.machine = bench::machine_info();
    info.config = config_json(options, config);
    if (!bench::is_release_build()) {
        std::fprintf(stderr, "warning: not a release build; timings are not representative\n");
    }

    std::vector<bench::FigureResult> results;
    try {
        const bench::Contenders contenders = bench::make_contenders();
        if (options.list) {
            for (const auto& name : bench::figure_names(contenders, config)) {
                std::printf("%s\n", name.c_str());
            }
            return 0;
        }
        info.contenders = contenders_json(contenders);
        results = bench::run_figures(contenders, config, options.filter);
        bench::print_scaling(results);
    } catch (const std::exception& error) {
        info.errors.push_back(std::string("run aborted: ") + error.what());
    }
    info.machine["load_average_1min_end"] = bench::load_average_1min();
    // Every contender is gone: anything of this run still in /dev/shm is a leak.
    for (const auto& name : bench::sweep_leftovers()) {
        info.errors.push_back("left in /dev/shm after every pool and segment was destroyed (now removed): " + name);
    }
    if (results.empty() && info.errors.empty()) {
        std::fprintf(stderr, "--filter '%s' matches no figure (see --list)\n", options.filter.c_str());
        return 2;
    }
    return emit(bench::build_report(results, info), options);
}
