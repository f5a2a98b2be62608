// The interface every contender (dragonmem, Boost.Interprocess, the malloc and raw-shm
// floors) implements. Methods time whole batches, so the per-operation path has no
// virtual call and each loop is compiled directly against its contender's API.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace bench {

// Thrown by a contender when one of its calls fails, with the values; the runner records
// the message in the JSON under that contender and stops timing it for the figure.
class BenchError : public std::runtime_error {
public:
    explicit BenchError(const std::string& what) : std::runtime_error(what) {}
};

// CLOCK_MONOTONIC through the vDSO (~20 ns, no system call). It is read at batch
// boundaries only, never per operation, and it is the same clock in every process, so
// a parent can compare timestamps taken by its children.
inline std::uint64_t now_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// The calling thread's CPU time: what a figure costs whatever the machine's load (on a
// busy machine wall time also counts the time the thread waited for a CPU).
inline std::uint64_t thread_cpu_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Makes `p` escape to memory the compiler cannot see: without it GCC deletes a
// malloc/free pair whose pointer is unused, and the floor would measure nothing.
inline void escape(const void* p) noexcept { asm volatile("" : : "g"(p) : "memory"); }

// Nanoseconds spent in the two phases of a "many live" batch.
struct LivePhases {
    std::uint64_t alloc_ns = 0;
    std::uint64_t free_ns = 0;
};

// A contender opened inside a worker of a scaling figure (a forked child or a thread).
// Destroying it detaches from the shared pool; it never destroys the pool.
class ChildSession {
public:
    virtual ~ChildSession() = default;
    // Alloc+free pairs of `size_bytes` until `stop` is set; returns the pairs done.
    virtual std::uint64_t hammer(std::size_t size_bytes, const std::atomic<int>& stop) = 0;
};

// Every method throws BenchError when a call of the contender fails. A contender that
// lacks a measurement keeps the default, which throws: the figure table in figures.cpp
// only asks contenders for what they have.
class Contender {
public:
    virtual ~Contender() = default;
    virtual std::string name() const = 0;
    virtual std::string description() const = 0;

    // `count` alloc+free pairs of `size_bytes`; elapsed ns.
    virtual std::uint64_t pairs(std::size_t size_bytes, std::uint64_t count);
    // `cycles` times: allocate `live_count` blocks of `size_bytes`, then free them in
    // allocation order (the queue pattern of channel buffers, and not the LIFO order
    // that flatters per-size stacks).
    virtual LivePhases live(std::size_t size_bytes, std::size_t live_count, std::uint64_t cycles);
    // `count` round trips of one allocation's handle through its cross-process form.
    virtual std::uint64_t handle_round_trips(std::uint64_t count);
    // `count` creations and destructions of a segment of `pool_bytes`, memory untouched.
    virtual std::uint64_t create_destroys(std::size_t pool_bytes, std::uint64_t count);
    // `count` attach+detach of an existing segment of `pool_bytes` that is not mapped in
    // this process, so each attach really maps it.
    virtual std::uint64_t attach_detaches(std::size_t pool_bytes, std::uint64_t count);

    // The mixed workload (mixed_workload.hpp) on `threads` threads of this process for
    // `duration_ns`.
    virtual std::pair<std::uint64_t, std::uint64_t> mixed(int threads, std::uint64_t duration_ns,
                                                          std::uint64_t seed);  // {ops, window ns}

    // Scaling figures: share() before starting the workers, open_in_child() in each worker
    // (a forked child, or a thread of this process: one session per thread), release()
    // once the workers are gone.
    virtual void share(std::size_t pool_bytes);
    virtual std::unique_ptr<ChildSession> open_in_child();

    // Drops every pool or segment the methods above created lazily (called after each
    // figure, so at most one figure's segments exist at a time).
    virtual void release() {}
};

}  // namespace bench
