// The random workload the crash and stress tests run against a shared pool, through
// the C API on one pool descriptor shared by every thread of a process: alloc,
// alloc_type, alloc_type_blocking, free, descr_clone, serialize + attach, from_id,
// pool serialize + attach + detach, get_allocations, and hand-offs (one thread frees
// what another allocated, through a serialized descriptor). Every allocation is filled
// with a pattern keyed by its id and verified before it is freed, so two live
// allocations that overlap (a corrupted heap) are noticed.
#pragma once

#include <dragon/managed_memory.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace dmtest {

struct WorkloadCounters {
    std::atomic<std::uint64_t> ops{0};
    std::atomic<std::uint64_t> allocs{0};
    std::atomic<std::uint64_t> frees{0};
    std::atomic<std::uint64_t> clones{0};
    std::atomic<std::uint64_t> serial_round_trips{0};
    std::atomic<std::uint64_t> pool_attaches{0};
    std::atomic<std::uint64_t> handoffs{0};
    std::atomic<std::uint64_t> refusals{0};  // NOT_AVAILABLE / TIMEOUT / OUT_OF_SPACE: the pool was full
};

// Serialized allocation descriptors handed from one thread to another. Each item is a
// live allocation, so the queue is bounded: a give finding it full frees the allocation
// itself. (Unbounded, gives at 6% of steps outran takes at 5%: a long-lived crash-test
// child held hundreds of allocations and three of them filled a 1024-slot manifest.)
struct HandoffQueue {
    std::mutex mutex;
    std::deque<std::vector<std::uint8_t>> items;
    std::size_t capacity = 24;
};

struct WorkloadConfig {
    std::uint64_t type_base = 0;      // types used: type_base + 0..3
    std::size_t max_live = 32;        // per thread
    std::size_t max_bytes = 8192;     // request sizes are 1..max_bytes, skewed small
    bool blocking_allocs = true;      // sometimes alloc_type_blocking with a short timeout
    bool verify_patterns = true;
    std::uint64_t check_every = 0;    // every N ops, dragonmem_pool_check (a long lock hold)
};

// One thread's share of the workload. `failure` is set (and run returns false) on the
// first unexpected result: a wrong return code, a pattern mismatch, a bad pointer.
// A worker holds at most config.max_live allocations, plus those waiting in its hand-off
// queue (at most the queue's capacity, shared by the workers using it).
class Worker {
public:
    Worker(dragonMemoryPoolDescr_t* pool, WorkloadConfig config, std::uint64_t seed, WorkloadCounters& counters,
           HandoffQueue* handoffs, std::atomic<std::uint64_t>* progress = nullptr);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // `ops` operations (0: forever). False on the first failure.
    bool run(std::uint64_t ops);
    // Frees everything this worker still holds.
    bool drain();
    const std::string& failure() const { return failure_; }

private:
    struct Live {
        dragonMemoryDescr_t descr;
        std::uint64_t id;
        std::size_t bytes;
    };
    bool step();
    bool do_alloc();
    bool do_free(std::size_t index);
    bool do_clone();
    bool do_serialize();
    bool do_from_id();
    bool do_pool_attach();
    bool do_list();
    bool do_handoff_give(std::size_t index);
    bool do_handoff_take();
    bool fail(const std::string& what, dragonError_t rc);

    dragonMemoryPoolDescr_t* pool_;
    WorkloadConfig config_;
    std::mt19937_64 rng_;
    WorkloadCounters& counters_;
    HandoffQueue* handoffs_;
    std::atomic<std::uint64_t>* progress_;
    std::vector<Live> live_;
    std::uint64_t steps_ = 0;
    std::string failure_;
};

// Fills / verifies an allocation's bytes with the pattern of `id` (first and last 64
// bytes and a sample in between, so large blocks stay cheap).
void fill_for_id(void* ptr, std::size_t bytes, std::uint64_t id);
bool verify_for_id(const void* ptr, std::size_t bytes, std::uint64_t id, std::string& why);

}  // namespace dmtest
