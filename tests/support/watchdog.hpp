// A watchdog that turns a hang into a failure: if `arm()`ed and not `disarm()`ed within
// the limit, it prints `what`, what every thread of the process is blocked in and the
// pool mappings, SIGKILLs the children still running, removes this process's pools from
// /dev/shm and ends the process with exit status 124 (the meson test then fails at once,
// saying where it hung, instead of waiting for the harness timeout).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace dmtest {

class Watchdog {
public:
    Watchdog();
    ~Watchdog();
    void arm(double limit_ms, std::string what);
    void disarm();

private:
    void run();
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<double> deadline_ms_{0};
    std::mutex what_mutex_;
    std::string what_;
    std::thread thread_;
};
// The process's one watchdog (started on first use, never destroyed).
Watchdog& watchdog();

}  // namespace dmtest
