// Names of the shared-memory objects a run creates, and their removal on every exit
// path: the normal end (sweep_leftovers) and fatal signals (the handlers). A forked
// child never removes anything: its parent owns the objects.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bench {

// "dmb<pid>_<kind><seq>": unique in this run, at most 29 chars of [A-Za-z0-9_], so it
// is valid as a dragonmem pool base name, a Boost segment name and a POSIX shm name.
std::string unique_shm_name(std::string_view kind);

// "dmb<pid>_": every name above contains it, whatever prefix a library adds in
// /dev/shm; it is how leftovers of this run are recognised.
const std::string& run_tag();

// On SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS: unlink every /dev/shm
// entry carrying the run tag, then die of the same signal.
void install_cleanup_handlers();

// Unlinks every /dev/shm entry still carrying the run tag and returns their names.
// After all contenders are gone this must return nothing: anything else is a leak.
std::vector<std::string> sweep_leftovers();

// True when a mapping in /proc/self/maps names a file containing `name`.
bool mapped_in_this_process(std::string_view name);

}  // namespace bench
