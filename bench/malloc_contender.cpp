// The floor of the allocation figures: glibc malloc/free in private memory, no lock
// shared with anyone, no descriptor. A shared-memory allocator cannot beat it; the
// ratio says how much sharing costs.
#include "contenders.hpp"
#include "mixed_workload.hpp"

#include <gnu/libc-version.h>

#include <fmt/format.h>

#include <cstdlib>
#include <vector>

namespace bench {
namespace {

[[noreturn]] void fail_malloc(std::size_t size_bytes) {
    throw BenchError(fmt::format("malloc({} B) returned null", size_bytes));
}

class MallocChildSession final : public ChildSession {
public:
    std::uint64_t hammer(std::size_t size_bytes, const std::atomic<int>& stop) override {
        std::uint64_t pairs_done = 0;
        while (stop.load(std::memory_order_relaxed) == 0) {
            for (int i = 0; i < 64; ++i) {
                void* block = std::malloc(size_bytes);
                if (block == nullptr) [[unlikely]] {
                    fail_malloc(size_bytes);
                }
                escape(block);
                std::free(block);
            }
            pairs_done += 64;
        }
        return pairs_done;
    }
};

class MallocContender final : public Contender {
public:
    std::string name() const override { return "malloc"; }
    std::string description() const override {
        return fmt::format("glibc {} malloc/free (private memory; the floor)", gnu_get_libc_version());
    }

    std::uint64_t pairs(std::size_t size_bytes, std::uint64_t count) override {
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            void* block = std::malloc(size_bytes);
            if (block == nullptr) [[unlikely]] {
                fail_malloc(size_bytes);
            }
            escape(block);
            std::free(block);
        }
        return now_ns() - start_ns;
    }

    LivePhases live(std::size_t size_bytes, std::size_t live_count, std::uint64_t cycles) override {
        live_.resize(live_count);
        LivePhases phases;
        for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
            const std::uint64_t start_ns = now_ns();
            for (std::size_t i = 0; i < live_count; ++i) {
                live_[i] = std::malloc(size_bytes);
                if (live_[i] == nullptr) [[unlikely]] {
                    fail_malloc(size_bytes);
                }
            }
            escape(live_.data());
            const std::uint64_t middle_ns = now_ns();
            for (std::size_t i = 0; i < live_count; ++i) {
                std::free(live_[i]);
            }
            const std::uint64_t end_ns = now_ns();
            phases.alloc_ns += middle_ns - start_ns;
            phases.free_ns += end_ns - middle_ns;
        }
        return phases;
    }

    std::pair<std::uint64_t, std::uint64_t> mixed(int threads, std::uint64_t duration_ns,
                                                  std::uint64_t seed) override {
        struct Session {
            void* alloc(std::size_t size_bytes) {
                void* block = std::malloc(size_bytes);
                if (block == nullptr) [[unlikely]] {
                    fail_malloc(size_bytes);
                }
                escape(block);
                return block;
            }
            void free(void* const& block) { std::free(block); }
        };
        const MixedOutcome outcome = run_mixed<void*>(threads, duration_ns, seed, [](int) { return Session{}; });
        return {outcome.ops, outcome.window_ns};
    }

    // Each child has its own heap: the ideal that shared pools are measured against.
    void share(std::size_t) override {}
    std::unique_ptr<ChildSession> open_in_child() override { return std::make_unique<MallocChildSession>(); }

private:
    std::vector<void*> live_;
};

}  // namespace

std::unique_ptr<Contender> make_malloc_contender() { return std::make_unique<MallocContender>(); }

}  // namespace bench
