// The manifest: one record per live allocation {id, offset, requested size, type}, in a
// fixed table of `capacity` slots (max_allocations). Every call holds the pool lock,
// except is_live(), a lock-free peek for get_pointer.
//
// Ids are (counter << slot_bits) | slot with a pool-wide counter: unique for the pool's
// life, strictly increasing, never 0, and O(1) to look up (mask, then compare), so a
// stale id never resolves to a newer allocation in the same slot. The counter is taken
// with one fetch_add, so ids increase in the order allocations are made, pool-wide,
// including those a thread cache serves without the lock.
//
// A record's id word (the commit point) is one of:
//   0                                  free slot
//   id < 2^62                          a live allocation
//   k_cached_bit | entry               a block parked in thread-cache `entry`
//   k_cached_bit | k_claimed_bit | entry   that thread is turning it into an allocation
// Transitions among the last three happen without the lock, each by one CAS on the id
// word (thread_cache.hpp); 0 <-> used happens only under the lock.
//
// Crash story: a record's `id` is its commit point (see ManifestRecord). The free-slot
// stack and the counters are derived state that repair rebuilds from the records.
// Slots at or above `slot_hwm` were never used: creation does not touch the table, so a
// million-slot manifest costs no memory until used. Records are backed (pool_backing.hpp)
// before the high-water mark passes them, and nothing reads past the backed extent, so
// a full /dev/shm fails an allocation instead of faulting.
#pragma once

#include "pool/pool_backing.hpp"
#include "pool/pool_layout.hpp"

#include <atomic>
#include <cstdint>

namespace dragonmem::detail {

inline constexpr std::uint64_t k_cached_bit = 1ULL << 63;
inline constexpr std::uint64_t k_claimed_bit = 1ULL << 62;
inline constexpr std::uint64_t k_cache_entry_mask = 0xFF;
static_assert(k_cache_entries <= k_cache_entry_mask + 1);

inline constexpr std::uint64_t cached_word(std::uint32_t entry) noexcept { return k_cached_bit | entry; }
inline constexpr std::uint64_t claimed_word(std::uint32_t entry) noexcept {
    return k_cached_bit | k_claimed_bit | entry;
}
inline constexpr bool is_cache_word(std::uint64_t word) noexcept { return (word & k_cached_bit) != 0; }
inline constexpr bool is_live_id(std::uint64_t word) noexcept { return word != 0 && (word & k_cached_bit) == 0; }

class Manifest {
public:
    Manifest() = default;
    Manifest(PoolHeader* header, ManifestRecord* records, Backing* backing)
        : header_(header), records_(records), backing_(backing), capacity_(header->manifest_capacity),
          slot_bits_(header->id_slot_bits), counter_limit_(((k_claimed_bit - 1) >> slot_bits_)) {}

    std::uint64_t capacity() const noexcept { return capacity_; }
    std::uint32_t slot_bits() const noexcept { return slot_bits_; }
    std::uint64_t slot_of(std::uint64_t id) const noexcept { return id & ((std::uint64_t{1} << slot_bits_) - 1); }

    // Whether take_slot() may be called. A never-used slot's record is backed first: false
    // also when /dev/shm cannot back it (then full() is false and the Backing's failed()
    // says why).
    bool has_free_slot() noexcept {
        if (header_->slot_free_head != 0) return true;
        std::uint64_t hwm = header_->slot_hwm;
        return hwm < capacity_ && (hwm < backing_->records_backed() || backing_->back_records(hwm + 1));
    }
    // Every slot is in use (has_free_slot() is false for lack of slots, not of memory).
    bool full() const noexcept { return header_->slot_free_head == 0 && header_->slot_hwm >= capacity_; }
    // Call only after has_free_slot().
    std::uint64_t take_slot() noexcept;
    // The slot's record must already be retired (id 0).
    void give_back_slot(std::uint64_t slot) noexcept;

    // The next id for `slot`; false when the id space is exhausted. Lock not needed.
    // A counter damaged to 2^64-1 wraps to 0 here: refused like any counter past the
    // limit (counter - 1 wraps to the top), never the id 0 of zero-byte allocations.
    bool next_id(std::uint64_t slot, std::uint64_t& id_out) noexcept {
        std::uint64_t counter = header_->id_counter.fetch_add(1, std::memory_order_relaxed) + 1;
        if (counter - 1 >= counter_limit_) return false;
        id_out = (counter << slot_bits_) | slot;
        return true;
    }

    // Commit point of an allocation: fields first, id last (release).
    void publish(std::uint64_t slot, std::uint64_t id, std::uint64_t offset, std::uint64_t requested_bytes,
                 std::uint64_t type) noexcept;
    // Commit point of a free: the id word goes from `word` to 0, by CAS because a thread
    // cache may move a live record to cached at the same instant. False if it was not
    // `word` any more.
    bool retire(std::uint64_t slot, std::uint64_t word) noexcept;

    // The live record with this id, or nullptr (cache words are never ids).
    const ManifestRecord* find(std::uint64_t id) const noexcept;
    bool is_live(std::uint64_t id) const noexcept { return find(id) != nullptr; }

    // Whether `id` was ever handed out (it may have been freed since): its slot exists and
    // the id counter has reached its counter part. A descriptor naming a later id is
    // forged: that id would resolve to whatever allocation gets it.
    bool issued(std::uint64_t id) const noexcept {
        return is_live_id(id) && slot_of(id) < capacity_ &&
               (id >> slot_bits_) <= header_->id_counter.load(std::memory_order_acquire);
    }

    // The fields of live allocation `id`, lock-free (get_pointer's path, and attach's
    // check). Read like a seqlock, between two loads of the id word: when both read `id`,
    // the fields are this id's, because ids are never reissued and whoever rewrites a
    // retired record's fields is ordered after the retiring CAS (retire() fences). The
    // thread-cache path rewrites only size and type of a record it re-issues, never the
    // offset, so even a racing read there names the same block.
    struct LiveFields {
        std::uint64_t offset = 0;
        std::uint64_t requested_bytes = 0;
        std::uint64_t type = 0;
    };
    bool read_live(std::uint64_t id, LiveFields& out) const noexcept {
        std::uint64_t slot = slot_of(id);
        // Past the backed records no slot was ever used, and their pages must not be
        // touched (a forged id's slot may lie there).
        if (!is_live_id(id) || slot >= backing_->records_backed()) return false;
        const ManifestRecord& rec = records_[slot];
        if (rec.id.load(std::memory_order_acquire) != id) return false;
        out.offset = rec.offset.load(std::memory_order_relaxed);
        out.requested_bytes = rec.requested_bytes.load(std::memory_order_relaxed);
        out.type = rec.type.load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        return rec.id.load(std::memory_order_relaxed) == id;
    }

    const ManifestRecord& record(std::uint64_t slot) const noexcept { return records_[slot]; }
    ManifestRecord& record(std::uint64_t slot) noexcept { return records_[slot]; }
    // Slots below this may be live; scans stop here (and never pass the backed records,
    // whatever a damaged header says).
    std::uint64_t used_extent() const noexcept {
        std::uint64_t backed = backing_->records_backed();
        return header_->slot_hwm < backed ? header_->slot_hwm : backed;
    }

    // Live allocations only.
    template <typename Fn>
    void for_each_live(Fn&& fn) const {
        std::uint64_t extent = used_extent();
        for (std::uint64_t slot = 0; slot < extent; ++slot) {
            std::uint64_t id = records_[slot].id.load(std::memory_order_acquire);
            if (is_live_id(id)) fn(slot, records_[slot], id);
        }
    }
    // Every record in use: live allocations and cached blocks (fn gets the id word).
    template <typename Fn>
    void for_each_used(Fn&& fn) const {
        std::uint64_t extent = used_extent();
        for (std::uint64_t slot = 0; slot < extent; ++slot) {
            std::uint64_t word = records_[slot].id.load(std::memory_order_acquire);
            if (word != 0) fn(slot, records_[slot], word);
        }
    }

    // Rebuilds the free-slot stack from the records (repair).
    void rebuild_free_slots() noexcept;

private:
    PoolHeader* header_ = nullptr;
    ManifestRecord* records_ = nullptr;
    Backing* backing_ = nullptr;
    std::uint64_t capacity_ = 0;
    std::uint32_t slot_bits_ = 0;
    std::uint64_t counter_limit_ = 0;
};

}  // namespace dragonmem::detail
