// The one JSON document of a run: figures, ratios, the docs/design.md section 6 targets
// (reported, never asserted), errors; and the structural check the smoke test relies on.
#pragma once

#include "runner.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace bench {

inline constexpr const char* kReportSchema = "dragonmem-bench/1";

struct RunInfo {
    nlohmann::ordered_json machine;
    nlohmann::ordered_json config;
    nlohmann::ordered_json contenders = nlohmann::ordered_json::object();  // name -> description
    std::vector<std::string> errors;    // failures outside any figure (leaks, crashes)
};

nlohmann::ordered_json build_report(const std::vector<FigureResult>& figures, const RunInfo& info);

// Prints to stderr, per scaling figure (procs/…, threads/…), each contender's N-way /
// (N x one) for the median and for the slowest rep.
void print_scaling(const std::vector<FigureResult>& figures);

// Structural problems of a report (missing keys, non-finite or disordered statistics,
// rep counts that disagree with the config, "ok" that disagrees with the errors).
// Empty means well-formed; it says nothing about whether the numbers are good.
std::vector<std::string> validate_report(const nlohmann::json& report);

}  // namespace bench
