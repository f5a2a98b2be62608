// dragonmem destroy: remove pools for everyone (unmap and unlink), by name, by descriptor,
// or every pool of this host owned by the caller.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

namespace dragonmem::cli {
namespace {

// What a destroy did, pool by pool; any failure makes the command exit 1 after printing it.
struct Tally {
    json destroyed = json::array();
    json failed = json::array();
    std::vector<std::string> failed_names;
    std::optional<Failure> first_failure;

    void fail(const std::string& name, const Error& e) {
        failed.push_back(json{{"name", name}, {"error", error_json(e)}});
        failed_names.push_back(name);
        if (!first_failure) first_failure = Failure{e.code(), e.what(), errno_of(e)};
    }
    Outcome outcome() const {
        Outcome result{json{{"destroyed", destroyed}, {"failed", failed}}, std::nullopt};
        if (first_failure)
            result.failure = Failure{first_failure->code,
                                     fmt::format("could not destroy {} pool(s): {} (first: {})", failed_names.size(),
                                                 fmt::join(failed_names, ", "), first_failure->message),
                                     first_failure->errno_value};
        return result;
    }
};

void destroy_into(Pool& pool, Tally& tally) {
    const std::string name = pool.name();
    try {
        pool.destroy();
        tally.destroyed.push_back(name);
    } catch (const Error& e) {
        tally.fail(name, e);
    }
}

// --force: the library removes the pool by name even when it cannot be attached (a
// damaged header, a creator killed mid-creation); a healthy pool is destroyed properly.
void force_remove_into(const std::string& name, Tally& tally) {
    try {
        Pool::force_remove(name);
        tally.destroyed.push_back(name);
    } catch (const Error& e) {
        tally.fail(name, e);
    }
}

// Pools found in /dev/shm whose shm object belongs to our effective uid. One that cannot
// be destroyed is reported, not skipped: cleanup scripts must learn what is left.
Tally destroy_all_mine(bool force) {
    std::vector<std::string> names = Pool::list_local();
    std::sort(names.begin(), names.end());
    Tally tally;
    for (const std::string& name : names) {
        if (shm_owner_uid(Pool::local_shm_name(name)) != ::geteuid()) continue;
        if (force) {
            force_remove_into(name, tally);
            continue;
        }
        try {
            Pool pool = Pool::attach_local(name);
            destroy_into(pool, tally);
        } catch (const Error& e) {
            tally.fail(name, e);
        }
    }
    return tally;
}

}  // namespace

Command add_destroy(CLI::App& top) {
    struct Args {
        std::vector<std::string> names;
        std::string serial;
        bool all_mine = false;
        bool force = false;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("destroy", "Destroy pools (for every process)");
    auto* names = cmd->add_option("POOL", args->names, "Base names of the pools")->type_name("");
    auto* serial = cmd->add_option("--serial", args->serial, "Base64 pool descriptor, instead of POOL")
                       ->type_name("B64")
                       ->excludes(names);
    cmd->add_flag("--all-mine", args->all_mine, "Every pool of this host owned by the current user")
        ->excludes(names)
        ->excludes(serial);
    cmd->add_flag("--force", args->force, "Also remove pools that cannot be attached (damaged); by name only")
        ->excludes(serial);
    cmd->footer("Examples:\n"
                "  dragonmem destroy p1 p2 | jq .destroyed\n"
                "  dragonmem destroy --all-mine --force | jq '.destroyed | length'");

    return {cmd, [=] {
                if (args->all_mine) return destroy_all_mine(args->force).outcome();
                if (args->serial.empty() && args->names.empty())
                    throw UsageError("name the pools: POOL..., --serial BASE64 or --all-mine");
                for (auto it = args->names.begin(); it != args->names.end(); ++it) {
                    // The second destroy of one pool would fail after the first succeeded.
                    if (std::find(args->names.begin(), it, *it) != it)
                        throw UsageError(fmt::format("POOL: '{}' is given twice", *it));
                }
                Tally tally;
                if (args->force) {
                    // A damaged pool cannot be checked first: each name on its own.
                    for (const std::string& name : args->names) force_remove_into(name, tally);
                    return tally.outcome();
                }
                // Without --force every pool is attached first: a missing one fails the
                // command before anything is destroyed.
                std::vector<Pool> pools;
                if (!args->serial.empty()) pools.push_back(Pool::attach_base64(args->serial));
                for (const std::string& name : args->names) pools.push_back(Pool::attach_local(name));
                for (Pool& pool : pools) destroy_into(pool, tally);
                return tally.outcome();
            }};
}

}  // namespace dragonmem::cli
