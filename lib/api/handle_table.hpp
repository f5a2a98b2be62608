// A process-local table that turns C descriptors ({_idx}) into C++ values safely: keys
// carry a generation, so an uninitialised, stale or forged key is rejected instead of
// dereferenced. Lookups take no lock (one bounds check, one load, one compare); inserts
// and erases work on a per-thread stash of free entries, so the fast path has no lock
// and no atomic read-modify-write. Entries never move, so a found pointer stays valid
// until its own key is erased (using a descriptor while another thread frees it is the
// caller's race, as with any handle).
#pragma once

#include "os/cpu_relax.hpp"

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

namespace dragonmem::detail {

template <typename T>
class HandleTable {
public:
    static constexpr std::uint32_t k_chunk_bits = 10;
    static constexpr std::uint32_t k_chunk_entries = 1u << k_chunk_bits;
    static constexpr std::uint32_t k_max_chunks = 1u << 14;  // 16M live handles

    HandleTable() noexcept {
        // A thread's stash goes back to the shared free list when the thread exits. When
        // the process has no key left (PTHREAD_KEYS_MAX taken), an exiting thread's stash
        // is simply not given back: at most k_stash_capacity free entries per such thread
        // stay unused. exit_key_ is then never used: it would name another owner's key.
        exit_key_ok_ = pthread_key_create(&exit_key_, [](void* table) {
                           static_cast<HandleTable*>(table)->flush(stash_, stash_.count);
                       }) == 0;
    }
    HandleTable(const HandleTable&) = delete;
    HandleTable& operator=(const HandleTable&) = delete;

    // Stores `value` and returns its key (never 0), or 0 when out of memory/handles.
    std::uint64_t insert(T&& value) noexcept {
        return insert_with([&](T& slot) { slot = std::move(value); });
    }

    // The same, filling the entry's value in place: `fill(T&)` gets the value an erase
    // left behind (moved-from) and must set every field the caller relies on. Saves
    // building and moving a temporary on the allocation fast path.
    template <typename Fill>
    std::uint64_t insert_with(Fill&& fill) noexcept {
        Stash& stash = stash_;
        if (stash.count == 0 && !refill(stash)) return 0;
        std::uint32_t index = stash.slots[--stash.count];
        Entry& e = entry(index);
        std::uint64_t key = (static_cast<std::uint64_t>(e.generation) << 32) | (index + 1);
        fill(e.value);
        e.key.store(key, std::memory_order_release);
        return key;
    }

    T* find(std::uint64_t key) const noexcept {
        std::uint64_t low = key & 0xFFFFFFFFu;
        if (low == 0) return nullptr;
        std::uint64_t index = low - 1;
        std::uint64_t chunk = index >> k_chunk_bits;
        if (chunk >= k_max_chunks) return nullptr;
        Entry* entries = chunks_[chunk].load(std::memory_order_acquire);
        if (entries == nullptr) return nullptr;
        Entry& e = entries[index & (k_chunk_entries - 1)];
        return e.key.load(std::memory_order_acquire) == key ? &e.value : nullptr;
    }

    // Removes the key's value (destroying it); false for an unknown key. Two threads
    // erasing the same key at once is the caller's race (a double free).
    bool erase(std::uint64_t key) noexcept {
        if (find(key) == nullptr) return false;
        std::uint32_t index = static_cast<std::uint32_t>((key & 0xFFFFFFFFu) - 1);
        Entry& e = entry(index);
        e.key.store(0, std::memory_order_release);
        e.generation += 1;
        T old(std::move(e.value));  // leaves the entry's value empty; destroyed on return
        Stash& stash = stash_;
        if (stash.count == 0) arm_thread_exit();  // this thread may never refill
        if (stash.count == k_stash_capacity) flush(stash, k_stash_capacity / 2);
        stash.slots[stash.count++] = index;
        return true;
    }

    // The table's lock, for the fork handlers only (fork_safety.hpp): held across fork()
    // so that no other thread holds it in the child.
    void lock_for_fork() noexcept { lock(); }
    void unlock_after_fork() noexcept { unlock(); }

private:
    static constexpr std::uint32_t k_none = ~0u;
    static constexpr std::uint32_t k_stash_capacity = 32;

    // Free entries a thread keeps for itself, so insert/erase take no lock and no atomic
    // read-modify-write; the shared free list is touched once per k_stash_capacity / 2.
    // Trivially destructible (flushed at thread exit by exit_key_), so that using it
    // costs no TLS guard check.
    struct Stash {
        std::uint32_t count;
        std::uint32_t slots[k_stash_capacity];
    };

    void arm_thread_exit() noexcept {
        if (exit_key_ok_) pthread_setspecific(exit_key_, this);
    }

    bool refill(Stash& stash) noexcept {
        arm_thread_exit();
        lock();
        while (stash.count < k_stash_capacity / 2) {
            std::uint32_t index;
            if (free_head_ != k_none) {
                index = free_head_;
                free_head_ = entry(index).next_free;
            } else {
                if ((next_index_ >> k_chunk_bits) >= k_max_chunks || !ensure_chunk(next_index_ >> k_chunk_bits)) break;
                index = next_index_++;
            }
            stash.slots[stash.count++] = index;
        }
        unlock();
        return stash.count != 0;
    }

    void flush(Stash& stash, std::uint32_t how_many) noexcept {
        lock();
        for (std::uint32_t i = 0; i < how_many && stash.count != 0; ++i) {
            std::uint32_t index = stash.slots[--stash.count];
            entry(index).next_free = free_head_;
            free_head_ = index;
        }
        unlock();
    }

    static constinit inline thread_local Stash stash_{};  // default TLS model: lib/meson.build
    pthread_key_t exit_key_{};
    bool exit_key_ok_ = false;

    struct Entry {
        std::atomic<std::uint64_t> key{0};
        std::uint32_t generation = 1;
        std::uint32_t next_free = k_none;
        T value{};
    };

    Entry& entry(std::uint32_t index) const noexcept {
        return chunks_[index >> k_chunk_bits].load(std::memory_order_relaxed)[index & (k_chunk_entries - 1)];
    }

    bool ensure_chunk(std::uint32_t chunk) noexcept {
        if (chunks_[chunk].load(std::memory_order_relaxed) != nullptr) return true;
        Entry* fresh = new (std::nothrow) Entry[k_chunk_entries];
        if (fresh == nullptr) return false;
        chunks_[chunk].store(fresh, std::memory_order_release);
        return true;
    }

    void lock() noexcept {
        while (spin_.test_and_set(std::memory_order_acquire))
            while (spin_.test(std::memory_order_relaxed)) cpu_relax();
    }
    void unlock() noexcept { spin_.clear(std::memory_order_release); }

    mutable std::atomic<Entry*> chunks_[k_max_chunks] = {};
    std::atomic_flag spin_ = ATOMIC_FLAG_INIT;
    std::uint32_t free_head_ = k_none;
    std::uint32_t next_index_ = 0;
};

}  // namespace dragonmem::detail
