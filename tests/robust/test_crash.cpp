// Kill -9 at any instant: children hammer a pool and are
// SIGKILLed at random instants; after every kill the parent must allocate and free
// (a watchdog turns a hang into a failure) and check() must pass; at the end, with every
// leftover freed by the parent, the pool is whole. Plus deterministic crash points: a
// child takes the pool lock with the library's own lock code and dies right after a
// chosen step, and the survivor's repair is checked step by step.
#include "shm_view.hpp"
#include "testing.hpp"
#include "workload.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

TEST_SUITE_BEGIN("crash");

namespace {

// A small shared file the hammer children count their operations in.
class CounterFile {
public:
    CounterFile() {
        path_ = "/tmp/dmr_counters_" + std::to_string(::getpid()) + "_" + std::to_string(++serial_);
        int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            (void)::ftruncate(fd, 4096);
            void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            ::close(fd);
            words_ = m == MAP_FAILED ? nullptr : static_cast<std::atomic<std::uint64_t>*>(m);
        }
    }
    ~CounterFile() {
        if (words_ != nullptr) ::munmap(words_, 4096);
        ::unlink(path_.c_str());
    }
    const std::string& path() const { return path_; }
    std::uint64_t total() const {
        std::uint64_t sum = 0;
        if (words_ != nullptr)
            for (int i = 0; i < 512; ++i) sum += words_[i].load();
        return sum;
    }

private:
    static inline int serial_ = 0;
    std::string path_;
    std::atomic<std::uint64_t>* words_ = nullptr;
};

char task_state(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::size_t close = text.rfind(')');
    return close == std::string::npos || close + 2 >= text.size() ? '?' : text[close + 2];
}

Child spawn_hammer(const std::string& pool_b64, std::uint64_t seed, std::uint64_t type_base, std::size_t max_live,
                   const CounterFile& counters, int slot) {
    return Child::spawn({child_program(), "hammer", std::to_string(seed), std::to_string(type_base),
                         std::to_string(max_live), counters.path(), std::to_string(slot)},
                        {{"DMR_POOL", pool_b64}});
}

// Alloc + free one small block under a watchdog; returns the milliseconds it took.
double timed_alloc_free(const Pool& pool, const std::string& what) {
    watchdog().arm(15000, what);
    double t0 = now_ms();
    timespec wait = ms_timespec(5000);
    Memory m = pool.alloc_blocking(64, 0, &wait);
    std::memset(m.pointer(), 0xA5, 64);
    m.free();
    double took = now_ms() - t0;
    watchdog().disarm();
    return took;
}

void require_check_ok(const Pool& pool, const std::string& when) {
    watchdog().arm(15000, "check() " + when);
    auto report = pool.check();
    watchdog().disarm();
    std::string problems;
    for (const auto& p : report.problems) problems += p + "; ";
    REQUIRE_MESSAGE(report.ok, "check() failed " << when << ": " << problems);
}

std::size_t free_types(const Pool& pool, std::uint64_t type_base) {
    std::size_t freed = 0;
    for (std::uint64_t t = type_base; t < type_base + 4; ++t)
        for (const auto& info : pool.allocations(t)) {
            Memory m = pool.from_id(info.id);
            m.free();
            ++freed;
        }
    return freed;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

// The hammering test below sizes its manifest (1024 slots) for 3 children that each hold
// a bounded number of allocations. The hammer's workload also hands allocations off
// through a queue it both fills and drains; unbounded, that queue grew by ~1% of the
// steps, a long-lived child held hundreds of allocations, and the parent's allocation
// timed out on a full manifest ("1024 live allocations of 1024 allowed"). Run the
// hammer's exact workload (one thread, its config) in-process and count what it holds.
TEST_CASE("crash: a hammer child's workload holds at most max_live + hand-off capacity allocations") {
    const std::size_t max_live = 24;
    dragonmem::PoolOptions options;
    options.max_allocations = 4096;
    ScopedPool scoped(4 << 20, options, "hb");
    Pool& pool = scoped.pool();
    std::vector<std::uint8_t> ser = pool.serialize();
    dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
    dragonMemoryPoolDescr_t c_pool;
    REQUIRE(dragon_memory_pool_attach(&c_pool, &s) == DRAGON_SUCCESS);
    WorkloadConfig config;  // as cmd_hammer (tests/child/workload_cmds.cpp) sets it
    config.type_base = 1000;
    config.max_live = max_live;
    config.max_bytes = 4096;
    config.check_every = 64;
    WorkloadCounters counters;
    HandoffQueue handoffs;
    std::size_t most_held = 0;
    {
        Worker worker(&c_pool, config, 7, counters, &handoffs);
        for (int chunk = 0; chunk < 40; ++chunk) {
            REQUIRE_MESSAGE(worker.run(500), worker.failure());
            most_held = std::max(most_held, pool.allocations().size());
        }
        CHECK_MESSAGE(most_held <= max_live + handoffs.capacity,
                      "a hammer held " << most_held << " allocations (max_live " << max_live << ", hand-off capacity "
                                       << handoffs.capacity << ") after " << counters.ops.load() << " steps");
        CHECK(counters.handoffs.load() > 0);  // the queue is still exercised
        CHECK(worker.drain());
    }
    CHECK(pool.allocations().empty());
    (void)dragon_memory_pool_detach(&c_pool);
}

TEST_CASE("crash: hammering children SIGKILLed at random instants never wedge or corrupt the pool") {
    const int rounds = long_mode() ? 1000 : 100;
    const int n_children = 3;
    const std::size_t max_live = 24;
    dragonmem::PoolOptions options;
    // Each child holds at most max_live + 24 (its hand-off queue) allocations (test
    // above); the rest of the slots are for thread caches, taken back on demand.
    options.max_allocations = 1024;
    ScopedPool scoped(1 << 20, options, "crash");
    Pool& pool = scoped.pool();
    const std::string pool_b64 = pool.serialize_base64();
    const std::uint64_t heap_bytes = pool.heap_bytes();
    ShmView view(scoped.name(), false);
    REQUIRE(view.ok());
    CounterFile counters;
    std::mt19937_64 rng(0xC0FFEE ^ static_cast<std::uint64_t>(::getpid()));

    std::vector<Child> children(n_children);
    std::uint64_t seed = 1;
    auto type_base_of = [](int slot) { return static_cast<std::uint64_t>(1000 * (slot + 1)); };
    for (int slot = 0; slot < n_children; ++slot) {
        children[slot] = spawn_hammer(pool_b64, seed++, type_base_of(slot), max_live, counters, slot);
        auto ready = children[slot].wait_line("ready", 10000);
        REQUIRE_MESSAGE(ready.has_value(), "hammer child did not start: " << children[slot].output());
    }

    int kills = 0, kills_holding_lock = 0, zombie_kills = 0;
    std::size_t leftovers_freed = 0;
    std::vector<double> latencies;
    const std::uint64_t recoveries_before = pool.attributes().recoveries;
    const int zombie_round = rounds / 2;

    for (int round = 0; round < rounds; ++round) {
        std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 20000));
        // The others must still be running: a child that exits by itself failed.
        for (int slot = 0; slot < n_children; ++slot)
            REQUIRE_MESSAGE(!children[slot].try_reap(), "hammer child " << slot << " stopped by itself ("
                                                                        << children[slot].result().describe()
                                                                        << "): " << children[slot].output());
        int victim = static_cast<int>(rng() % n_children);
        pid_t pid = children[victim].pid();
        children[victim].kill_now(SIGKILL);
        ++kills;
        const bool zombie = round == zombie_round;
        if (zombie) {
            // Do not reap: the dead owner stays a zombie while the parent recovers.
            double until = now_ms() + 5000;
            while (task_state(pid) != 'Z' && now_ms() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            REQUIRE_MESSAGE(task_state(pid) == 'Z', "killed child " << pid << " did not become a zombie");
            ++zombie_kills;
        } else {
            children[victim].wait(5000);
        }
        if (view.lock_owner_tid() == static_cast<std::uint32_t>(pid)) ++kills_holding_lock;

        latencies.push_back(timed_alloc_free(pool, "round " + std::to_string(round) + ": alloc+free after SIGKILL of " +
                                                       std::to_string(pid) + (zombie ? " (zombie, not reaped)" : "")));
        require_check_ok(pool, "after kill round " + std::to_string(round));
        if (zombie) {
            CHECK(task_state(pid) == 'Z');  // recovery happened while the owner was a zombie
            children[victim].wait(5000);
        }
        // Anyone may free a dead process's allocations.
        watchdog().arm(15000, "freeing the leftovers of a killed child");
        leftovers_freed += free_types(pool, type_base_of(victim));
        watchdog().disarm();
        children[victim] = spawn_hammer(pool_b64, seed++, type_base_of(victim), max_live, counters, victim);
        REQUIRE_MESSAGE(children[victim].wait_line("ready", 10000).has_value(),
                        "respawned hammer did not start: " << children[victim].output());
    }
    // The last kills: all of them, then one look at the lock. Killed and reaped one by
    // one, a child could be seen holding the lock while it repaired the one killed just
    // before (its takeover), be killed mid-repair, and the one after repair both: two
    // kills counted, one recovery. Now at most one dead owner is left, and the parent's
    // next allocation repairs it.
    std::vector<std::uint32_t> last_pids;
    for (int slot = 0; slot < n_children; ++slot) {
        REQUIRE_MESSAGE(!children[slot].try_reap(), "hammer child " << slot << " stopped by itself: "
                                                                    << children[slot].output());
        last_pids.push_back(static_cast<std::uint32_t>(children[slot].pid()));
        children[slot].kill_now(SIGKILL);
        ++kills;
    }
    for (int slot = 0; slot < n_children; ++slot) children[slot].wait(5000);
    if (std::find(last_pids.begin(), last_pids.end(), view.lock_owner_tid()) != last_pids.end()) ++kills_holding_lock;

    // Everything the dead children left is listed, and anyone may free it.
    latencies.push_back(timed_alloc_free(pool, "alloc+free after the last kills"));
    require_check_ok(pool, "after the last kills");
    watchdog().arm(30000, "freeing every leftover");
    leftovers_freed += free_all(pool);
    watchdog().disarm();
    auto attrs = pool.attributes();
    CHECK(attrs.live_allocations == 0);
    CHECK_MESSAGE(attrs.free_bytes == heap_bytes, "free " << attrs.free_bytes << " B of " << heap_bytes << " B");
    require_check_ok(pool, "after freeing every leftover");
    {
        Memory whole = pool.alloc(heap_bytes);  // the pool is one block again
        CHECK(whole.size() == heap_bytes);
        whole.free();
    }
    require_check_ok(pool, "at the end");
    const std::uint64_t recoveries = pool.attributes().recoveries - recoveries_before;
    // Every kill observed with the lock held must have been repaired by someone.
    CHECK(recoveries >= static_cast<std::uint64_t>(kills_holding_lock));
    std::printf("crash: %d rounds, %d kills survived (%d observed holding the pool lock, %d zombie owner), %llu "
                "recoveries, %zu leftovers freed by the parent, %llu child ops; parent alloc+free after a kill: "
                "median %.2f ms, max %.2f ms\n",
                rounds, kills, kills_holding_lock, zombie_kills, static_cast<unsigned long long>(recoveries),
                leftovers_freed, static_cast<unsigned long long>(counters.total()), median(latencies),
                latencies.empty() ? 0.0 : *std::max_element(latencies.begin(), latencies.end()));
    std::fflush(stdout);
}

namespace {

struct CrashPointPool {
    ScopedPool scoped;
    std::vector<Memory> held;
    explicit CrashPointPool(std::size_t bytes) : scoped(bytes, {}, "cp") {}
    Pool& pool() { return scoped.pool(); }
};

// Runs `crash-point NAME MODE [ID]` and waits for the child to die by SIGKILL.
void run_crash_point(const std::string& name, const std::string& mode, const std::string& id = "", bool reap = true,
                     Child* keep = nullptr) {
    std::vector<std::string> argv{child_program(), "crash-point", name, mode};
    if (!id.empty()) argv.push_back(id);
    Child child = Child::spawn(argv);
    auto dying = child.wait_line("dying", 10000);
    REQUIRE_MESSAGE(dying.has_value(), "crash-point child did not get to its crash point: " << child.output());
    if (!reap) {
        double until = now_ms() + 5000;
        while (task_state(child.pid()) != 'Z' && now_ms() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        REQUIRE(task_state(child.pid()) == 'Z');
        *keep = std::move(child);
        return;
    }
    ChildResult exit = child.wait(5000);
    REQUIRE_MESSAGE(exit.signal == SIGKILL, "crash-point child: " << exit.describe());
}

}  // namespace

TEST_CASE("crash point: holder killed right after taking the lock; zombie owner not reaped") {
    CrashPointPool cp(64 * 1024);
    Pool& pool = cp.pool();
    Memory kept = pool.alloc(1000, 7);
    std::memset(kept.pointer(), 0x11, 1000);
    auto before = snapshot(pool);
    auto rec0 = pool.attributes().recoveries;
    ShmView view(cp.scoped.name(), false);

    run_crash_point(cp.scoped.name(), "hold");
    CHECK(view.lock_owner_tid() != 0);  // the dead child still owns the lock
    double took = timed_alloc_free(pool, "alloc+free after the lock holder died");
    MESSAGE("recovery from a dead holder took " << took << " ms");
    CHECK(pool.attributes().recoveries == rec0 + 1);
    auto after = snapshot(pool);
    CHECK_MESSAGE(after == before, "before " << before.describe() << "\nafter  " << after.describe());
    CHECK(static_cast<unsigned char*>(kept.pointer())[999] == 0x11);

    // Again, but the dead holder stays an unreaped zombie while the parent recovers.
    Child zombie;
    run_crash_point(cp.scoped.name(), "hold", "", false, &zombie);
    CHECK(view.lock_owner_tid() == static_cast<std::uint32_t>(zombie.pid()));
    timed_alloc_free(pool, "alloc+free while the dead lock holder is an unreaped zombie");
    CHECK(pool.attributes().recoveries == rec0 + 2);
    CHECK(task_state(zombie.pid()) == 'Z');
    zombie.wait(5000);
    kept.free();
    require_check_ok(pool, "after the hold crash point");
}

TEST_CASE("crash point: killed after a free's commit point; the block comes back, listing and counters agree") {
    CrashPointPool cp(64 * 1024);
    Pool& pool = cp.pool();
    Memory a = pool.alloc(4000, 3);
    Memory b = pool.alloc(100, 4);
    std::uint64_t a_id = a.id();
    std::uint64_t free_before = pool.attributes().free_bytes;

    run_crash_point(cp.scoped.name(), "retire", std::to_string(a_id));
    timed_alloc_free(pool, "alloc+free after a holder died mid-free");
    auto attrs = pool.attributes();
    CHECK(attrs.free_bytes == free_before + 4096);
    CHECK(attrs.live_allocations == 1);
    auto listing = pool.allocations();
    REQUIRE(listing.size() == 1);
    CHECK(listing[0].id == b.id());
    CHECK_FALSE(pool.allocation_exists(a_id));
    require_check_ok(pool, "after the retire crash point");
    // The dead process's free is complete: freeing it again is a clear error.
    CHECK_THROWS_AS(a.free(), dragonmem::Error);
    b.free();
    CHECK(pool.attributes().free_bytes == pool.heap_bytes());
}

TEST_CASE("crash point: killed after scribbling over the heap lists; repair rebuilds them from the manifest") {
    CrashPointPool cp(256 * 1024);
    Pool& pool = cp.pool();
    std::vector<Memory> live;
    for (int i = 0; i < 20; ++i) {
        live.push_back(pool.alloc(static_cast<std::size_t>(50 + 300 * i), static_cast<std::uint64_t>(i)));
        std::memset(live.back().pointer(), i, live.back().size());
    }
    for (int i = 0; i < 20; i += 3) live[static_cast<std::size_t>(i)].free();
    auto listing_before = pool.allocations();

    run_crash_point(cp.scoped.name(), "scribble");
    timed_alloc_free(pool, "alloc+free after a holder scribbled over the heap and died");
    require_check_ok(pool, "after the scribble crash point");
    auto listing_after = pool.allocations();
    REQUIRE(listing_after.size() == listing_before.size());
    for (std::size_t i = 0; i < listing_after.size(); ++i) {
        CHECK(listing_after[i].id == listing_before[i].id);
        CHECK(listing_after[i].offset == listing_before[i].offset);
    }
    // Live data untouched by the rebuild.
    for (int i = 0; i < 20; ++i) {
        if (i % 3 == 0) continue;
        auto* p = static_cast<unsigned char*>(live[static_cast<std::size_t>(i)].pointer());
        CHECK(p[0] == static_cast<unsigned char>(i));
        CHECK(p[live[static_cast<std::size_t>(i)].size() - 1] == static_cast<unsigned char>(i));
    }
    for (int i = 0; i < 20; ++i)
        if (i % 3 != 0) live[static_cast<std::size_t>(i)].free();
    CHECK(pool.attributes().free_bytes == pool.heap_bytes());
    Memory whole = pool.alloc(pool.heap_bytes());
    whole.free();
    require_check_ok(pool, "at the end of the scribble test");
}

TEST_CASE("crash point: repair rebuilds the free lists and free map as the gaps between live blocks") {
    CrashPointPool cp(1024 * 1024);
    Pool& pool = cp.pool();
    std::vector<Memory> live;
    for (int i = 0; i < 40; ++i) live.push_back(pool.alloc(static_cast<std::size_t>(1000 + 777 * i)));
    for (int i = 0; i < 40; i += 2) live[static_cast<std::size_t>(i)].free();  // a gap before each survivor
    const auto before = pool.attributes();  // takes blocks parked in thread caches back
    const auto report_before = pool.check();
    REQUIRE(report_before.ok);
    REQUIRE(report_before.free_blocks >= 20);

    run_crash_point(cp.scoped.name(), "scribble");  // garbage over the heap state, then killed
    const auto after = pool.attributes();           // the next lock taker repairs
    CHECK(after.recoveries == before.recoveries + 1);
    CHECK(after.free_bytes == before.free_bytes);
    CHECK(after.largest_free_block == before.largest_free_block);
    CHECK(after.largest_request == before.largest_request);
    const auto report = pool.check();
    CHECK(report.ok);
    CHECK(report.free_blocks == report_before.free_blocks);  // coalescing is immediate: the gaps were maximal
    // The rebuilt structure serves: the largest request, and every gap again.
    Memory big = pool.alloc(after.largest_request);
    big.free();
    for (int i = 1; i < 40; i += 2) live[static_cast<std::size_t>(i)].free();
    CHECK(pool.attributes().free_bytes == pool.heap_bytes());
    CHECK(pool.check().free_blocks == 1);
    require_check_ok(pool, "at the end of the rebuild test");
}

TEST_CASE("crash point: killed after unlinking a free block (half an alloc); the block is not lost") {
    CrashPointPool cp(64 * 1024);
    Pool& pool = cp.pool();
    Memory a = pool.alloc(1000);
    run_crash_point(cp.scoped.name(), "take-block");
    timed_alloc_free(pool, "alloc+free after a holder died in the middle of an alloc");
    require_check_ok(pool, "after the take-block crash point");
    a.free();
    CHECK(pool.attributes().free_bytes == pool.heap_bytes());
    Memory whole = pool.alloc(pool.heap_bytes());
    whole.free();
}

TEST_CASE("crash point: a live (sleeping) lock holder is not robbed; its death releases the waiters") {
    CrashPointPool cp(64 * 1024);
    Pool& pool = cp.pool();
    Child holder = Child::spawn({child_program(), "crash-point", cp.scoped.name(), "sleep"});
    REQUIRE_MESSAGE(holder.wait_line("holding", 10000).has_value(), holder.output());
    std::atomic<bool> done{false};
    std::atomic<double> finished_at{0};
    std::thread contender([&] {
        Memory m = pool.alloc(64);
        finished_at.store(now_ms());
        m.free();
        done.store(true);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK_MESSAGE(!done.load(), "the lock was taken from a live holder");
    double killed_at = now_ms();
    holder.kill_now(SIGKILL);
    holder.wait(5000);
    watchdog().arm(15000, "a waiter for the lock of a killed holder");
    contender.join();
    watchdog().disarm();
    CHECK(done.load());
    MESSAGE("waiter got the lock " << finished_at.load() - killed_at << " ms after its holder was killed");
    CHECK(pool.attributes().recoveries >= 1);
    require_check_ok(pool, "after the sleeping holder was killed");
}

TEST_SUITE_END();
