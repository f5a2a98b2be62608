// Builds the JSON report from figure results and validates its structure.
#include "report.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <set>

namespace bench {
namespace {

using ojson = nlohmann::ordered_json;

ojson summary_json(const Summary& summary) {
    ojson out;
    out["median"] = summary.median;
    out["min"] = summary.min;
    out["max"] = summary.max;
    out["reps"] = summary.reps;
    return out;
}

ojson lane_json(const LaneResult& lane) {
    ojson out;
    if (!lane.error.empty()) {
        out["error"] = lane.error;
        return out;
    }
    out = summary_json(*lane.value);
    out["units_per_rep"] = lane.units_per_rep;
    out["ops_per_rep"] = lane.ops_per_rep;
    if (!lane.phases.empty()) {
        ojson phases;
        for (const auto& [name, summary] : lane.phases) {
            phases[name] = summary_json(summary);
        }
        out["phases"] = phases;
    }
    return out;
}

const LaneResult* find_lane(const FigureResult& figure, const std::string& contender) {
    for (const auto& lane : figure.lanes) {
        if (lane.contender == contender && lane.value) {
            return &lane;
        }
    }
    return nullptr;
}

const FigureResult* find_figure(const std::vector<FigureResult>& figures, const std::string& name) {
    for (const auto& figure : figures) {
        if (figure.spec.name == name) {
            return &figure;
        }
    }
    return nullptr;
}

std::optional<double> median_of(const std::vector<FigureResult>& figures, const std::string& figure_name,
                                const std::string& contender) {
    const FigureResult* figure = find_figure(figures, figure_name);
    const LaneResult* lane = figure != nullptr ? find_lane(*figure, contender) : nullptr;
    return lane != nullptr ? std::optional<double>(lane->value->median) : std::nullopt;
}

bool is_scaling_group(const std::string& group) {
    return group == "procs" || group == "procs_pinned" || group == "threads" || group == "threads_pinned";
}

// Ratios of medians, dragonmem over every other contender of the figure.
ojson ratios_json(const FigureResult& figure) {
    ojson ratios = ojson::object();
    const LaneResult* ours = find_lane(figure, "dragonmem");
    if (ours == nullptr) {
        return ratios;
    }
    for (const auto& lane : figure.lanes) {
        if (lane.contender != "dragonmem" && lane.value) {
            ratios["dragonmem/" + lane.contender] = ours->value->median / lane.value->median;
        }
    }
    return ratios;
}

ojson figure_json(const FigureResult& figure, const std::vector<FigureResult>& all) {
    const FigureSpec& spec = figure.spec;
    ojson out;
    out["name"] = spec.name;
    out["group"] = spec.group;
    out["what"] = spec.what;
    out["unit"] = spec.unit;
    out["better"] = spec.metric == Metric::ns_per_op ? "lower" : "higher";
    out["floor"] = spec.floor.empty() ? ojson(nullptr) : ojson(spec.floor);
    ojson params = ojson::object();
    for (const auto& [key, value] : spec.params) {
        params[key] = value;
    }
    out["params"] = params;
    ojson results = ojson::object();
    for (const auto& lane : figure.lanes) {
        results[lane.contender] = lane_json(lane);
    }
    out["results"] = results;
    out["ratios"] = ratios_json(figure);
    if (is_scaling_group(spec.group)) {
        // N workers against one: `vs_one` = N-way / one, `scaling` = N-way / (N x one)
        // (1 is perfect scaling), `scaling_worst` the same for the slowest rep of N.
        const auto workers = static_cast<double>(spec.params.at("workers"));
        ojson vs_one = ojson::object();
        ojson scaling = ojson::object();
        ojson worst = ojson::object();
        for (const auto& lane : figure.lanes) {
            const auto one = median_of(all, spec.group + "/1", lane.contender);
            if (lane.value && one) {
                vs_one[lane.contender] = lane.value->median / *one;
                scaling[lane.contender] = lane.value->median / (workers * *one);
                worst[lane.contender] = lane.value->min / (workers * *one);
            }
        }
        // CPU cost per pair of one worker over that of N: 1 when N workers cost each other
        // nothing (no shared line written), whatever the machine's load did to the rate.
        ojson cpu_scaling = ojson::object();
        const FigureResult* one_figure = find_figure(all, spec.group + "/1");
        for (const auto& lane : figure.lanes) {
            const LaneResult* one_lane = one_figure != nullptr ? find_lane(*one_figure, lane.contender) : nullptr;
            if (lane.value && one_lane != nullptr && lane.phases.count("cpu") != 0 && one_lane->phases.count("cpu") != 0) {
                cpu_scaling[lane.contender] = one_lane->phases.at("cpu").median / lane.phases.at("cpu").median;
            }
        }
        out["vs_one"] = vs_one;
        out["scaling"] = scaling;
        out["scaling_worst"] = worst;
        out["cpu_scaling"] = cpu_scaling;
    }
    return out;
}

void add_target(ojson& targets, const std::string& what, std::optional<double> value, double limit, bool at_most) {
    if (!value) {
        return;  // figure filtered out or dragonmem failed: nothing to compare
    }
    ojson target;
    target["what"] = what;
    target["value"] = *value;
    target["limit"] = limit;
    target["met"] = at_most ? *value <= limit : *value >= limit;
    targets.push_back(target);
}

std::optional<double> divide(std::optional<double> a, std::optional<double> b) {
    return a && b ? std::optional<double>(*a / *b) : std::nullopt;
}

// docs/design.md section 6, as measured in this run. Informational: timings are never
// asserted, by CI or otherwise.
ojson targets_json(const std::vector<FigureResult>& figures) {
    ojson targets = ojson::array();
    for (const char* size : {"64B", "4KiB", "1MiB"}) {
        const std::string pair = fmt::format("pair/{}", size);
        const std::string live = fmt::format("live/{}", size);
        add_target(targets, pair + " dragonmem median ns/pair <= 100", median_of(figures, pair, "dragonmem"), 100, true);
        add_target(targets, pair + " dragonmem/boost <= 0.5",
                   divide(median_of(figures, pair, "dragonmem"), median_of(figures, pair, "boost")), 0.5, true);
        add_target(targets, live + " per-op / " + pair + " <= 2",
                   divide(median_of(figures, live, "dragonmem"), median_of(figures, pair, "dragonmem")), 2, true);
    }
    // Issue 11: N workers >= 0.9 N x one, up to the cores, processes and threads alike.
    for (const auto& figure : figures) {
        const FigureSpec& spec = figure.spec;
        if (!is_scaling_group(spec.group) || spec.params.at("workers") < 2) {
            continue;
        }
        const double workers = spec.params.at("workers");
        add_target(targets, fmt::format("{} / ({} x {}/1) dragonmem >= 0.9", spec.name, workers, spec.group),
                   divide(median_of(figures, spec.name, "dragonmem"),
                          divide(median_of(figures, spec.group + "/1", "dragonmem"), 1.0 / workers)),
                   0.9, false);
    }
    add_target(targets, "create_destroy/1GiB median ns <= 5e6", median_of(figures, "create_destroy/1GiB", "dragonmem"),
               5e6, true);
    for (const char* size : {"64MiB", "1GiB", "16GiB"}) {
        const std::string attach = fmt::format("attach/{}", size);
        add_target(targets, attach + " median ns <= 1e5", median_of(figures, attach, "dragonmem"), 1e5, true);
    }
    return targets;
}

void expect(std::vector<std::string>& problems, bool condition, const std::string& problem) {
    if (!condition) {
        problems.push_back(problem);
    }
}

bool is_positive_number(const nlohmann::json& value) {
    return value.is_number() && std::isfinite(value.get<double>()) && value.get<double>() > 0;
}

void validate_summary(std::vector<std::string>& problems, const nlohmann::json& summary, const std::string& where,
                      std::size_t reps) {
    bool numbers_ok = true;
    for (const char* key : {"median", "min", "max"}) {
        const bool number_ok = summary.contains(key) && is_positive_number(summary[key]);
        expect(problems, number_ok, fmt::format("{}: '{}' is not a positive finite number", where, key));
        numbers_ok = numbers_ok && number_ok;
    }
    if (numbers_ok) {
        const double median = summary["median"];
        expect(problems, summary["min"].get<double>() <= median && median <= summary["max"].get<double>(),
               fmt::format("{}: min <= median <= max does not hold", where));
    }
    expect(problems, summary.contains("reps") && summary["reps"].is_array() && summary["reps"].size() == reps,
           fmt::format("{}: 'reps' is not an array of {} values", where, reps));
}

}  // namespace

ojson build_report(const std::vector<FigureResult>& figures, const RunInfo& info) {
    std::vector<std::string> errors = info.errors;
    ojson figures_json = ojson::array();
    for (const auto& figure : figures) {
        figures_json.push_back(figure_json(figure, figures));
        for (const auto& lane : figure.lanes) {
            if (!lane.error.empty()) {
                errors.push_back(fmt::format("{} / {}: {}", figure.spec.name, lane.contender, lane.error));
            }
        }
    }
    ojson report;
    report["schema"] = kReportSchema;
    report["ok"] = errors.empty();
    report["machine"] = info.machine;
    report["config"] = info.config;
    report["contenders"] = info.contenders;
    report["ratio_note"] =
        "ratios are of medians, dragonmem over the other; for ns figures below 1 means dragonmem is faster, "
        "for pairs/s figures above 1 does";
    report["figures"] = figures_json;
    report["targets"] = targets_json(figures);
    report["errors"] = errors;
    return report;
}

void print_scaling(const std::vector<FigureResult>& figures) {
    bool header = false;
    for (const auto& figure : figures) {
        const FigureSpec& spec = figure.spec;
        if (!is_scaling_group(spec.group)) {
            continue;
        }
        if (!header) {
            std::fprintf(stderr, "scaling: N-way / (N x one), medians (worst rep); cpu: CPU ns/pair of one / of N\n");
            header = true;
        }
        const double workers = spec.params.at("workers");
        std::string line = fmt::format("  {:<20}", spec.name);
        for (const auto& lane : figure.lanes) {
            const auto one = median_of(figures, spec.group + "/1", lane.contender);
            if (lane.value && one) {
                line += fmt::format("  {} {:.2f} ({:.2f})", lane.contender, lane.value->median / (workers * *one),
                                    lane.value->min / (workers * *one));
                const FigureResult* one_figure = find_figure(figures, spec.group + "/1");
                const LaneResult* one_lane = one_figure != nullptr ? find_lane(*one_figure, lane.contender) : nullptr;
                if (one_lane != nullptr && lane.phases.count("cpu") != 0 && one_lane->phases.count("cpu") != 0) {
                    line += fmt::format(" cpu {:.2f}", one_lane->phases.at("cpu").median / lane.phases.at("cpu").median);
                }
            }
        }
        std::fprintf(stderr, "%s\n", line.c_str());
    }
}

std::vector<std::string> validate_report(const nlohmann::json& report) {
    std::vector<std::string> problems;
    if (!report.is_object()) {
        return {"report is not a JSON object"};
    }
    expect(problems, report.value("schema", "") == kReportSchema, "'schema' is missing or not " + std::string(kReportSchema));
    for (const char* key : {"machine", "config", "contenders"}) {
        expect(problems, report.contains(key) && report[key].is_object(), fmt::format("'{}' is not an object", key));
    }
    expect(problems, report.contains("errors") && report["errors"].is_array(), "'errors' is not an array");
    expect(problems, report.contains("targets") && report["targets"].is_array(), "'targets' is not an array");
    expect(problems, report.contains("ok") && report["ok"].is_boolean(), "'ok' is not a boolean");
    expect(problems, report.contains("figures") && report["figures"].is_array() && !report["figures"].empty(),
           "'figures' is not a non-empty array");
    if (!problems.empty()) {
        return problems;
    }
    const std::size_t reps = report["config"].value("reps", std::size_t{0});
    expect(problems, reps > 0, "'config.reps' is not a positive integer");
    std::size_t failed_results = 0;
    std::set<std::string> names;
    for (const auto& figure : report["figures"]) {
        const std::string name = figure.value("name", "");
        expect(problems, !name.empty() && names.insert(name).second, fmt::format("figure name '{}' empty or repeated", name));
        for (const char* key : {"group", "what", "unit", "better"}) {
            expect(problems, figure.contains(key) && figure[key].is_string(), fmt::format("{}: '{}' is not a string", name, key));
        }
        expect(problems, figure.contains("results") && figure["results"].is_object() && figure["results"].contains("dragonmem"),
               fmt::format("{}: 'results' has no dragonmem entry", name));
        if (!figure.contains("results") || !figure["results"].is_object()) {
            continue;
        }
        for (const auto& [contender, result] : figure["results"].items()) {
            const std::string where = fmt::format("{} / {}", name, contender);
            if (result.contains("error")) {
                ++failed_results;
                expect(problems, result["error"].is_string() && !result["error"].get<std::string>().empty(),
                       where + ": 'error' is not a non-empty string");
                continue;
            }
            validate_summary(problems, result, where, reps);
            if (result.contains("phases")) {
                for (const auto& [phase, summary] : result["phases"].items()) {
                    validate_summary(problems, summary, where + " / " + phase, reps);
                }
            }
        }
    }
    const bool ok = report["ok"];
    expect(problems, ok == (report["errors"].empty() && failed_results == 0),
           "'ok' disagrees with 'errors' and the failed results");
    return problems;
}

}  // namespace bench
