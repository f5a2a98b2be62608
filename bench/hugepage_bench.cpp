// dragonmem-hugepage-bench: a hugepage pool against shm pools of the same size, one JSON
// document on stdout. Per pool kind: create time, alloc+free pairs (64 B, 4 KiB, 1 MiB;
// best of --reps batches) and sequential write bandwidth over one allocation of half
// the pool, first pass (shm pages get memory as they are touched; a hugepage pool's
// pages were given memory at creation) and second pass. Run by
// tests/hugepage/hugepage_test.sh --bench (it mounts hugetlbfs and reserves the pages).
//
//   dragonmem-hugepage-bench [--size BYTES] [--reps N] [--kinds shm,shm-reserved,hugepage]
#include <dragonmem/dragonmem.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

std::uint64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Keeps the compiler from dropping work whose result is unused.
void escape(const void* p) noexcept { asm volatile("" : : "g"(p) : "memory"); }

struct Result {
    std::string kind;
    double create_ms = 0;
    double pair_ns[3] = {};
    double first_write_gib_s = 0;
    double second_write_gib_s = 0;
};

double pairs_ns(const dragonmem::Pool& pool, std::size_t bytes, int reps) {
    constexpr int batch = 20000;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        const std::uint64_t t0 = now_ns();
        for (int i = 0; i < batch; ++i) {
            dragonmem::Memory m = pool.alloc(bytes);
            escape(&m);
            m.free();
        }
        best = std::min(best, static_cast<double>(now_ns() - t0) / batch);
    }
    return best;
}

double write_gib_s(void* p, std::size_t bytes) {
    const std::uint64_t t0 = now_ns();
    std::memset(p, 0x5a, bytes);
    escape(p);
    const double s = static_cast<double>(now_ns() - t0) / 1e9;
    return static_cast<double>(bytes) / (1u << 30) / s;
}

Result run(const std::string& kind, std::size_t size, int reps) {
    Result r;
    r.kind = kind;
    dragonmem::PoolOptions options;
    options.mem_type = kind == "hugepage" ? DRAGON_MEMORY_TYPE_HUGEPAGE : DRAGON_MEMORY_TYPE_SHM;
    options.reserve = kind == "shm-reserved";
    const std::string name = "hpbench." + std::to_string(::getpid()) + "." + kind;
    const std::uint64_t t0 = now_ns();
    dragonmem::Pool pool = dragonmem::Pool::create(name, size, 0, options);
    r.create_ms = static_cast<double>(now_ns() - t0) / 1e6;
    try {
        const std::size_t sizes[3] = {64, 4096, 1 << 20};
        for (int i = 0; i < 3; ++i) r.pair_ns[i] = pairs_ns(pool, sizes[i], reps);
        dragonmem::Memory big = pool.alloc(size / 2);
        r.first_write_gib_s = write_gib_s(big.pointer(), big.size());
        r.second_write_gib_s = write_gib_s(big.pointer(), big.size());
        big.free();
    } catch (...) {
        pool.destroy();
        throw;
    }
    pool.destroy();
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t size = std::size_t{1} << 30;
    int reps = 5;
    std::string kinds = "shm,shm-reserved,hugepage";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string opt = argv[i];
        if (opt == "--size") size = std::strtoull(argv[i + 1], nullptr, 10);
        else if (opt == "--reps") reps = std::atoi(argv[i + 1]);
        else if (opt == "--kinds") kinds = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: %s [--size BYTES] [--reps N] [--kinds shm,shm-reserved,hugepage]\n", argv[0]);
            return 2;
        }
    }
    std::vector<Result> results;
    try {
        std::size_t start = 0;
        while (start <= kinds.size()) {
            const std::size_t comma = kinds.find(',', start);
            const std::string kind = kinds.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!kind.empty()) results.push_back(run(kind, size, reps));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    } catch (const dragonmem::Error& e) {
        std::fprintf(stderr, "dragonmem-hugepage-bench: %s\n", e.what());
        return 1;
    }
    std::printf("{\"pool_bytes\": %zu, \"write_bytes\": %zu, \"reps\": %d, \"results\": [", size, size / 2, reps);
    for (std::size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        std::printf("%s\n  {\"kind\": \"%s\", \"create_ms\": %.1f, \"pair_ns\": {\"64B\": %.1f, \"4KiB\": %.1f, "
                    "\"1MiB\": %.1f}, \"write_gib_s\": {\"first\": %.2f, \"second\": %.2f}}",
                    i ? "," : "", r.kind.c_str(), r.create_ms, r.pair_ns[0], r.pair_ns[1], r.pair_ns[2],
                    r.first_write_gib_s, r.second_write_gib_s);
    }
    std::printf("\n]}\n");
    return 0;
}
