// The dragonmem contender: every figure through the public C API only, as a Dragon
// user would call it.
#include "contenders.hpp"
#include "mixed_workload.hpp"
#include "shm_cleanup.hpp"

#include <dragon/managed_memory.h>

#include <fmt/format.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace bench {
namespace {

constexpr std::size_t kProbeBytes = 64;

[[noreturn]] void fail(const char* call, dragonError_t rc, const std::string& values) {
    char* message = dragon_getlasterrstr();
    std::string text = fmt::format("{}({}) returned {} ({}): {}", call, values, dragon_getrcstr(rc),
                                   static_cast<int>(rc), message != nullptr ? message : "");
    std::free(message);
    throw BenchError(text);
}

std::uint64_t next_m_uid() {
    static std::uint64_t m_uid = 1000;
    return ++m_uid;
}

// A pool created by this process and held by one handle; destroyed with it unless
// the handle was given up by detach().
class OwnedPool {
public:
    OwnedPool(std::size_t pool_bytes, std::string_view kind) : name_(unique_shm_name(kind)) {
        const dragonError_t rc = dragon_memory_pool_create(&descr_, pool_bytes, name_.c_str(), next_m_uid(), nullptr);
        if (rc != DRAGON_SUCCESS) {
            fail("dragon_memory_pool_create", rc, fmt::format("{} B, '{}'", pool_bytes, name_));
        }
    }
    OwnedPool(const OwnedPool&) = delete;
    OwnedPool& operator=(const OwnedPool&) = delete;
    ~OwnedPool() {
        if (held_) {
            dragon_memory_pool_destroy(&descr_);
        }
    }

    const dragonMemoryPoolDescr_t& descr() const { return descr_; }
    const std::string& name() const { return name_; }

    // Gives up this process's handle; the pool stays for whoever holds its serial.
    void detach() {
        const dragonError_t rc = dragon_memory_pool_detach(&descr_);
        if (rc != DRAGON_SUCCESS) {
            fail("dragon_memory_pool_detach", rc, name_);
        }
        held_ = false;
    }

private:
    std::string name_;
    dragonMemoryPoolDescr_t descr_{};
    bool held_ = true;
};

// A pool that exists but that this process holds no handle of (and has not mapped):
// what a freshly started process sees. Only its serialized descriptor is kept.
class DetachedPool {
public:
    DetachedPool(std::size_t pool_bytes, std::string_view kind) : pool_bytes_(pool_bytes) {
        OwnedPool creator(pool_bytes, kind);
        name_ = creator.name();
        const dragonError_t rc = dragon_memory_pool_serialize(&serial_, &creator.descr());
        if (rc != DRAGON_SUCCESS) {
            fail("dragon_memory_pool_serialize", rc, name_);  // `creator` destroys the pool
        }
        try {
            creator.detach();
        } catch (...) {
            dragon_memory_pool_serial_free(&serial_);
            throw;
        }
        // From here only serial_ reaches the pool. Attach times mean something only if
        // the pool is really gone from this process (the library shares one mapping
        // per process and unmaps it when the last handle detaches).
        if (mapped_in_this_process(name_)) {
            destroy();
            throw BenchError(fmt::format(
                "pool '{}' is still mapped after its only handle was detached, so attach "
                "would take a reference instead of mapping it",
                name_));
        }
    }
    DetachedPool(const DetachedPool&) = delete;
    DetachedPool& operator=(const DetachedPool&) = delete;
    ~DetachedPool() { destroy(); }

    const dragonMemoryPoolSerial_t& serial() const { return serial_; }
    std::size_t pool_bytes() const { return pool_bytes_; }

private:
    void destroy() {
        if (serial_.data == nullptr) {
            return;
        }
        dragonMemoryPoolDescr_t descr{};
        if (dragon_memory_pool_attach(&descr, &serial_) == DRAGON_SUCCESS) {
            dragon_memory_pool_destroy(&descr);
        }
        dragon_memory_pool_serial_free(&serial_);
        serial_.data = nullptr;
    }

    std::size_t pool_bytes_;
    std::string name_;
    dragonMemoryPoolSerial_t serial_{};
};

class DragonmemChildSession final : public ChildSession {
public:
    explicit DragonmemChildSession(const dragonMemoryPoolSerial_t& serial) {
        const dragonError_t rc = dragon_memory_pool_attach(&pool_, &serial);
        if (rc != DRAGON_SUCCESS) {
            fail("dragon_memory_pool_attach", rc, "serialized descriptor from the parent");
        }
    }
    ~DragonmemChildSession() override { dragon_memory_pool_detach(&pool_); }

    std::uint64_t hammer(std::size_t size_bytes, const std::atomic<int>& stop) override {
        // The stop flag is read once per 64 pairs: a line nobody writes until the end
        // stays in this core's cache, so the check costs nothing measurable.
        std::uint64_t pairs_done = 0;
        dragonMemoryDescr_t mem;
        while (stop.load(std::memory_order_relaxed) == 0) {
            for (int i = 0; i < 64; ++i) {
                dragonError_t rc = dragon_memory_alloc(&mem, &pool_, size_bytes);
                if (rc != DRAGON_SUCCESS) [[unlikely]] {
                    fail("dragon_memory_alloc", rc, fmt::format("{} B", size_bytes));
                }
                rc = dragon_memory_free(&mem);
                if (rc != DRAGON_SUCCESS) [[unlikely]] {
                    fail("dragon_memory_free", rc, fmt::format("{} B", size_bytes));
                }
            }
            pairs_done += 64;
        }
        return pairs_done;
    }

private:
    dragonMemoryPoolDescr_t pool_{};
};

class DragonmemContender final : public Contender {
public:
    explicit DragonmemContender(std::size_t heap_pool_bytes) : heap_pool_bytes_(heap_pool_bytes) {}
    ~DragonmemContender() override { release(); }

    std::string name() const override { return "dragonmem"; }
    std::string description() const override {
        return fmt::format("dragonmem C API (dragon_memory_alloc/free), {} MiB pool, default attributes",
                           heap_pool_bytes_ >> 20);
    }

    std::uint64_t pairs(std::size_t size_bytes, std::uint64_t count) override {
        const dragonMemoryPoolDescr_t& pool = heap().descr();
        dragonMemoryDescr_t mem;
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            dragonError_t rc = dragon_memory_alloc(&mem, &pool, size_bytes);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_alloc", rc, fmt::format("{} B", size_bytes));
            }
            rc = dragon_memory_free(&mem);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_free", rc, fmt::format("{} B", size_bytes));
            }
        }
        return now_ns() - start_ns;
    }

    LivePhases live(std::size_t size_bytes, std::size_t live_count, std::uint64_t cycles) override {
        const dragonMemoryPoolDescr_t& pool = heap().descr();
        live_.resize(live_count);
        LivePhases phases;
        for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
            const std::uint64_t start_ns = now_ns();
            for (std::size_t i = 0; i < live_count; ++i) {
                const dragonError_t rc = dragon_memory_alloc(&live_[i], &pool, size_bytes);
                if (rc != DRAGON_SUCCESS) [[unlikely]] {
                    fail("dragon_memory_alloc", rc, fmt::format("{} B, live allocation #{}", size_bytes, i));
                }
            }
            const std::uint64_t middle_ns = now_ns();
            for (std::size_t i = 0; i < live_count; ++i) {
                const dragonError_t rc = dragon_memory_free(&live_[i]);
                if (rc != DRAGON_SUCCESS) [[unlikely]] {
                    fail("dragon_memory_free", rc, fmt::format("{} B, live allocation #{}", size_bytes, i));
                }
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
            const dragonMemoryPoolDescr_t* pool;
            dragonMemoryDescr_t alloc(std::size_t size_bytes) {
                dragonMemoryDescr_t mem;
                const dragonError_t rc = dragon_memory_alloc(&mem, pool, size_bytes);
                if (rc != DRAGON_SUCCESS) [[unlikely]] {
                    fail("dragon_memory_alloc", rc, fmt::format("{} B", size_bytes));
                }
                return mem;
            }
            void free(const dragonMemoryDescr_t& mem) {
                dragonMemoryDescr_t copy = mem;
                const dragonError_t rc = dragon_memory_free(&copy);
                if (rc != DRAGON_SUCCESS) [[unlikely]] {
                    fail("dragon_memory_free", rc, "mixed workload block");
                }
            }
        };
        const dragonMemoryPoolDescr_t* pool = &heap().descr();
        const MixedOutcome outcome =
            run_mixed<dragonMemoryDescr_t>(threads, duration_ns, seed, [pool](int) { return Session{pool}; });
        return {outcome.ops, outcome.window_ns};
    }

    std::uint64_t handle_round_trips(std::uint64_t count) override {
        const dragonMemoryDescr_t& probe = this->probe();
        dragonMemorySerial_t serial;
        dragonMemoryDescr_t attached;
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            dragonError_t rc = dragon_memory_serialize(&serial, &probe);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_serialize", rc, fmt::format("{} B allocation", kProbeBytes));
            }
            rc = dragon_memory_attach(&attached, &serial);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_attach", rc, fmt::format("{} B serial", serial.len));
            }
            rc = dragon_memory_detach(&attached);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_detach", rc, "attached allocation");
            }
            rc = dragon_memory_serial_free(&serial);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_serial_free", rc, fmt::format("{} B serial", serial.len));
            }
        }
        return now_ns() - start_ns;
    }

    std::uint64_t create_destroys(std::size_t pool_bytes, std::uint64_t count) override {
        const std::string name = unique_shm_name("cd");
        const dragonM_UID_t m_uid = next_m_uid();
        dragonMemoryPoolDescr_t pool;
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            dragonError_t rc = dragon_memory_pool_create(&pool, pool_bytes, name.c_str(), m_uid, nullptr);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_pool_create", rc, fmt::format("{} B, '{}'", pool_bytes, name));
            }
            rc = dragon_memory_pool_destroy(&pool);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_pool_destroy", rc, name);
            }
        }
        return now_ns() - start_ns;
    }

    std::uint64_t attach_detaches(std::size_t pool_bytes, std::uint64_t count) override {
        if (!attach_target_ || attach_target_->pool_bytes() != pool_bytes) {
            attach_target_.reset();
            attach_target_.emplace(pool_bytes, "at");
        }
        const dragonMemoryPoolSerial_t& serial = attach_target_->serial();
        dragonMemoryPoolDescr_t pool;
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            dragonError_t rc = dragon_memory_pool_attach(&pool, &serial);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_pool_attach", rc, fmt::format("{} B pool", pool_bytes));
            }
            rc = dragon_memory_pool_detach(&pool);
            if (rc != DRAGON_SUCCESS) [[unlikely]] {
                fail("dragon_memory_pool_detach", rc, fmt::format("{} B pool", pool_bytes));
            }
        }
        return now_ns() - start_ns;
    }

    void share(std::size_t pool_bytes) override {
        shared_.reset();
        shared_.emplace(pool_bytes, "mp");
    }

    std::unique_ptr<ChildSession> open_in_child() override {
        if (!shared_) {
            throw BenchError("dragonmem: open_in_child() without share()");
        }
        return std::make_unique<DragonmemChildSession>(shared_->serial());
    }

    void release() override {
        if (probe_) {
            dragon_memory_free(&*probe_);
            probe_.reset();
        }
        heap_.reset();
        attach_target_.reset();
        shared_.reset();
    }

private:
    const OwnedPool& heap() {
        if (!heap_) {
            heap_.emplace(heap_pool_bytes_, "heap");
        }
        return *heap_;
    }

    const dragonMemoryDescr_t& probe() {
        if (!probe_) {
            dragonMemoryDescr_t mem;
            const dragonError_t rc = dragon_memory_alloc(&mem, &heap().descr(), kProbeBytes);
            if (rc != DRAGON_SUCCESS) {
                fail("dragon_memory_alloc", rc, fmt::format("{} B", kProbeBytes));
            }
            probe_ = mem;
        }
        return *probe_;
    }

    std::size_t heap_pool_bytes_;
    std::optional<OwnedPool> heap_;
    std::optional<dragonMemoryDescr_t> probe_;
    std::vector<dragonMemoryDescr_t> live_;
    std::optional<DetachedPool> attach_target_;
    std::optional<DetachedPool> shared_;
};

}  // namespace

std::unique_ptr<Contender> make_dragonmem_contender(std::size_t heap_pool_bytes) {
    return std::make_unique<DragonmemContender>(heap_pool_bytes);
}

}  // namespace bench
