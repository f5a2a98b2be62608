// Several workers hammering one shared pool, as forked processes or as threads of this
// process, optionally pinned one per CPU: starts them together, stops them after a fixed
// time and measures their aggregate rate (the procs/… and threads/… figures).
#pragma once

#include "contender.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bench {

enum class WorkerKind { process, thread };

struct HammerOutcome {
    std::uint64_t pairs = 0;      // alloc+free pairs done by all workers together
    std::uint64_t window_ns = 0;  // from the common start to the last worker's stop
    std::uint64_t cpu_ns = 0;     // CPU time the workers' loops took, all together
};

// `contender` must have been share()d. Each worker opens the shared pool itself
// (open_in_child: a forked child attaches it, a thread opens its own session), reports
// ready, waits for the common start, runs alloc+free pairs of `size_bytes` for
// `duration_ns`, then detaches. `pinned`: worker i runs only on the i-th CPU this
// process may use (modulo their number). Throws BenchError when a worker fails, hangs
// (a child is killed) or dies.
HammerOutcome hammer(Contender& contender, WorkerKind kind, int workers, bool pinned, std::size_t size_bytes,
                     std::uint64_t duration_ns);

// The CPUs this process may run on (sched_getaffinity), in order.
const std::vector<int>& usable_cpus();

// Pins the calling thread to usable_cpus()[index % count]; false if that failed.
bool pin_to_cpu(int index);

// Worker counts of the scaling figures: 1, 2, 4, ... up to `limit`, and `limit` itself.
std::vector<int> worker_counts(int limit);

constexpr int kMaxHammerWorkers = 256;

}  // namespace bench
