// A process-local table that turns C descriptors ({_idx}) into C++ values safely: keys
// carry a generation, so an uninitialised, stale or forged key is rejected instead of
// dereferenced. Lookups take no lock; inserts and erases work on a per-thread stash of
// free entries, so the fast path has no lock and no atomic read-modify-write. Entries
// never move, so a found pointer stays valid until its own key is erased (using a
// descriptor while another thread frees it is the caller's race, as with any handle).
//
// A table is constant-initialised to all zero bytes and trivially destructible
// (c_api_handles.cpp defines the two as plain globals, in .bss): using one costs no
// initialisation guard, and it works from any static's constructor or destructor and
// from atexit handlers. Its first chunk of entries is part of it, so the first
// k_chunk_entries handles take one dependent load less to find (the chunk pointer); a
// lookup is then a bounds check, one load and one compare. The thread-exit key is
// created on first use. One table per value type: a thread's stash of free entries
// is per type (a static thread_local of the class), so two tables of the same T would
// hand each other's entries out.
#pragma once

#include "os/cpu_relax.hpp"

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

namespace dragonmem::detail {

// What erasing an entry does to its value: releases what it holds, leaving it empty.
// The next insert overwrites it, so a type may overload this to release less (see
// c_api_handles.hpp).
template <typename T>
void drop_value(T& value) noexcept {
    [[maybe_unused]] T old(std::move(value));  // leaves `value` moved-from; `old` is destroyed on return
}

template <typename T>
class HandleTable {
public:
    static constexpr std::uint32_t k_chunk_bits = 10;
    static constexpr std::uint32_t k_chunk_entries = 1u << k_chunk_bits;
    static constexpr std::uint32_t k_max_chunks = 1u << 14;  // 16M live handles

    constexpr HandleTable() noexcept = default;
    HandleTable(const HandleTable&) = delete;
    HandleTable& operator=(const HandleTable&) = delete;

private:
    struct Entry;

public:
    // A free entry taken by reserve(), not yet visible to lookups.
    class Slot {
    public:
        // As the entry's last erase left it (drop_value): set every field you rely on.
        T& value() const noexcept { return entry_->value; }

    private:
        friend class HandleTable;
        Entry* entry_ = nullptr;
        std::uint32_t index_ = 0;
    };

    // An entry lookup() found: its value, and what erase() needs to skip a second lookup.
    class Found {
    public:
        explicit operator bool() const noexcept { return entry_ != nullptr; }
        T* value() const noexcept { return entry_ != nullptr ? &entry_->value : nullptr; }

    private:
        friend class HandleTable;
        Entry* entry_ = nullptr;
        std::uint64_t key_ = 0;
    };

    // Stores `value` and returns its key (never 0), or 0 when out of memory/handles.
    std::uint64_t insert(T&& value) noexcept {
        Slot slot;
        if (!reserve(slot)) return 0;
        slot.value() = std::move(value);
        return publish(slot);
    }

    // Insertion in three steps, so that a value can be built in place and the entry
    // handed back when building it fails: reserve() takes a free entry from this thread's
    // stash (false when out of memory/handles), the caller fills slot.value(), then
    // publish() makes the key valid and returns it (never 0), or unreserve() gives the
    // entry back. Nothing is visible to lookups before publish().
    bool reserve(Slot& out) noexcept {
        Stash& stash = stash_;
        if (stash.count == 0 && !refill(stash)) [[unlikely]]
            return false;
        out.index_ = stash.slots[--stash.count];
        out.entry_ = &entry(out.index_);
        return true;
    }
    std::uint64_t publish(const Slot& slot) noexcept {
        // Generation 1 for an entry's first key: a key is never small.
        std::uint64_t key = (static_cast<std::uint64_t>(slot.entry_->generation + 1) << 32) | (slot.index_ + 1);
        slot.entry_->key.store(key, std::memory_order_release);
        return key;
    }
    void unreserve(const Slot& slot) noexcept { stash_.slots[stash_.count++] = slot.index_; }  // room: just taken

    Found lookup(std::uint64_t key) const noexcept {
        Found found;
        std::uint64_t low = key & 0xFFFFFFFFu;
        if (low == 0) return found;
        std::uint64_t index = low - 1;
        std::uint64_t chunk = index >> k_chunk_bits;
        if (chunk >= k_max_chunks) return found;
        Entry* entries;
        if (chunk == 0) [[likely]] {
            entries = first_chunk_;
        } else {
            entries = chunks_[chunk].load(std::memory_order_acquire);
            if (entries == nullptr) return found;
        }
        Entry& e = entries[index & (k_chunk_entries - 1)];
        if (e.key.load(std::memory_order_acquire) != key) return found;
        found.entry_ = &e;
        found.key_ = key;
        return found;
    }
    T* find(std::uint64_t key) const noexcept { return lookup(key).value(); }

    // Removes the key's value (destroying it); false for an unknown key. Two threads
    // erasing the same key at once is the caller's race (a double free).
    bool erase(std::uint64_t key) noexcept {
        Found found = lookup(key);
        if (!found) return false;
        erase(found);
        return true;
    }

    // Removes what lookup() found (it must still be there: the same thread's race rule).
    void erase(const Found& found) noexcept {
        Entry& e = *found.entry_;
        const auto index = static_cast<std::uint32_t>((found.key_ & 0xFFFFFFFFu) - 1);
        e.key.store(0, std::memory_order_release);
        e.generation += 1;
        drop_value(e.value);
        Stash& stash = stash_;
        if (stash.count == 0) [[unlikely]]
            arm_thread_exit();  // this thread may never refill
        if (stash.count == k_stash_capacity) [[unlikely]]
            flush(stash, k_stash_capacity / 2);
        stash.slots[stash.count++] = index;
    }

    // The table's lock, for the fork handlers only (fork_safety.hpp): held across fork()
    // so that no other thread holds it in the child.
    void lock_for_fork() noexcept { lock(); }
    void unlock_after_fork() noexcept { unlock(); }

private:
    static constexpr std::uint32_t k_stash_capacity = 32;

    // Free entries a thread keeps for itself, so insert/erase take no lock and no atomic
    // read-modify-write; the shared free list is touched once per k_stash_capacity / 2.
    // Trivially destructible (flushed at thread exit by exit_key_), so that using it
    // costs no TLS guard check.
    struct Stash {
        std::uint32_t count;
        std::uint32_t slots[k_stash_capacity];
    };

    // A thread's stash goes back to the shared free list when the thread exits. When the
    // process has no key left (PTHREAD_KEYS_MAX taken), an exiting thread's stash is
    // simply not given back: at most k_stash_capacity free entries per such thread stay
    // unused. exit_key_ is then never used: it would name another owner's key.
    // The four below are off the fast path (once per k_stash_capacity / 2 operations at
    // most, or once per process): out of line, so that the inlined insert and erase
    // stay small.
    [[gnu::noinline, gnu::cold]] void arm_thread_exit() noexcept {
        if (!exit_key_made_.load(std::memory_order_acquire)) make_exit_key();
        if (exit_key_ok_) pthread_setspecific(exit_key_, this);
    }

    [[gnu::noinline, gnu::cold]] void make_exit_key() noexcept {
        lock();
        if (!exit_key_made_.load(std::memory_order_relaxed)) {
            exit_key_ok_ = pthread_key_create(&exit_key_, [](void* table) {
                               static_cast<HandleTable*>(table)->flush(stash_, stash_.count);
                           }) == 0;
            exit_key_made_.store(true, std::memory_order_release);
        }
        unlock();
    }

    [[gnu::noinline, gnu::cold]] bool refill(Stash& stash) noexcept {
        arm_thread_exit();
        lock();
        while (stash.count < k_stash_capacity / 2) {
            std::uint32_t index;
            if (free_head_ != 0) {
                index = free_head_ - 1;
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

    [[gnu::noinline, gnu::cold]] void flush(Stash& stash, std::uint32_t how_many) noexcept {
        lock();
        for (std::uint32_t i = 0; i < how_many && stash.count != 0; ++i) {
            std::uint32_t index = stash.slots[--stash.count];
            entry(index).next_free = free_head_;
            free_head_ = index + 1;
        }
        unlock();
    }

    static constinit inline thread_local Stash stash_{};  // default TLS model: lib/meson.build
    pthread_key_t exit_key_{};
    bool exit_key_ok_ = false;  // written once, before exit_key_made_
    std::atomic<bool> exit_key_made_{false};

    struct Entry {
        std::atomic<std::uint64_t> key{0};
        std::uint32_t generation = 0;  // keys carry generation + 1
        std::uint32_t next_free = 0;   // the next free entry's index + 1 (0: none)
        T value{};
    };

    Entry& entry(std::uint32_t index) const noexcept {
        if (index < k_chunk_entries) return first_chunk_[index];
        return chunks_[index >> k_chunk_bits].load(std::memory_order_relaxed)[index & (k_chunk_entries - 1)];
    }

    bool ensure_chunk(std::uint32_t chunk) noexcept {
        if (chunk == 0 || chunks_[chunk].load(std::memory_order_relaxed) != nullptr) return true;
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

    mutable std::atomic<Entry*> chunks_[k_max_chunks] = {};  // [0] unused: first_chunk_
    // The first chunk is part of the table (zero bytes: .bss, pages touched as used), so
    // the first k_chunk_entries handles are found without loading a chunk pointer: one
    // dependent load less on the path of every call that names a descriptor.
    mutable Entry first_chunk_[k_chunk_entries];
    std::atomic_flag spin_ = ATOMIC_FLAG_INIT;
    std::uint32_t free_head_ = 0;  // the first free entry's index + 1 (0: none)
    std::uint32_t next_index_ = 0;
};

}  // namespace dragonmem::detail
