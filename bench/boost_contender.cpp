// The Boost.Interprocess peer: managed_shared_memory (rbtree_best_fit behind a
// process-shared mutex), the usual C++ answer to "allocate in shared memory".
#include "contenders.hpp"
#include "mixed_workload.hpp"
#include "shm_cleanup.hpp"

#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <boost/version.hpp>

#include <fmt/format.h>

#include <new>
#include <optional>
#include <string>
#include <vector>

namespace bench {
namespace {

namespace bip = boost::interprocess;

[[noreturn]] void fail(const std::string& what) { throw BenchError(what); }

// A segment created by this process; the mapping may be dropped (unmap) while the
// segment stays, and the destructor removes it.
class OwnedSegment {
public:
    OwnedSegment(std::size_t segment_bytes, std::string_view kind)
        : name_(unique_shm_name(kind)), segment_bytes_(segment_bytes) {
        try {
            memory_.emplace(bip::create_only, name_.c_str(), segment_bytes);
        } catch (const bip::interprocess_exception& error) {
            bip::shared_memory_object::remove(name_.c_str());
            fail(fmt::format("managed_shared_memory(create_only, '{}', {} B): {}", name_, segment_bytes, error.what()));
        }
    }
    OwnedSegment(const OwnedSegment&) = delete;
    OwnedSegment& operator=(const OwnedSegment&) = delete;
    ~OwnedSegment() {
        memory_.reset();
        bip::shared_memory_object::remove(name_.c_str());
    }

    bip::managed_shared_memory& memory() { return *memory_; }
    const std::string& name() const { return name_; }
    std::size_t segment_bytes() const { return segment_bytes_; }
    // Unmaps this process's view; the segment itself stays until destruction.
    void unmap() { memory_.reset(); }

private:
    std::string name_;
    std::size_t segment_bytes_;
    std::optional<bip::managed_shared_memory> memory_;
};

class BoostChildSession final : public ChildSession {
public:
    explicit BoostChildSession(const std::string& name) {
        try {
            memory_.emplace(bip::open_only, name.c_str());
        } catch (const bip::interprocess_exception& error) {
            fail(fmt::format("managed_shared_memory(open_only, '{}'): {}", name, error.what()));
        }
    }

    std::uint64_t hammer(std::size_t size_bytes, const std::atomic<int>& stop) override {
        std::uint64_t pairs_done = 0;
        while (stop.load(std::memory_order_relaxed) == 0) {
            for (int i = 0; i < 64; ++i) {
                void* block = memory_->allocate(size_bytes, std::nothrow);
                if (block == nullptr) [[unlikely]] {
                    fail(fmt::format("allocate({} B) returned null", size_bytes));
                }
                memory_->deallocate(block);
            }
            pairs_done += 64;
        }
        return pairs_done;
    }

private:
    std::optional<bip::managed_shared_memory> memory_;
};

class BoostContender final : public Contender {
public:
    explicit BoostContender(std::size_t heap_bytes) : heap_bytes_(heap_bytes) {}
    ~BoostContender() override { release(); }

    std::string name() const override { return "boost"; }
    std::string description() const override {
        return fmt::format("Boost.Interprocess {}.{}.{} managed_shared_memory allocate/deallocate, {} MiB segment",
                           BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100,
                           heap_bytes_ >> 20);
    }

    std::uint64_t pairs(std::size_t size_bytes, std::uint64_t count) override {
        bip::managed_shared_memory& memory = heap().memory();
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            void* block = memory.allocate(size_bytes, std::nothrow);
            if (block == nullptr) [[unlikely]] {
                fail(fmt::format("allocate({} B) returned null", size_bytes));
            }
            memory.deallocate(block);
        }
        return now_ns() - start_ns;
    }

    LivePhases live(std::size_t size_bytes, std::size_t live_count, std::uint64_t cycles) override {
        bip::managed_shared_memory& memory = heap().memory();
        live_.resize(live_count);
        LivePhases phases;
        for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
            const std::uint64_t start_ns = now_ns();
            for (std::size_t i = 0; i < live_count; ++i) {
                live_[i] = memory.allocate(size_bytes, std::nothrow);
                if (live_[i] == nullptr) [[unlikely]] {
                    fail(fmt::format("allocate({} B) returned null at live allocation #{}", size_bytes, i));
                }
            }
            const std::uint64_t middle_ns = now_ns();
            for (std::size_t i = 0; i < live_count; ++i) {
                memory.deallocate(live_[i]);
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
            bip::managed_shared_memory* memory;
            void* alloc(std::size_t size_bytes) {
                void* block = memory->allocate(size_bytes, std::nothrow);
                if (block == nullptr) [[unlikely]] {
                    fail(fmt::format("allocate({} B) returned null", size_bytes));
                }
                return block;
            }
            void free(void* const& block) { memory->deallocate(block); }
        };
        bip::managed_shared_memory& memory = heap().memory();
        const MixedOutcome outcome =
            run_mixed<void*>(threads, duration_ns, seed, [&memory](int) { return Session{&memory}; });
        return {outcome.ops, outcome.window_ns};
    }

    // Boost's cross-process form of an allocation is its offset in the segment
    // (handle_t); the round trip is pointer -> handle -> pointer.
    std::uint64_t handle_round_trips(std::uint64_t count) override {
        bip::managed_shared_memory& memory = heap().memory();
        if (probe_ == nullptr) {
            probe_ = memory.allocate(64, std::nothrow);
            if (probe_ == nullptr) {
                fail("allocate(64 B) returned null");
            }
        }
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            escape(&probe_);  // reloads the pointer each time so the pair is not hoisted
            const bip::managed_shared_memory::handle_t handle = memory.get_handle_from_address(probe_);
            escape(memory.get_address_from_handle(handle));
        }
        return now_ns() - start_ns;
    }

    std::uint64_t create_destroys(std::size_t segment_bytes, std::uint64_t count) override {
        const std::string name = unique_shm_name("cd");
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            try {
                bip::managed_shared_memory segment(bip::create_only, name.c_str(), segment_bytes);
                escape(segment.get_address());
            } catch (const bip::interprocess_exception& error) {
                bip::shared_memory_object::remove(name.c_str());
                fail(fmt::format("managed_shared_memory(create_only, '{}', {} B): {}", name, segment_bytes, error.what()));
            }
            bip::shared_memory_object::remove(name.c_str());
        }
        return now_ns() - start_ns;
    }

    std::uint64_t attach_detaches(std::size_t segment_bytes, std::uint64_t count) override {
        if (!attach_target_ || attach_target_->segment_bytes() != segment_bytes) {
            attach_target_.reset();
            attach_target_.emplace(segment_bytes, "at");
            attach_target_->unmap();
        }
        const std::string& name = attach_target_->name();
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            try {
                bip::managed_shared_memory segment(bip::open_only, name.c_str());
                escape(segment.get_address());
            } catch (const bip::interprocess_exception& error) {
                fail(fmt::format("managed_shared_memory(open_only, '{}'): {}", name, error.what()));
            }
        }
        return now_ns() - start_ns;
    }

    void share(std::size_t segment_bytes) override {
        shared_.reset();
        shared_.emplace(segment_bytes, "mp");
        shared_->unmap();  // children open it themselves, as dragonmem's children attach
    }

    std::unique_ptr<ChildSession> open_in_child() override {
        if (!shared_) {
            fail("open_in_child() without share()");
        }
        return std::make_unique<BoostChildSession>(shared_->name());
    }

    void release() override {
        if (probe_ != nullptr && heap_) {
            heap_->memory().deallocate(probe_);
        }
        probe_ = nullptr;
        heap_.reset();
        attach_target_.reset();
        shared_.reset();
    }

private:
    OwnedSegment& heap() {
        if (!heap_) {
            heap_.emplace(heap_bytes_, "bheap");
        }
        return *heap_;
    }

    std::size_t heap_bytes_;
    std::optional<OwnedSegment> heap_;
    void* probe_ = nullptr;
    std::vector<void*> live_;
    std::optional<OwnedSegment> attach_target_;
    std::optional<OwnedSegment> shared_;
};

}  // namespace

std::unique_ptr<Contender> make_boost_contender(std::size_t heap_bytes) {
    return std::make_unique<BoostContender>(heap_bytes);
}

}  // namespace bench
