// The figure table and how each figure turns a contender into a timed lane.
#include "figures.hpp"

#include "contenders.hpp"
#include "mixed_workload.hpp"
#include "scaling_driver.hpp"

#include <fmt/format.h>

#include <sys/statvfs.h>

#include <algorithm>
#include <regex>

namespace bench {
namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;
constexpr std::size_t GiB = 1024 * MiB;

struct FigureDef {
    FigureSpec spec;
    std::vector<Contender*> contenders;
    std::function<Lane(Contender*)> make_lane;
};

// The pool sizes of the create/attach figures that /dev/shm can hold: dragonmem refuses a
// pool bigger than the file system under it (it could never be backed), so a 16 GiB
// figure on an 8 GiB /dev/shm is left out rather than reported as a failure.
std::vector<std::size_t> pool_sizes_that_fit() {
    struct statvfs fs {};
    const bool known = ::statvfs("/dev/shm", &fs) == 0;
    const double capacity = known ? double(fs.f_blocks) * double(fs.f_frsize) : 0;
    std::vector<std::size_t> sizes;
    for (const std::size_t pool : {64 * MiB, 1 * GiB, 16 * GiB})
        if (!known || double(pool) + double(64 * MiB) <= capacity) sizes.push_back(pool);
    return sizes;
}

// dragonmem, then the Boost peer when built, then `floor` (may be null).
std::vector<Contender*> lineup(const Contenders& all, Contender* floor) {
    std::vector<Contender*> lanes{all.dragonmem.get()};
    if (all.boost) {
        lanes.push_back(all.boost.get());
    }
    if (floor != nullptr) {
        lanes.push_back(floor);
    }
    return lanes;
}

std::vector<FigureDef> define_figures(const Contenders& all, const RunConfig& config) {
    std::vector<FigureDef> figures;
    const int max_workers = config.max_workers > 0 ? config.max_workers : static_cast<int>(usable_cpus().size());
    for (const std::size_t size : {64 * std::size_t{1}, 4 * KiB, 1 * MiB}) {
        figures.push_back(
            {{"pair/" + size_label(size), "pair", fmt::format("alloc+free pair of {} B, one process", size),
              "ns/pair", Metric::ns_per_op, "malloc", {{"size_bytes", double(size)}}},
             lineup(all, all.malloc.get()),
             [size](Contender* c) {
                 return Lane{c, {}, [c, size](std::uint64_t units) {
                                 return BatchTime{c->pairs(size, units), units, {}};
                             }};
             }});
    }
    for (const std::size_t size : {64 * std::size_t{1}, 4 * KiB, 1 * MiB}) {
        figures.push_back(
            {{"live/" + size_label(size), "live",
              fmt::format("{} live allocations of {} B, then {} frees in allocation order; per operation", kLiveCount,
                          size, kLiveCount),
              "ns/op", Metric::ns_per_op, "malloc", {{"size_bytes", double(size)}, {"live_count", double(kLiveCount)}}},
             lineup(all, all.malloc.get()),
             [size](Contender* c) {
                 return Lane{c, {}, [c, size](std::uint64_t cycles) {
                                 const LivePhases phases = c->live(size, kLiveCount, cycles);
                                 const std::uint64_t half_ops = cycles * kLiveCount;
                                 return BatchTime{phases.alloc_ns + phases.free_ns,
                                                  2 * half_ops,
                                                  {{"alloc", phases.alloc_ns, half_ops}, {"free", phases.free_ns, half_ops}}};
                             }};
             }});
    }
    figures.push_back(
        {{"handle/64B", "handle",
          "dragonmem: serialize + attach + detach + serial_free of a 64 B allocation; "
          "boost: get_handle_from_address + get_address_from_handle",
          "ns/round trip", Metric::ns_per_op, "", {{"size_bytes", 64}}},
         lineup(all, nullptr),
         [](Contender* c) {
             return Lane{c, {}, [c](std::uint64_t units) { return BatchTime{c->handle_round_trips(units), units, {}}; }};
         }});
    for (const std::size_t pool : pool_sizes_that_fit()) {
        figures.push_back(
            {{"create_destroy/" + size_label(pool), "create_destroy",
              fmt::format("create + destroy of a {} pool (memory reserved, not touched)", size_label(pool)),
              "ns/create+destroy", Metric::ns_per_op, "raw_shm", {{"pool_bytes", double(pool)}}},
             lineup(all, all.raw_shm.get()),
             [pool](Contender* c) {
                 return Lane{c, {}, [c, pool](std::uint64_t units) {
                                 return BatchTime{c->create_destroys(pool, units), units, {}};
                             }};
             }});
    }
    for (const std::size_t pool : pool_sizes_that_fit()) {
        figures.push_back(
            {{"attach/" + size_label(pool), "attach",
              fmt::format("attach + detach of an existing {} pool not mapped in the process", size_label(pool)),
              "ns/attach+detach", Metric::ns_per_op, "raw_shm", {{"pool_bytes", double(pool)}}},
             lineup(all, all.raw_shm.get()),
             [pool](Contender* c) {
                 return Lane{c, {}, [c, pool](std::uint64_t units) {
                                 return BatchTime{c->attach_detaches(pool, units), units, {}};
                             }};
             }});
    }
    // Scaling: N workers on one shared pool, N = 1, 2, 4, ... up to the CPUs (or
    // --max-workers), as processes and as threads, unpinned and pinned one per CPU.
    struct ScalingGroup {
        const char* group;
        WorkerKind kind;
        bool pinned;
        const char* what;
    };
    for (const ScalingGroup& g :
         {ScalingGroup{"procs", WorkerKind::process, false, "forked process(es) attach"},
          ScalingGroup{"procs_pinned", WorkerKind::process, true, "forked process(es), each pinned to its own CPU, attach"},
          ScalingGroup{"threads", WorkerKind::thread, false, "thread(s) of one process open"},
          ScalingGroup{"threads_pinned", WorkerKind::thread, true, "thread(s) of one process, each pinned to its own CPU, open"}}) {
        for (const int workers : worker_counts(max_workers)) {
            figures.push_back(
                {{fmt::format("{}/{}", g.group, workers), g.group,
                  fmt::format("{} {} one {} pool and do {} B alloc+free pairs for a fixed time; aggregate rate "
                              "(malloc: private heaps, the no-sharing ideal)",
                              workers, g.what, size_label(kSharedPoolBytes), kHammerBlockBytes),
                  "pairs/s", Metric::ops_per_s, "malloc",
                  {{"workers", workers}, {"pinned", g.pinned ? 1 : 0}, {"size_bytes", double(kHammerBlockBytes)},
                   {"pool_bytes", double(kSharedPoolBytes)}}},
                 lineup(all, all.malloc.get()),
                 [kind = g.kind, pinned = g.pinned, workers, duration_ns = config.procs_rep_ns](Contender* c) {
                     return Lane{c, [c] { c->share(kSharedPoolBytes); },
                                 [c, kind, pinned, workers, duration_ns](std::uint64_t) {
                                     const HammerOutcome outcome =
                                         hammer(*c, kind, workers, pinned, kHammerBlockBytes, duration_ns);
                                     // Phase "cpu": CPU ns per pair, summed over the workers. Unlike
                                     // the rate, it does not drop when a busy machine deschedules
                                     // them; it rises when they contend for cache lines.
                                     return BatchTime{outcome.window_ns, outcome.pairs,
                                                      {{"cpu", outcome.cpu_ns, outcome.pairs}}};
                                 }};
                 }});
        }
    }
    // The mixed workload (mixed_workload.hpp), on the allocation pool of the pair figures.
    const int mixed_threads = std::max(2, std::min(4, max_workers));
    figures.push_back(
        {{fmt::format("mixed/{}", mixed_threads), "mixed",
          fmt::format("{} threads of one process: random sizes {} B to {} KiB, random lifetimes ({} live per thread), "
                      "{}% of blocks freed by another thread; allocations + frees per second",
                      mixed_threads, kMixedMinBytes, kMixedMaxBytes / 1024, kMixedLiveSlots, kMixedCrossPercent),
          "ops/s", Metric::ops_per_s, "malloc",
          {{"threads", mixed_threads}, {"min_bytes", double(kMixedMinBytes)}, {"max_bytes", double(kMixedMaxBytes)},
           {"live_per_thread", double(kMixedLiveSlots)}, {"cross_thread_percent", double(kMixedCrossPercent)}}},
         lineup(all, all.malloc.get()),
         [mixed_threads, duration_ns = config.procs_rep_ns](Contender* c) {
             return Lane{c, {}, [c, mixed_threads, duration_ns, seed = std::uint64_t{1}](std::uint64_t) mutable {
                             const auto [ops, window_ns] = c->mixed(mixed_threads, duration_ns, seed++);
                             return BatchTime{window_ns, ops, {}};
                         }};
         }});
    return figures;
}

}  // namespace

Contenders make_contenders() {
    Contenders all;
    all.dragonmem = make_dragonmem_contender(kHeapPoolBytes);
#if DRAGONMEM_BENCH_HAVE_BOOST
    all.boost = make_boost_contender(kHeapPoolBytes);
#endif
    all.malloc = make_malloc_contender();
    all.raw_shm = make_raw_shm_contender();
    return all;
}

std::vector<std::string> figure_names(const Contenders& contenders, const RunConfig& config) {
    std::vector<std::string> names;
    for (const auto& figure : define_figures(contenders, config)) {
        names.push_back(figure.spec.name);
    }
    return names;
}

std::vector<FigureResult> run_figures(const Contenders& contenders, const RunConfig& config, const std::string& filter) {
    const std::regex pattern(filter);
    std::vector<FigureResult> results;
    for (const auto& figure : define_figures(contenders, config)) {
        if (!filter.empty() && !std::regex_search(figure.spec.name, pattern)) {
            continue;
        }
        std::vector<Lane> lanes;
        for (Contender* contender : figure.contenders) {
            lanes.push_back(figure.make_lane(contender));
        }
        results.push_back(run_figure(figure.spec, std::move(lanes), config));
    }
    return results;
}

std::string size_label(std::size_t bytes) {
    if (bytes >= GiB && bytes % GiB == 0) {
        return fmt::format("{}GiB", bytes / GiB);
    }
    if (bytes >= MiB && bytes % MiB == 0) {
        return fmt::format("{}MiB", bytes / MiB);
    }
    if (bytes >= KiB && bytes % KiB == 0) {
        return fmt::format("{}KiB", bytes / KiB);
    }
    return fmt::format("{}B", bytes);
}

}  // namespace bench
