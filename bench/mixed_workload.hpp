// The mixed workload: threads allocating random sizes with random lifetimes, a quarter of
// the blocks freed by another thread than the one that allocated them. It keeps the fast
// paths honest: no single size, no LIFO order, frees that cross threads.
//
// Each thread keeps kMixedLiveSlots slots. One step picks a slot at random; if it holds a
// block, that block is freed (by this thread, or with probability 1/4 handed to the next
// thread, which frees it), then a new block of a random size goes into the slot. Sizes are
// log-uniform from 32 B to 64 KiB (a random power of two, then uniform up to the next),
// lifetimes geometric (a block survives each step with probability 1 - 1/slots). A
// hand-off goes through a single-producer single-consumer ring per thread pair; when the
// ring is full the block is freed locally. Every allocation and every free counts as one
// operation. The template is instantiated by each contender with its own session type,
// so the per-operation path has no virtual call.
#pragma once

#include "contender.hpp"

#include <array>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace bench {

constexpr std::size_t kMixedMinBytes = 32;
constexpr std::size_t kMixedMaxBytes = 64 * 1024;
constexpr std::size_t kMixedLiveSlots = 256;
constexpr std::uint32_t kMixedCrossPercent = 25;

struct MixedOutcome {
    std::uint64_t ops = 0;        // allocations + frees, all threads
    std::uint64_t window_ns = 0;  // from the common start to the last thread's stop
};

namespace mixed_detail {

constexpr std::size_t kRingSlots = 1024;

// xorshift64*: cheap, and good enough to pick slots and sizes.
struct Rng {
    std::uint64_t state;
    std::uint64_t next() noexcept {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DULL;
    }
};

inline std::size_t random_size(Rng& rng) noexcept {
    const std::uint64_t r = rng.next();
    const unsigned shift = 5 + static_cast<unsigned>((r >> 32) % 11);  // 2^5 .. 2^15
    const std::size_t low = std::size_t{1} << shift;
    return low + static_cast<std::size_t>(r % (low + 1));  // [2^k, 2^(k+1)]: 32 B .. 64 KiB
}

// Single producer (thread i), single consumer (thread i+1). Head and tail on lines of
// their own.
template <typename Handle>
struct Ring {
    alignas(64) std::atomic<std::uint64_t> head{0};  // written by the consumer
    alignas(64) std::atomic<std::uint64_t> tail{0};  // written by the producer
    alignas(64) std::array<Handle, kRingSlots> slots{};

    bool push(const Handle& handle) noexcept {
        const std::uint64_t t = tail.load(std::memory_order_relaxed);
        if (t - head.load(std::memory_order_acquire) == kRingSlots) return false;
        slots[t % kRingSlots] = handle;
        tail.store(t + 1, std::memory_order_release);
        return true;
    }
    template <typename Fn>
    std::uint64_t drain(Fn&& fn) {
        const std::uint64_t h = head.load(std::memory_order_relaxed);
        const std::uint64_t t = tail.load(std::memory_order_acquire);
        for (std::uint64_t i = h; i < t; ++i) fn(slots[i % kRingSlots]);
        head.store(t, std::memory_order_release);
        return t - h;
    }
};

}  // namespace mixed_detail

// `open(index)` returns thread `index`'s session: `Handle alloc(std::size_t)` (throws
// BenchError on failure) and `void free(const Handle&)`. Runs `threads` threads for
// `duration_ns`, unpinned.
template <typename Handle, typename OpenSession>
MixedOutcome run_mixed(int threads, std::uint64_t duration_ns, std::uint64_t seed, OpenSession open) {
    using Ring = mixed_detail::Ring<Handle>;
    const auto count = static_cast<std::size_t>(threads);
    std::vector<std::unique_ptr<Ring>> inbox(count);  // inbox[i]: what thread i frees for thread i-1
    for (auto& ring : inbox) ring = std::make_unique<Ring>();
    struct alignas(64) Report {
        std::uint64_t ops = 0;
        std::uint64_t end_ns = 0;
        std::string error;
    };
    std::vector<Report> reports(count);
    alignas(64) std::atomic<int> stop{0};
    std::latch ready(threads);
    std::latch go(1);
    std::barrier producers_done(threads);
    std::vector<std::thread> workers;
    for (std::size_t index = 0; index < count; ++index) {
        workers.emplace_back([&, index] {
            Report& report = reports[index];
            Ring& mine = *inbox[index];
            Ring& next = *inbox[(index + 1) % count];
            bool counted_ready = false;
            bool waited = false;
            try {
                auto session = open(static_cast<int>(index));
                std::vector<Handle> live(kMixedLiveSlots);
                std::vector<bool> used(kMixedLiveSlots, false);
                mixed_detail::Rng rng{seed * 0x9E3779B97F4A7C15ULL + index + 1};
                ready.count_down();
                counted_ready = true;
                go.wait();
                std::uint64_t ops = 0;
                auto free_one = [&](const Handle& handle) { session.free(handle); };
                while (stop.load(std::memory_order_relaxed) == 0) {
                    for (int step = 0; step < 64; ++step) {
                        const std::uint64_t r = rng.next();
                        const std::size_t slot = static_cast<std::size_t>(r % kMixedLiveSlots);
                        if (used[slot]) {
                            const bool cross = count > 1 && (r >> 40) % 100 < kMixedCrossPercent;
                            if (!cross || !next.push(live[slot])) session.free(live[slot]);
                            ++ops;  // a handed-off block is counted once, here
                        }
                        live[slot] = session.alloc(mixed_detail::random_size(rng));
                        used[slot] = true;
                        ++ops;
                    }
                    mine.drain(free_one);
                }
                report.ops = ops;
                report.end_ns = now_ns();
                for (std::size_t slot = 0; slot < kMixedLiveSlots; ++slot)
                    if (used[slot]) session.free(live[slot]);
                waited = true;
                producers_done.arrive_and_wait();  // nobody pushes any more
                mine.drain(free_one);
            } catch (const std::exception& error) {
                report.error = error.what();
                stop.store(1);
                if (!counted_ready) ready.count_down();
                if (!waited) producers_done.arrive_and_drop();
            }
        });
    }
    ready.wait();
    const std::uint64_t start_ns = now_ns();
    go.count_down();
    while (stop.load() == 0 && now_ns() < start_ns + duration_ns) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stop.store(1);
    for (std::thread& worker : workers) worker.join();
    MixedOutcome outcome;
    std::uint64_t last_end_ns = start_ns;
    std::string errors;
    for (const Report& report : reports) {
        if (!report.error.empty()) errors += report.error + "; ";
        outcome.ops += report.ops;
        last_end_ns = std::max(last_end_ns, report.end_ns);
    }
    if (!errors.empty()) throw BenchError("mixed workload: " + errors);
    outcome.window_ns = last_end_ns - start_ns;
    return outcome;
}

}  // namespace bench
