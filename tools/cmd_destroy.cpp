// dragonmem destroy: remove pools for everyone (unmap and unlink), by name or glob, by
// descriptor, every pool of this host owned by the caller, or the caller's orphaned pools
// (no live process attached: the library's PoolAttributes::orphaned). --dry-run says what
// would go and changes nothing.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <dragonmem/system_error.hpp>

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <vector>

namespace dragonmem::cli {
namespace {

// What a destroy did (or, with --dry-run, would do), pool by pool; any failure makes the
// command exit 1 after printing it.
struct Tally {
    bool dry_run = false;
    json destroyed = json::array();
    json failed = json::array();
    json skipped = json::array();
    std::vector<std::string> failed_names;
    std::optional<Failure> first_failure;

    void fail(const std::string& name, const Error& e) {
        failed.push_back(json{{"name", name}, {"error", error_json(e)}});
        failed_names.push_back(name);
        if (!first_failure) first_failure = Failure{e.code(), e.what(), errno_of(e)};
    }
    void skip(const std::string& name, const std::string& reason, const json& pids) {
        skipped.push_back(json{{"name", name}, {"reason", reason}, {"attached_pids", pids}});
    }
    Outcome outcome() const {
        Outcome result{json{{"destroyed", destroyed}, {"failed", failed}, {"skipped", skipped}, {"dry_run", dry_run}},
                       std::nullopt};
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
    if (tally.dry_run) {
        tally.destroyed.push_back(name);
        return;
    }
    try {
        pool.destroy();
        tally.destroyed.push_back(name);
    } catch (const Error& e) {
        tally.fail(name, e);
    }
}

// --force: the library removes the pool by name even when it cannot be attached (a
// damaged header, a creator killed mid-creation); a healthy pool is destroyed properly.
// A dry run lists the names whose shm object exists (what force_remove would remove).
void force_remove_into(const std::string& name, Tally& tally) {
    try {
        if (tally.dry_run) {
            if (!shm_owner_uid(Pool::local_shm_name(name)))
                throw SystemError(DRAGON_MEMORY_ERRNO,
                                  fmt::format("pool '{}': no shm object '/dev/shm/{}'", name, Pool::local_shm_name(name)),
                                  ENOENT);
        } else {
            Pool::force_remove(name);
        }
        tally.destroyed.push_back(name);
    } catch (const Error& e) {
        tally.fail(name, e);
    }
}

bool is_glob(const std::string& text) { return text.find_first_of("*?[") != std::string::npos; }

// POOL arguments with globs ('job42.*') expanded against this host's pools, in order,
// each pool once. Pool names never hold * ? [ (pool_name.hpp), so a word with one is a
// pattern. A pattern that matches nothing fails the command before anything is destroyed,
// as a missing name does.
std::vector<std::string> expand_names(const std::vector<std::string>& words) {
    std::vector<std::string> names;
    std::optional<std::vector<std::string>> host;
    for (const std::string& word : words) {
        if (!is_glob(word)) {
            if (std::find(names.begin(), names.end(), word) == names.end()) names.push_back(word);
            continue;
        }
        if (!host) host = sorted_pool_names();
        bool any = false;
        for (const std::string& name : *host) {
            if (::fnmatch(word.c_str(), name.c_str(), 0) != 0) continue;
            any = true;
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
        if (!any)
            throw SystemError(DRAGON_MEMORY_ERRNO, fmt::format("no pool of this host matches '{}'; nothing was destroyed", word),
                              ENOENT);
    }
    return names;
}

// The live processes other than this one that have `a`'s pool mapped, as the pool
// object prints them.
json other_pids(const PoolAttributes& a) {
    json pids = json::array();
    for (std::uint32_t pid : a.attached_pids)
        if (pid != static_cast<std::uint32_t>(::getpid())) pids.push_back(pid);
    return pids;
}

// Why another live process keeps pool `a`, or nullopt when none does.
std::optional<std::string> in_use_reason(const PoolAttributes& a) {
    const json pids = other_pids(a);
    if (!pids.empty()) return fmt::format("attached by {} live process(es)", pids.size());
    if (a.untracked_attached != 0)
        return fmt::format("attached by {} process(es) beyond the pool's process table", a.untracked_attached);
    if (a.process_local && a.owner_alive && a.owner_pid != static_cast<std::uint32_t>(::getpid()))
        return fmt::format("process-local to live process {}", a.owner_pid);
    return std::nullopt;
}

bool mine(const std::string& name) { return shm_owner_uid(Pool::local_shm_name(name)) == ::geteuid(); }

// Pools found in /dev/shm whose shm object belongs to our effective uid. Without --force,
// one that another live process uses is skipped (listed under "skipped"); one that cannot
// be attached is reported, not skipped: cleanup scripts must learn what is left.
Tally destroy_all_mine(bool force, bool dry_run) {
    Tally tally;
    tally.dry_run = dry_run;
    for (const std::string& name : sorted_pool_names()) {
        if (!mine(name)) continue;
        if (force) {
            force_remove_into(name, tally);
            continue;
        }
        try {
            Pool pool = Pool::attach_local(name);
            const PoolAttributes a = pool.attributes();
            if (std::optional<std::string> reason = in_use_reason(a)) {
                tally.skip(name, *reason + " (--force destroys it anyway)", other_pids(a));
                continue;
            }
            destroy_into(pool, tally);
        } catch (const Error& e) {
            tally.fail(name, e);
        }
    }
    return tally;
}

// The caller's pools that no live process uses (PoolAttributes::orphaned). A pool that
// cannot be attached cannot be judged: skipped with its error, for --force by name.
Tally destroy_orphaned(bool dry_run) {
    Tally tally;
    tally.dry_run = dry_run;
    for (const std::string& name : sorted_pool_names()) {
        if (!mine(name)) continue;
        try {
            Pool pool = Pool::attach_local(name);
            const PoolAttributes a = pool.attributes();
            if (!a.orphaned) continue;
            destroy_into(pool, tally);
        } catch (const Error& e) {
            tally.skip(name, fmt::format("cannot be attached, so not judged: {} (destroy --force {} removes it)",
                                         e.what(), name),
                       json::array());
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
        bool orphaned = false;
        bool force = false;
        bool dry_run = false;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("destroy", "Destroy pools (for every process)");
    auto* names = cmd->add_option("POOL", args->names, "Base names of the pools, or globs ('job42.*')")->type_name("");
    auto* serial = cmd->add_option("--serial", args->serial, "Base64 pool descriptor, instead of POOL")
                       ->type_name("B64")
                       ->excludes(names);
    auto* all_mine = cmd->add_flag("--all-mine", args->all_mine,
                                   "Every pool of this host owned by the current user, except those other live "
                                   "processes use (unless --force)")
                         ->excludes(names)
                         ->excludes(serial);
    auto* force = cmd->add_flag("--force", args->force,
                                "Also remove pools that cannot be attached (damaged), and with --all-mine pools "
                                "others use; by name only")
                      ->excludes(serial);
    cmd->add_flag("--orphaned", args->orphaned,
                  "The current user's pools no live process has attached, and process-local pools whose owner died")
        ->excludes(names)
        ->excludes(serial)
        ->excludes(all_mine)
        ->excludes(force);
    cmd->add_flag("--dry-run", args->dry_run, "List what would be destroyed (\"destroyed\"), destroy nothing");
    cmd->footer("Examples:\n"
                "  dragonmem destroy p1 p2 | jq .destroyed\n"
                "  dragonmem destroy 'job42.*' --dry-run | jq -r '.destroyed[]'\n"
                "  dragonmem destroy --orphaned | jq '.destroyed | length'\n"
                "  dragonmem destroy --all-mine --force | jq '.destroyed | length'");

    return {cmd, [=] {
                if (args->all_mine) return destroy_all_mine(args->force, args->dry_run).outcome();
                if (args->orphaned) return destroy_orphaned(args->dry_run).outcome();
                if (args->serial.empty() && args->names.empty())
                    throw UsageError("name the pools: POOL..., --serial BASE64, --all-mine or --orphaned");
                for (auto it = args->names.begin(); it != args->names.end(); ++it) {
                    // The second destroy of one pool would fail after the first succeeded.
                    if (std::find(args->names.begin(), it, *it) != it)
                        throw UsageError(fmt::format("POOL: '{}' is given twice", *it));
                }
                const std::vector<std::string> expanded = expand_names(args->names);
                Tally tally;
                tally.dry_run = args->dry_run;
                if (args->force) {
                    // A damaged pool cannot be checked first: each name on its own.
                    for (const std::string& name : expanded) force_remove_into(name, tally);
                    return tally.outcome();
                }
                // Without --force every pool is attached first: a missing one fails the
                // command before anything is destroyed.
                std::vector<Pool> pools;
                if (!args->serial.empty()) pools.push_back(Pool::attach_base64(args->serial));
                for (const std::string& name : expanded) pools.push_back(Pool::attach_local(name));
                for (Pool& pool : pools) destroy_into(pool, tally);
                return tally.outcome();
            }};
}

}  // namespace dragonmem::cli
