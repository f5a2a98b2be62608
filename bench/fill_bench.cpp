// dragonmem-fill-bench: how much of a pool's size it holds in requested bytes (issue 16),
// dragonmem against Boost.Interprocess (managed_shared_memory, rbtree best fit) on the
// same random sequences in the same run. One JSON document on stdout, a summary line per
// figure on stderr.
//
// Per size distribution (uniform 1 B - 4 KiB, 1 B - 64 KiB, 1 B - 1 MiB) and contender:
//   fill        a fresh pool, allocations of random sizes until the first failure:
//               requested bytes / pool bytes
//   after_churn then allocations are freed at random down to 80 % occupancy, N steps
//               (default 1,000,000) each free a random allocation and make one of a
//               random size, and the pool is filled again until the first failure
// "Pool bytes" is what each was asked for: dragonmem's heap (its metadata lives beside
// it) and Boost's whole segment (its metadata lives inside it).
//
//   dragonmem-fill-bench [--pool BYTES] [--churn N] [--seed S] [--quick]
#include <dragonmem/dragonmem.hpp>

#if DRAGONMEM_BENCH_HAVE_BOOST
#include <boost/interprocess/managed_shared_memory.hpp>
#endif

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

// The workload against one contender: allocate(bytes) returns a handle or -1 when the
// contender refuses, release(handle) frees it.
template <typename Allocator>
struct FillOutcome {
    double fill_pct = 0;
    double after_churn_pct = 0;
    std::uint64_t allocations = 0;  // live at the first failure of the first fill
    std::uint64_t churn_failures = 0;
};

template <typename Allocator>
FillOutcome<Allocator> run_fill(Allocator& a, std::uint64_t pool_bytes, std::uint64_t max_size, std::uint64_t churn,
                                std::uint64_t seed) {
    FillOutcome<Allocator> out;
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<std::uint64_t> size_of(1, max_size);
    struct Live {
        long handle;
        std::uint64_t bytes;
    };
    std::vector<Live> live;
    std::uint64_t held = 0;
    auto fill = [&] {
        for (;;) {
            const std::uint64_t bytes = size_of(rng);
            const long handle = a.allocate(bytes);
            if (handle < 0) return;
            live.push_back({handle, bytes});
            held += bytes;
        }
    };
    auto free_at = [&](std::size_t k) {
        a.release(live[k].handle);
        held -= live[k].bytes;
        live[k] = live.back();
        live.pop_back();
    };
    fill();
    out.fill_pct = 100.0 * static_cast<double>(held) / static_cast<double>(pool_bytes);
    out.allocations = live.size();
    while (!live.empty() && static_cast<double>(held) > 0.8 * static_cast<double>(pool_bytes))
        free_at(rng() % live.size());
    for (std::uint64_t step = 0; step < churn && !live.empty(); ++step) {
        free_at(rng() % live.size());
        const std::uint64_t bytes = size_of(rng);
        const long handle = a.allocate(bytes);
        if (handle < 0) {
            ++out.churn_failures;
            continue;
        }
        live.push_back({handle, bytes});
        held += bytes;
    }
    fill();
    out.after_churn_pct = 100.0 * static_cast<double>(held) / static_cast<double>(pool_bytes);
    for (std::size_t k = live.size(); k-- > 0;) free_at(k);
    return out;
}

class DragonmemFill {
public:
    DragonmemFill(const std::string& name, std::uint64_t bytes) : pool_(dragonmem::Pool::create(name, bytes)) {}
    ~DragonmemFill() {
        memories_.clear();
        try {
            pool_.destroy();
        } catch (const dragonmem::Error&) {
        }
    }
    long allocate(std::uint64_t bytes) {
        try {
            dragonmem::Memory m = pool_.alloc(bytes);
            if (free_.empty()) {
                memories_.push_back(std::move(m));
                return static_cast<long>(memories_.size() - 1);
            }
            const long at = free_.back();
            free_.pop_back();
            memories_[static_cast<std::size_t>(at)] = std::move(m);
            return at;
        } catch (const dragonmem::Error& e) {
            if (e.code() != DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE)
                std::fprintf(stderr, "dragonmem: %s\n", e.what());
            return -1;
        }
    }
    void release(long handle) {
        memories_[static_cast<std::size_t>(handle)].free();
        free_.push_back(handle);
    }

private:
    dragonmem::Pool pool_;
    std::vector<dragonmem::Memory> memories_;
    std::vector<long> free_;
};

#if DRAGONMEM_BENCH_HAVE_BOOST
namespace bip = boost::interprocess;

class BoostFill {
public:
    BoostFill(const std::string& name, std::uint64_t bytes)
        : name_(name), memory_(bip::create_only, name.c_str(), bytes) {}
    ~BoostFill() { bip::shared_memory_object::remove(name_.c_str()); }
    long allocate(std::uint64_t bytes) {
        void* p = memory_.allocate(bytes, std::nothrow);
        if (p == nullptr) return -1;
        if (free_.empty()) {
            blocks_.push_back(p);
            return static_cast<long>(blocks_.size() - 1);
        }
        const long at = free_.back();
        free_.pop_back();
        blocks_[static_cast<std::size_t>(at)] = p;
        return at;
    }
    void release(long handle) {
        memory_.deallocate(blocks_[static_cast<std::size_t>(handle)]);
        free_.push_back(handle);
    }

private:
    std::string name_;
    bip::managed_shared_memory memory_;
    std::vector<void*> blocks_;
    std::vector<long> free_;
};
#endif

std::uint64_t arg_u64(int argc, char** argv, const char* flag, std::uint64_t fallback) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], flag) == 0) return std::strtoull(argv[i + 1], nullptr, 0);
    return fallback;
}

template <typename Outcome>
std::string outcome_json(const Outcome& o) {
    char text[256];
    std::snprintf(text, sizeof text,
                  "{\"fill_pct\": %.3f, \"after_churn_pct\": %.3f, \"allocations\": %llu, \"churn_failures\": %llu}",
                  o.fill_pct, o.after_churn_pct, static_cast<unsigned long long>(o.allocations),
                  static_cast<unsigned long long>(o.churn_failures));
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    for (int i = 1; i < argc; ++i) quick = quick || std::strcmp(argv[i], "--quick") == 0;
    const std::uint64_t pool_bytes = arg_u64(argc, argv, "--pool", quick ? 16u << 20 : 64u << 20);
    const std::uint64_t churn = arg_u64(argc, argv, "--churn", quick ? 10000 : 1000000);
    const std::uint64_t seed = arg_u64(argc, argv, "--seed", 16);
    const std::string prefix = "dmfill" + std::to_string(::getpid());
    struct Dist {
        const char* name;
        std::uint64_t max;
    };
    const Dist dists[] = {{"fill/1B-4KiB", 4096}, {"fill/1B-64KiB", 65536}, {"fill/1B-1MiB", 1 << 20}};
    std::string json = "{\"pool_bytes\": " + std::to_string(pool_bytes) +
                       ", \"churn_steps\": " + std::to_string(churn) + ", \"seed\": " + std::to_string(seed) +
                       ", \"figures\": [";
    bool first = true;
    int status = 0;
    for (const Dist& d : dists) {
        std::string entry = std::string("{\"name\": \"") + d.name + "\"";
        try {
            DragonmemFill pool(prefix + "d", pool_bytes);
            auto o = run_fill(pool, pool_bytes, d.max, churn, seed);
            entry += ", \"dragonmem\": " + outcome_json(o);
            std::fprintf(stderr, "%-16s dragonmem %6.2f %% fresh, %6.2f %% after churn", d.name, o.fill_pct,
                         o.after_churn_pct);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s dragonmem failed: %s\n", d.name, e.what());
            status = 1;
        }
#if DRAGONMEM_BENCH_HAVE_BOOST
        try {
            BoostFill segment(prefix + "b", pool_bytes);
            auto o = run_fill(segment, pool_bytes, d.max, churn, seed);
            entry += ", \"boost\": " + outcome_json(o);
            std::fprintf(stderr, "   boost %6.2f %% fresh, %6.2f %% after churn", o.fill_pct, o.after_churn_pct);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s boost failed: %s\n", d.name, e.what());
            status = 1;
        }
#endif
        std::fprintf(stderr, "\n");
        json += (first ? "" : ", ") + entry + "}";
        first = false;
    }
    json += "]}\n";
    std::fputs(json.c_str(), stdout);
    return status;
}
