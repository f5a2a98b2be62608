// Per-thread block caches, ids from per-thread id blocks (thread_cache suite; what must
// hold: helpers.hpp; the id blocks: lib/pool/pool_layout.hpp, IdBlock): ids are unique
// across threads and increasing within each thread, every issued id attaches, and the
// unissued rest of an exited thread's block is never issued again. (The same for a
// SIGKILLed process: test_crash_and_fork.cpp.)
#include "thread_cache/helpers.hpp"

#include <unistd.h>

#include <barrier>
#include <random>

using namespace tcache;

TEST_SUITE_BEGIN("thread_cache");

TEST_CASE("ids: unique across threads, increasing within each thread, every issued id attaches; blocks of exited "
          "threads are never reissued") {
    ScopedPool scoped(1 << 20, small_options(), "ids");
    Pool& pool = scoped.pool();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    const unsigned slot_bits = view.header()->id_slot_bits;
    constexpr int k_threads = 4;
    constexpr int k_rounds = 3;  // each round's threads exit; the next round's reuse their entries
    std::mutex mutex;
    std::set<std::uint64_t> all_ids;
    std::vector<CounterRange> exited_blocks;
    ErrorLog errors;
    for (int round = 0; round < k_rounds; ++round) {
        CAPTURE(round);
        std::vector<std::thread> threads;
        std::barrier start(k_threads);
        for (int t = 0; t < k_threads; ++t)
            threads.emplace_back([&, t] {
                std::vector<std::uint64_t> mine;
                std::vector<Memory> keep;
                std::mt19937 rng(static_cast<unsigned>(round * 100 + t));
                start.arrive_and_wait();
                for (int i = 0; i < 1500; ++i) {
                    Memory m = pool.alloc(32 + rng() % 200);  // two sizes of block: cached and locked paths
                    mine.push_back(m.id());
                    if (i % 100 == 0) {
                        // Every issued id attaches by descriptor (none is mistaken for a reserved one).
                        try {
                            Memory again = Memory::attach(m.serialize());
                            if (again.pointer() != m.pointer()) errors("attach of id " + std::to_string(m.id()) + " gave another block");
                        } catch (const dragonmem::Error& e) {
                            errors("attach of issued id " + std::to_string(m.id()) + ": " + e.what());
                        }
                    }
                    if (rng() % 4 == 0 && keep.size() < 40) keep.push_back(std::move(m));
                    else m.free();
                }
                for (Memory& m : keep) m.free();
                for (std::size_t i = 1; i < mine.size(); ++i)
                    if (mine[i] <= mine[i - 1]) {
                        errors("thread " + std::to_string(t) + ": id " + std::to_string(mine[i]) + " after " +
                               std::to_string(mine[i - 1]));
                        break;
                    }
                std::lock_guard lock(mutex);
                for (std::uint64_t id : mine)
                    if (!all_ids.insert(id).second) errors("id " + std::to_string(id) + " issued twice");
                for (std::uint64_t id : mine)
                    for (const CounterRange& r : exited_blocks)
                        if ((id >> slot_bits) >= r.first && (id >> slot_bits) < r.end)
                            errors("id " + std::to_string(id) + " reissues an exited thread's unissued block");
            });
        for (std::thread& th : threads) th.join();
        // What the exited threads left unissued in their blocks (their entries stay owned
        // by dead threads until a sweep; the next round's threads may take them over).
        for (const CounterRange& r : unissued_id_blocks_of(view, ::getpid())) exited_blocks.push_back(r);
    }
    for (const std::string& e : errors.errors) FAIL_CHECK(e);
    CHECK(all_ids.size() == std::size_t{k_rounds} * k_threads * 1500);
    CHECK_MESSAGE(!exited_blocks.empty(), "no exited thread held an unissued block: the reuse check exercised nothing");
    CHECK(view.header()->id_counter.load() >= (*all_ids.rbegin() >> slot_bits));
    checked(pool, "after the id rounds");
}

TEST_SUITE_END();
