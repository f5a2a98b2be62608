// Unique pool names for tests and the guarantee that nothing of ours stays in /dev/shm:
// every name handed out is remembered, a ShmGuard unlinks its pool's objects when it
// goes out of scope (also when a REQUIRE throws), and an atexit sweep removes whatever
// this process's names left behind. Before a run, the doctest runner also removes what
// test processes that died (a crash, a SIGKILL, a sanitizer halt) left.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dmtest {

// "dmt<pid>_<n><suffix>", cut to 29 chars (the safe character set); remembered for the
// sweep. The suffix only helps a reader tell the names of one test apart.
std::string unique_pool_name(std::string_view suffix = {});
// A unique name padded with 'x' up to `length` characters (to try the longest names).
std::string padded_pool_name(std::size_t length);

// The prefix every name from unique_pool_name() of this process starts with.
std::string my_name_prefix();

// /dev/shm/dragonmem.<name>
inline std::string shm_path(std::string_view pool_name) { return "/dev/shm/dragonmem." + std::string(pool_name); }
bool shm_exists(std::string_view pool_name);
// Sets the modification time of pool `name`'s object to `seconds` from now (a negative
// value: in the past); false if it cannot. The library judges a blank object's age by the
// later of its mtime and ctime, and ctime becomes now with this call: a future mtime
// keeps the object young (a creator's grace) however long a loaded machine stalls the
// test; any other call makes it young again for the grace period from now.
bool set_shm_mtime(std::string_view pool_name, long seconds);
// Entries of /dev/shm whose name starts with `prefix` (e.g. "dragonmem.dmt123_").
std::vector<std::string> shm_entries_with_prefix(std::string_view prefix);
// Every /dev/shm object belonging to pool `name`: "dragonmem.<name>" itself and any
// "dragonmem.<name>.*" / "dragonmem.<name>_*" / "dragonmem.<name>-*" companions.
std::vector<std::string> shm_objects_of(std::string_view pool_name);

// Unlinks every object of `pool_name` (ignores errors). Returns how many were removed.
int unlink_pool_objects(std::string_view pool_name);
// Unlinks every object of every name this process handed out; returns the leftovers
// it found (for a report), already removed.
std::vector<std::string> sweep_my_shm();

// Removes /dev/shm objects left by test processes that are gone: names
// "dragonmem.[.-]dmt<pid>_..." (this library) or "dragonmem.[.-]dmc<pid>_..." (the C test,
// tests/c) whose <pid> no longer exists. Returns what it removed.
std::vector<std::string> sweep_dead_owners();

// Removes a pool's shared-memory objects on scope exit, whatever the test did.
class ShmGuard {
public:
    explicit ShmGuard(std::string pool_name) : name_(std::move(pool_name)) {}
    ShmGuard(const ShmGuard&) = delete;
    ShmGuard& operator=(const ShmGuard&) = delete;
    ~ShmGuard() { unlink_pool_objects(name_); }
    const std::string& name() const { return name_; }

private:
    std::string name_;
};

}  // namespace dmtest
