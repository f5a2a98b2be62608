// Running a risky call in a forked copy of the test process (no exec), so that a crash
// or a hang becomes a verdict the test can check instead of the end of the run.
#pragma once

#include <functional>
#include <string>

namespace dmtest {

// Runs `fn` in a forked child: whatever it returns (a verdict text) comes back; a crash
// or a hang past `timeout_ms` comes back as "CRASH: ..." / "HANG: ..." with the tail of
// what the child printed (an ASan report, say).
struct Isolated {
    bool completed = false;  // fn returned (exit 0)
    std::string text;        // what fn returned, or how it died
};
Isolated run_isolated(const std::function<std::string()>& fn, int timeout_ms = 10000);

}  // namespace dmtest
