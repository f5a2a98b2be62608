// The sub-commands of dragonmem. Each add_* registers its sub-command (options, help,
// example) on the top-level app and returns how to run it once the line is parsed; main
// runs the selected one and owns printing and exit codes.
#pragma once

#include "json_stream.hpp"
#include "output.hpp"

#include <dragonmem/dragonmem.hpp>

#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace CLI {
class App;
}

namespace dragonmem::cli {

// Printed on stderr when a command acted and yet must report failure (check found a
// broken invariant, destroy --all-mine could not remove a pool): exit 1.
struct Failure {
    dragonError_t code = DRAGON_FAILURE;
    std::string message;
    int errno_value = 0;  // of the system call behind it, 0 if none
};

struct Outcome {
    Outcome(std::optional<json> document_, std::optional<Failure> failure_, std::function<std::string()> undo_ = {})
        : document(std::move(document_)), failure(std::move(failure_)), undo(std::move(undo_)) {}

    std::optional<json> document;  // nullopt: the command streams (below) or wrote raw bytes
    // A document too large to build whole, written as it is produced. `layout` overrides
    // --pretty (--jsonl).
    std::function<void(JsonStream&)> stream;
    std::optional<Layout> layout;
    // --table: text for people instead of JSON, printed as it is.
    std::optional<std::string> text;
    std::optional<Failure> failure;
    // Takes back what the command changed, for when its document cannot be printed
    // (stdout unwritable): exit 1 must mean nothing changed. Returns what it did, for the
    // error message. Empty for commands that change nothing (or cannot be undone).
    std::function<std::string()> undo;
    // Runs once the document is printed (create --hold); its result is the exit status.
    std::function<int()> after;
};

struct Command {
    CLI::App* app = nullptr;
    std::function<Outcome()> run;
};

Command add_create(CLI::App& top);
Command add_attach(CLI::App& top);
Command add_alloc(CLI::App& top);
Command add_free(CLI::App& top);
Command add_ls(CLI::App& top);
Command add_dump(CLI::App& top);
Command add_serialize(CLI::App& top);
Command add_destroy(CLI::App& top);
Command add_serve(CLI::App& top);
Command add_write(CLI::App& top);
Command add_read(CLI::App& top);
Command add_check(CLI::App& top);
Command add_info(CLI::App& top);
Command add_copy(CLI::App& top);
Command add_clear(CLI::App& top);
Command add_hash(CLI::App& top);
Command add_equal(CLI::App& top);
Command add_stat(CLI::App& top);

}  // namespace dragonmem::cli
