// dragonmem: script managed-memory pools from the shell. Wires the sub-commands into
// CLI11, runs the selected one, and turns every outcome into JSON and an exit code:
// 0 success, 1 a failed operation, 2 bad usage.
#include "commands.hpp"
#include "common.hpp"
#include "output.hpp"

#include <CLI/CLI.hpp>

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
    "  serial=$(dragonmem create p1 --size 1M | jq -r .serialized)\n"
    "  dragonmem alloc p1 --size 4K | jq .allocations[0].id\n"
    "See dragonmem(1) for every command and JSON key.";

int usage_error(const std::string& message, bool pretty) {
    print_error(dragon_getrcstr(DRAGON_INVALID_ARGUMENT), DRAGON_INVALID_ARGUMENT, message, pretty);
    return exit_usage;
}

int failed(dragonError_t code, const std::string& message, bool pretty) {
    print_error(dragon_getrcstr(code), code, message, pretty);
    return exit_failed;
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
    app.add_flag("--version", version, "Print {\"name\", \"version\"} and exit");
    std::string lock_timeout = default_lock_timeout;
    app.add_option("--lock-timeout", lock_timeout,
                   "Wait at most SEC seconds for a pool's lock held by another process, then fail with "
                   "DRAGON_TIMEOUT naming the holder (default 5)")
        ->type_name("SEC");

    // In the order --help lists them.
    const std::vector<Command> commands{
        add_create(app), add_attach(app),    add_alloc(app),   add_free(app),
        add_ls(app),     add_dump(app),      add_serialize(app), add_destroy(app),
        add_write(app),  add_read(app),      add_check(app),
        add_copy(app),   add_clear(app),     add_hash(app),    add_equal(app),
    };

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
            if (outcome.document) {
                try {
                    print_document(*outcome.document, pretty);
                } catch (const dragonmem::Error& e) {
                    if (!outcome.undo) throw;
                    return failed(e.code(), std::string(e.what()) + "; " + outcome.undo(), pretty);
                }
            }
            if (outcome.failure) return failed(outcome.failure->code, outcome.failure->message, pretty);
            return 0;
        }
        return usage_error("a command is required: create, attach, alloc, free, ls, dump, serialize, "
                           "destroy, write, read or check (see --help)", pretty);
    } catch (const UsageError& e) {
        return usage_error(e.what(), pretty);
    } catch (const dragonmem::Error& e) {
        return failed(e.code(), e.what(), pretty);
    } catch (const std::exception& e) {
        return failed(DRAGON_FAILURE, e.what(), pretty);
    }
}
