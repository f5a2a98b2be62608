// The shared random workload of the crash and stress tests (see workload.hpp).
#include "workload.hpp"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace dmtest {

namespace {

std::string last_error_text() {
    char* s = dragon_getlasterrstr();
    std::string out = s != nullptr ? std::string(s) : std::string();
    std::free(s);
    return out;
}

inline std::uint8_t byte_for(std::uint64_t id, std::size_t index) {
    return static_cast<std::uint8_t>((id * 0x9E3779B97F4A7C15ULL >> 56) ^ (index * 31u) ^ (index >> 9));
}

// The byte ranges a pattern covers: head, tail and every 4 KiB in between.
template <typename Fn>
void for_pattern_ranges(std::size_t bytes, Fn&& fn) {
    std::size_t head = bytes < 64 ? bytes : 64;
    fn(0, head);
    for (std::size_t at = 4096; at + 8 < bytes; at += 4096) fn(at, at + 8);
    if (bytes > 64) fn(bytes - 64 > head ? bytes - 64 : head, bytes);
}

bool refusal(dragonError_t rc) {
    return rc == DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE || rc == DRAGON_TIMEOUT || rc == DRAGON_OUT_OF_SPACE;
}

}  // namespace

void fill_for_id(void* ptr, std::size_t bytes, std::uint64_t id) {
    auto* p = static_cast<std::uint8_t*>(ptr);
    for_pattern_ranges(bytes, [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i) p[i] = byte_for(id, i);
    });
}

bool verify_for_id(const void* ptr, std::size_t bytes, std::uint64_t id, std::string& why) {
    const auto* p = static_cast<const std::uint8_t*>(ptr);
    bool ok = true;
    for_pattern_ranges(bytes, [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; ok && i < to; ++i)
            if (p[i] != byte_for(id, i)) {
                ok = false;
                why = "allocation id " + std::to_string(id) + " (" + std::to_string(bytes) + " B): byte " +
                      std::to_string(i) + " is " + std::to_string(p[i]) + ", expected " +
                      std::to_string(byte_for(id, i)) + " (overwritten by an overlapping allocation?)";
            }
    });
    return ok;
}

Worker::Worker(dragonMemoryPoolDescr_t* pool, WorkloadConfig config, std::uint64_t seed, WorkloadCounters& counters,
               HandoffQueue* handoffs, std::atomic<std::uint64_t>* progress)
    : pool_(pool), config_(config), rng_(seed), counters_(counters), handoffs_(handoffs), progress_(progress) {}

Worker::~Worker() {
    for (Live& l : live_) (void)dragon_memory_detach(&l.descr);
}

bool Worker::fail(const std::string& what, dragonError_t rc) {
    failure_ = what + ": " + dragon_getrcstr(rc) + " (" + std::to_string(static_cast<int>(rc)) + ") '" +
               last_error_text() + "'";
    return false;
}

bool Worker::run(std::uint64_t ops) {
    for (std::uint64_t n = 0; ops == 0 || n < ops; ++n) {
        if (!step()) return false;
        counters_.ops.fetch_add(1, std::memory_order_relaxed);
        if (progress_ != nullptr) progress_->fetch_add(1, std::memory_order_relaxed);
    }
    return true;
}

bool Worker::drain() {
    while (!live_.empty())
        if (!do_free(live_.size() - 1)) return false;
    if (handoffs_ != nullptr)
        while (true) {
            {
                std::lock_guard lock(handoffs_->mutex);
                if (handoffs_->items.empty()) break;
            }
            if (!do_handoff_take()) return false;
        }
    return true;
}

bool Worker::step() {
    if (config_.check_every != 0 && ++steps_ % config_.check_every == 0) {
        // The invariants hold at every instant another process can see (a long lock
        // hold, too: more kills land inside the lock).
        if (dragonError_t r = dragonmem_pool_check(pool_); r != DRAGON_SUCCESS) return fail("pool check", r);
    }
    std::uint64_t dice = rng_() % 100;
    if (live_.size() >= config_.max_live) return do_free(rng_() % live_.size());
    if (dice < 40 || live_.empty()) return do_alloc();
    if (dice < 65) return do_free(rng_() % live_.size());
    if (dice < 72) return do_clone();
    if (dice < 79) return do_serialize();
    if (dice < 85) return do_from_id();
    if (dice < 88) return do_pool_attach();
    if (dice < 89) return do_list();
    if (handoffs_ != nullptr) {
        if (dice < 95) return do_handoff_give(rng_() % live_.size());
        return do_handoff_take();
    }
    return do_alloc();
}

bool Worker::do_alloc() {
    // Sizes skewed small: most requests 1..256 B, some up to max_bytes.
    std::size_t bytes = (rng_() % 4 == 0) ? 1 + rng_() % config_.max_bytes : 1 + rng_() % 256;
    std::uint64_t type = config_.type_base + rng_() % 4;
    dragonMemoryDescr_t mem;
    dragonError_t rc;
    std::uint64_t how = rng_() % 10;
    if (how < 4 && config_.type_base == 0) {
        // Plain alloc (type DATA); workers with a type range keep to it (the crash test
        // frees a dead child's leftovers by type).
        rc = dragon_memory_alloc(&mem, pool_, bytes);
        type = DRAGON_MEMORY_ALLOC_DATA;
    } else if (how < 8 || !config_.blocking_allocs) {
        rc = dragon_memory_alloc_type(&mem, pool_, bytes, static_cast<dragonMemoryAllocationType_t>(type));
    } else {
        timespec timeout{0, 2'000'000};
        rc = dragon_memory_alloc_type_blocking(&mem, pool_, bytes, static_cast<dragonMemoryAllocationType_t>(type),
                                               &timeout);
    }
    if (refusal(rc)) {
        counters_.refusals.fetch_add(1, std::memory_order_relaxed);
        if (!live_.empty()) return do_free(rng_() % live_.size());
        return true;
    }
    if (rc != DRAGON_SUCCESS) return fail("alloc of " + std::to_string(bytes) + " B", rc);
    std::uint64_t id = 0;
    void* ptr = nullptr;
    if (dragonError_t r = dragon_memory_id(&mem, &id); r != DRAGON_SUCCESS) return fail("id", r);
    if (dragonError_t r = dragon_memory_get_pointer(&mem, &ptr); r != DRAGON_SUCCESS) return fail("get_pointer", r);
    if (id == 0 || ptr == nullptr) return fail("alloc returned id 0 or a NULL pointer", DRAGON_FAILURE);
    if (config_.verify_patterns) fill_for_id(ptr, bytes, id);
    live_.push_back(Live{mem, id, bytes});
    counters_.allocs.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool Worker::do_free(std::size_t index) {
    Live l = live_[index];
    live_[index] = live_.back();
    live_.pop_back();
    if (config_.verify_patterns) {
        void* ptr = nullptr;
        if (dragonError_t r = dragon_memory_get_pointer(&l.descr, &ptr); r != DRAGON_SUCCESS)
            return fail("get_pointer before free of id " + std::to_string(l.id), r);
        std::string why;
        if (!verify_for_id(ptr, l.bytes, l.id, why)) return fail(why, DRAGON_FAILURE);
    }
    if (dragonError_t r = dragon_memory_free(&l.descr); r != DRAGON_SUCCESS)
        return fail("free of id " + std::to_string(l.id), r);
    counters_.frees.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool Worker::do_clone() {
    Live& l = live_[rng_() % live_.size()];
    std::size_t offset = rng_() % (l.bytes + 1);
    std::size_t length = (l.bytes - offset) == 0 ? 0 : rng_() % (l.bytes - offset + 1);
    dragonMemoryDescr_t clone;
    if (dragonError_t r = dragon_memory_descr_clone(&clone, &l.descr, static_cast<ptrdiff_t>(offset), &length);
        r != DRAGON_SUCCESS)
        return fail("descr_clone", r);
    void* base = nullptr;
    void* view = nullptr;
    std::size_t size = 0;
    dragonError_t r1 = dragon_memory_get_pointer(&l.descr, &base);
    dragonError_t r2 = dragon_memory_get_pointer(&clone, &view);
    dragonError_t r3 = dragon_memory_get_size(&clone, &size);
    (void)dragon_memory_detach(&clone);
    if (r1 != DRAGON_SUCCESS || r2 != DRAGON_SUCCESS || r3 != DRAGON_SUCCESS)
        return fail("clone pointer/size", r1 != DRAGON_SUCCESS ? r1 : r2 != DRAGON_SUCCESS ? r2 : r3);
    if (static_cast<std::uint8_t*>(view) != static_cast<std::uint8_t*>(base) + offset || size != length)
        return fail("clone view at offset " + std::to_string(offset) + " is misplaced", DRAGON_FAILURE);
    counters_.clones.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool Worker::do_serialize() {
    Live& l = live_[rng_() % live_.size()];
    dragonMemorySerial_t ser{};
    if (dragonError_t r = dragon_memory_serialize(&ser, &l.descr); r != DRAGON_SUCCESS) return fail("serialize", r);
    dragonMemoryDescr_t back;
    dragonError_t r = dragon_memory_attach(&back, &ser);
    (void)dragon_memory_serial_free(&ser);
    if (r != DRAGON_SUCCESS) return fail("attach of a serialized allocation", r);
    std::uint64_t id = 0;
    void* a = nullptr;
    void* b = nullptr;
    (void)dragon_memory_id(&back, &id);
    (void)dragon_memory_get_pointer(&l.descr, &a);
    dragonError_t rp = dragon_memory_get_pointer(&back, &b);
    (void)dragon_memory_detach(&back);
    if (rp != DRAGON_SUCCESS) return fail("get_pointer of an attached allocation", rp);
    if (id != l.id || a != b) return fail("attached allocation differs from the original", DRAGON_FAILURE);
    counters_.serial_round_trips.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool Worker::do_from_id() {
    Live& l = live_[rng_() % live_.size()];
    dragonMemoryDescr_t found;
    if (dragonError_t r = dragon_memory_from_id(pool_, l.id, &found); r != DRAGON_SUCCESS)
        return fail("from_id of live id " + std::to_string(l.id), r);
    std::size_t size = 0;
    (void)dragon_memory_get_size(&found, &size);
    (void)dragon_memory_detach(&found);
    if (size != l.bytes) return fail("from_id size differs", DRAGON_FAILURE);
    return true;
}

bool Worker::do_pool_attach() {
    dragonMemoryPoolSerial_t ser{};
    if (dragonError_t r = dragon_memory_pool_serialize(&ser, pool_); r != DRAGON_SUCCESS)
        return fail("pool_serialize", r);
    dragonMemoryPoolDescr_t again;
    dragonError_t r = dragon_memory_pool_attach(&again, &ser);
    (void)dragon_memory_pool_serial_free(&ser);
    if (r != DRAGON_SUCCESS) return fail("pool_attach", r);
    std::uint64_t free_size = 0;
    dragonError_t rf = dragon_memory_pool_get_free_size(&again, &free_size);
    (void)dragon_memory_pool_detach(&again);
    if (rf != DRAGON_SUCCESS) return fail("get_free_size through a second attach", rf);
    counters_.pool_attaches.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool Worker::do_list() {
    dragonMemoryPoolAllocations_t allocs{};
    if (dragonError_t r = dragon_memory_pool_get_allocations(pool_, &allocs); r != DRAGON_SUCCESS)
        return fail("get_allocations", r);
    // Every allocation this worker holds must be listed.
    bool all_found = true;
    for (const Live& l : live_) {
        bool found = false;
        for (dragonULInt i = 0; i < allocs.nallocs && !found; ++i) found = allocs.ids[i] == l.id;
        all_found = all_found && found;
    }
    (void)dragon_memory_pool_allocations_free(&allocs);
    if (!all_found) return fail("a live allocation is missing from get_allocations", DRAGON_FAILURE);
    return true;
}

bool Worker::do_handoff_give(std::size_t index) {
    Live l = live_[index];
    dragonMemorySerial_t ser{};
    if (dragonError_t r = dragon_memory_serialize(&ser, &l.descr); r != DRAGON_SUCCESS)
        return fail("serialize for hand-off", r);
    std::vector<std::uint8_t> bytes(ser.data, ser.data + ser.len);
    (void)dragon_memory_serial_free(&ser);
    bool queued = false;
    {
        std::lock_guard lock(handoffs_->mutex);
        if (handoffs_->items.size() < handoffs_->capacity) {
            handoffs_->items.push_back(std::move(bytes));
            queued = true;
        }
    }
    if (!queued) return do_free(index);  // the queue is full: free it here instead
    live_[index] = live_.back();
    live_.pop_back();
    (void)dragon_memory_detach(&l.descr);
    return true;
}

bool Worker::do_handoff_take() {
    std::vector<std::uint8_t> bytes;
    {
        std::lock_guard lock(handoffs_->mutex);
        if (handoffs_->items.empty()) return true;
        bytes = std::move(handoffs_->items.front());
        handoffs_->items.pop_front();
    }
    dragonMemorySerial_t ser{bytes.size(), bytes.data()};
    dragonMemoryDescr_t mem;
    if (dragonError_t r = dragon_memory_attach(&mem, &ser); r != DRAGON_SUCCESS) return fail("hand-off attach", r);
    std::uint64_t id = 0;
    std::size_t size = 0;
    void* ptr = nullptr;
    (void)dragon_memory_id(&mem, &id);
    (void)dragon_memory_get_size(&mem, &size);
    if (dragonError_t r = dragon_memory_get_pointer(&mem, &ptr); r != DRAGON_SUCCESS)
        return fail("hand-off get_pointer of id " + std::to_string(id), r);
    std::string why;
    if (config_.verify_patterns && !verify_for_id(ptr, size, id, why)) return fail("hand-off: " + why, DRAGON_FAILURE);
    if (dragonError_t r = dragon_memory_free(&mem); r != DRAGON_SUCCESS)
        return fail("hand-off free of id " + std::to_string(id), r);
    counters_.frees.fetch_add(1, std::memory_order_relaxed);
    counters_.handoffs.fetch_add(1, std::memory_order_relaxed);
    return true;
}

}  // namespace dmtest
