// dragonmem-remote-bench: remote read and write bandwidth and small-read latency through
// the C++ API (<dragonmem/remote.hpp>), from the node that holds only a descriptor.
// bench/remote_bench.sh runs it across a veth pair next to ucx_perftest on the same link.
//   dragonmem-remote-bench BASE64_DESCRIPTOR [SECONDS_PER_SIZE]
// One JSON object per line: {"op", "bytes", "iterations", "seconds", "mib_per_s"} per
// size (64 KiB ... the allocation's size, x4), then {"op": "read_latency", "bytes": 8,
// "median_us", "p90_us"}. Bandwidth in MiB/s (2^20 bytes), the unit of ucx_perftest's
// "MB/s" column.
#include <dragonmem/dragonmem.hpp>
#include <dragonmem/remote.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

void bandwidth(const dragonmem::Memory& memory, bool write, std::size_t bytes, double budget_s) {
    std::vector<std::byte> buffer(bytes, std::byte{0x5a});
    const timespec timeout{30, 0};
    auto once = [&] {
        if (write) dragonmem::write_bytes(memory, 0, buffer, &timeout);
        else dragonmem::read_bytes(memory, 0, buffer, &timeout);
    };
    once();  // warm-up: connection, the agent attaching the pool
    std::size_t iterations = 0;
    const Clock::time_point start = Clock::now();
    while (iterations < 4 || seconds_since(start) < budget_s) {
        once();
        ++iterations;
    }
    const double seconds = seconds_since(start);
    const double mib_per_s = static_cast<double>(bytes) * static_cast<double>(iterations) / seconds / 1048576.0;
    std::printf("%s\n", fmt::format(R"({{"op": "{}", "bytes": {}, "iterations": {}, "seconds": {:.3f}, "mib_per_s": {:.1f}}})",
                                    write ? "write" : "read", bytes, iterations, seconds, mib_per_s)
                            .c_str());
    std::fflush(stdout);
}

void latency(const dragonmem::Memory& memory, int count) {
    std::vector<std::byte> buffer(8);
    const timespec timeout{30, 0};
    std::vector<double> us;
    dragonmem::read_bytes(memory, 0, buffer, &timeout);
    for (int i = 0; i < count; ++i) {
        const Clock::time_point start = Clock::now();
        dragonmem::read_bytes(memory, 0, buffer, &timeout);
        us.push_back(seconds_since(start) * 1e6);
    }
    std::sort(us.begin(), us.end());
    std::printf("%s\n", fmt::format(R"({{"op": "read_latency", "bytes": 8, "count": {}, "median_us": {:.1f}, "p90_us": {:.1f}}})",
                                    count, us[us.size() / 2], us[us.size() * 9 / 10])
                            .c_str());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s BASE64_DESCRIPTOR [SECONDS_PER_SIZE]\n", argv[0]);
        return 2;
    }
    const double budget_s = argc > 2 ? std::atof(argv[2]) : 1.0;
    try {
        const dragonmem::Memory memory = dragonmem::Memory::attach_base64(argv[1]);
        for (bool write : {false, true})
            for (std::size_t bytes = 64 * 1024; bytes <= memory.size(); bytes *= 4) bandwidth(memory, write, bytes, budget_s);
        latency(memory, 2000);
    } catch (const dragonmem::Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
