// dragonmem: script managed-memory pools from the shell. Wires the sub-commands into
// CLI11, runs the selected one, and turns every outcome into JSON and an exit code:
// 0 success, 1 a failed operation, 2 bad usage.
#include "commands.hpp"
#include "common.hpp"
#include "output.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include <chrono>
#include <exception>
#include <vector>

namespace {

using namespace dragonmem::cli;

constexpr int exit_failed = 1;
// A pool's lock is held for microseconds; one held for seconds belongs to a process that
// is stopped (SIGSTOP, a debugger) or stuck, and a command had better say so than hang.
constexpr const char* default_lock_timeout = "5";
constexpr int exit_usage = 2;

constexpr const char* overview =
    "Create, inspect and destroy managed-memory pools and their allocations.\n"
    "Every command prints one JSON document on stdout (read and dump --raw print raw bytes);\n"
    "errors are {\"error\": {\"code\", \"rc\", \"message\"}} on stderr.";

constexpr const char* footer =
    "Exit status: 0 success, 1 the operation failed, 2 bad usage.\n"
    "Example:\n"
    "  serial=$(dragonmem create p1 --size 1M | jq -r .pool.serialized)\n"
    "  dragonmem alloc p1 --size 4K | jq -r .allocations[0].id\n"
    "See dragonmem(1) for every command and JSON key.";

int usage_error(const std::string& message, bool pretty) {
    print_error(dragon_getrcstr(DRAGON_INVALID_ARGUMENT), DRAGON_INVALID_ARGUMENT, message, pretty);
    return exit_usage;
}

int failed(dragonError_t code, const std::string& message, bool pretty, int errno_value = 0) {
    print_error(dragon_getrcstr(code), code, message, pretty, errno_value);
    return exit_failed;
}

// Levenshtein distance, for "did you mean" (command names are a few letters).
std::size_t distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// The command word of the line (the first argument that is not a global option or its
// value), when it names no command: CLI11 would only say it was "not expected".
std::optional<std::string> unknown_command(int argc, char** argv, const CLI::App& app) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--lock-timeout") {
            ++i;
            continue;
        }
        if (arg.starts_with("-")) continue;
        for (const CLI::App* sub : app.get_subcommands({}))
            if (sub->get_name() == arg) return std::nullopt;
        return std::string(arg);
    }
    return std::nullopt;
}

std::string nearest_command(std::string_view word, const CLI::App& app) {
    std::string best;
    std::size_t best_distance = std::string_view::npos;
    for (const CLI::App* sub : app.get_subcommands({})) {
        const std::size_t d = distance(word, sub->get_name());
        if (d < best_distance) {
            best_distance = d;
            best = sub->get_name();
        }
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app(overview, "dragonmem");
    app.footer(footer);
    // At most one command; none is allowed by the parser so that --version works alone,
    // and reported as bad usage below.
    app.require_subcommand(0, 1);
    // Global options are accepted after the sub-command too ("dragonmem ls --pretty").
    app.fallthrough();
    bool pretty = false;
    bool version = false;
    app.add_flag("--pretty", pretty, "Indent the JSON output");
    app.add_flag("-V,--version", version, "Print {\"name\", \"version\"} and exit");
    std::string lock_timeout = default_lock_timeout;
    app.add_option("--lock-timeout", lock_timeout,
                   "Wait at most SEC seconds for a pool's lock held by another process, then fail with "
                   "DRAGON_TIMEOUT naming the holder (default 5)")
        ->type_name("SEC");

    // In the order --help lists them.
    const std::vector<Command> commands{
        add_create(app), add_attach(app),    add_alloc(app),   add_free(app),
        add_ls(app),     add_dump(app),      add_serialize(app), add_destroy(app),
        add_write(app),  add_read(app),      add_check(app),     add_info(app),
        add_copy(app),   add_clear(app),     add_hash(app),    add_equal(app),
        add_stat(app),   add_serve(app),
    };

    if (const auto word = unknown_command(argc, argv, app))
        return usage_error(fmt::format("unknown command '{}'; the nearest is '{}' (see --help)", *word,
                                       nearest_command(*word, app)),
                           std::find(argv + 1, argv + argc, std::string_view("--pretty")) != argv + argc);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
        return usage_error(e.what(), pretty);
    }

    try {
        const double lock_seconds = parse_seconds(lock_timeout, "--lock-timeout");
        dragonmem::set_lock_wait_limit(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(lock_seconds)));
        if (version) {
            print_document(json{{"name", "dragonmem"}, {"version", dragonmem::version_string}}, pretty);
            return 0;
        }
        for (const Command& command : commands) {
            if (!command.app->parsed()) continue;
            const Outcome outcome = command.run();
            try {
                if (outcome.document) print_document(*outcome.document, pretty);
                if (outcome.text) {
                    write_text(*outcome.text);
                    flush_stdout();
                }
                if (outcome.stream) {
                    JsonStream out(outcome.layout.value_or(pretty ? Layout::pretty : Layout::compact));
                    outcome.stream(out);
                    out.finish();
                }
            } catch (const dragonmem::Error& e) {
                if (!outcome.undo) throw;
                return failed(e.code(), std::string(e.what()) + "; " + outcome.undo(), pretty, dragonmem::errno_of(e));
            }
            if (outcome.failure)
                return failed(outcome.failure->code, outcome.failure->message, pretty, outcome.failure->errno_value);
            if (outcome.after) return outcome.after();
            return 0;
        }
        return usage_error("a command is required: create, attach, alloc, free, ls, dump, serialize, "
                           "destroy, write, read, check, info or serve (see --help)", pretty);
    } catch (const UsageError& e) {
        return usage_error(e.what(), pretty);
    } catch (const dragonmem::Error& e) {
        return failed(e.code(), e.what(), pretty, dragonmem::errno_of(e));
    } catch (const std::exception& e) {
        return failed(DRAGON_FAILURE, e.what(), pretty);
    }
}
