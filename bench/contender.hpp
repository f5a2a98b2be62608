// The interface every contender (dragonmem, Boost.Interprocess, the malloc and raw-shm
// floors) implements. Methods time whole batches, so the per-operation path has no
// virtual call and each loop is compiled directly against its contender's API.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace bench {

// Nanoseconds spent in the two phases of a "many live" batch.
struct LivePhases {
    std::uint64_t alloc_ns = 0;
    std::uint64_t free_ns = 0;
};

// A contender opened inside a forked child (multi-process figures). Destroying it
// detaches from the shared pool; it never destroys the pool.
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

    // Multi-process figures: share() in the parent before forking, open_in_child() in
    // each forked child, release() in the parent once the children are gone.
    virtual void share(std::size_t pool_bytes);
    virtual std::unique_ptr<ChildSession> open_in_child();

    // Drops every pool or segment the methods above created lazily (called after each
    // figure, so at most one figure's segments exist at a time).
    virtual void release() {}
};

}  // namespace bench
