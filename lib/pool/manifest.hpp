// The manifest: one record per live allocation {id, offset, requested size, type}, in a
// fixed table of `capacity` slots (max_allocations). Every call holds the pool lock,
// except is_live(), a lock-free peek for get_pointer, and the id calls marked so.
//
// Ids are (counter << slot_bits) | slot: O(1) to look up (mask, then compare), so a
// stale id never resolves to a newer allocation in the same slot. Each counter is
// issued at most once in the pool's life, so ids are unique, never reused and never 0
// (counters start at 1). The pool's counter (PoolHeader::id_counter) is the highest
// counter reserved so far and only moves forward (by CAS, never past the id space):
//   - a thread with a cache entry (thread_cache.hpp) reserves k_id_block_counters at a
//     time and issues them in order from private memory, publishing in its entry's
//     IdBlock (pool_layout.hpp) which part it has not issued yet: one plain store per
//     allocation, to a cache line only that thread writes;
//   - any other allocation (under the lock) reserves one counter and issues it.
// So ids increase within one thread; across threads and processes no order is promised.
// A thread that dies leaves its block's rest unissued forever: the pool's counter has
// passed it, and a new owner of the entry reserves a new block.
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

#include "os/shm_segment.hpp"
#include "pool/pool_backing.hpp"
#include "pool/pool_layout.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace dragonmem::detail {

// Counters a cache-owning thread reserves at once: the pool's counter is written once
// per this many allocations of the thread; a dying thread loses at most this many (the
// id space has at least 2^42 counters).
inline constexpr std::uint64_t k_id_block_counters = 1024;
// Records a dropping scan reads before it drops their pages (256 KiB).
inline constexpr std::uint64_t k_scan_chunk_slots = 4096;

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
    Manifest(PoolHeader* header, ManifestRecord* records, IdBlock* id_blocks, Backing* backing)
        : header_(header), records_(records), id_blocks_(id_blocks), backing_(backing),
          capacity_(header->manifest_capacity),
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

    // Reserves counters for ids: [first, first + got) with 1 <= got <= want; false when
    // the id space is used up. Lock not needed. One CAS on the pool's counter, which
    // never wraps, never passes the limit (ids stay below 2^62) and never goes back: a
    // counter damaged to 2^64-1 refuses every reservation, never yields id 0.
    // Killed after the CAS: the counters reserved are never issued (nobody else gets them).
    bool reserve_counters(std::uint64_t want, std::uint64_t& first, std::uint64_t& got) noexcept {
        std::uint64_t top = header_->id_counter.load(std::memory_order_relaxed);
        for (;;) {
            if (top >= counter_limit_) return false;
            std::uint64_t n = want < counter_limit_ - top ? want : counter_limit_ - top;
            if (header_->id_counter.compare_exchange_weak(top, top + n, std::memory_order_relaxed)) {
                first = top + 1;
                got = n;
                return true;
            }
        }
    }
    std::uint64_t id_of(std::uint64_t counter, std::uint64_t slot) const noexcept {
        return (counter << slot_bits_) | slot;
    }
    // The id block of cache entry `entry` (written by its owner thread only).
    IdBlock& id_block(std::uint32_t entry) noexcept { return id_blocks_[entry]; }
    const IdBlock& id_block(std::uint32_t entry) const noexcept { return id_blocks_[entry]; }

    // Commit point of an allocation: fields first (with the block's size class, a hint
    // for thread caches: pool_layout.hpp), id last (release).
    void publish(std::uint64_t slot, std::uint64_t id, std::uint64_t offset, std::uint64_t requested_bytes,
                 std::uint64_t type, std::uint32_t size_class) noexcept;
    // Commit point of a free: the id word goes from `word` to 0, by CAS because a thread
    // cache may move a live record to cached at the same instant. False if it was not
    // `word` any more.
    bool retire(std::uint64_t slot, std::uint64_t word) noexcept;

    // The live record with this id, or nullptr (cache words are never ids).
    const ManifestRecord* find(std::uint64_t id) const noexcept;
    bool is_live(std::uint64_t id) const noexcept { return find(id) != nullptr; }

    // Whether `id` was issued to an allocation (it may have been freed since): its slot
    // exists, the pool's counter has reserved its counter, and no thread's id block holds
    // it unissued. A descriptor naming a later id is forged: that id would resolve to
    // whatever allocation gets it. Lock-free, O(k_cache_entries) loads.
    // An id block is read end first (acquire), then next: its owner stores next before
    // end when it moves to a new block, so the pair read never spans two blocks, and
    // next only grows within one. An id a descriptor legitimately carries was published
    // (next past it) before its allocation returned, so it is never refused. What may be
    // accepted: an id whose counter was reserved an instant ago and whose block is not
    // published yet, like an id in flight (D26): it is issued, not live, and get_pointer
    // takes the block from the record, never from the descriptor.
    // A live id needs no scan: its record holds it, so it was issued.
    bool issued(std::uint64_t id) const noexcept {
        if (!is_live_id(id) || slot_of(id) >= capacity_) return false;
        if (find(id) != nullptr) return true;  // live: issued (the common case, one load, no scan)
        const std::uint64_t counter = id >> slot_bits_;
        if (counter == 0 || counter > header_->id_counter.load(std::memory_order_acquire)) return false;
        for (std::uint32_t e = 0; e < k_cache_entries; ++e) {
            const std::uint64_t end = id_blocks_[e].end.load(std::memory_order_acquire);
            const std::uint64_t next = id_blocks_[e].next.load(std::memory_order_relaxed);
            if (counter >= next && counter < end) return false;  // reserved by a thread, not issued yet
        }
        return true;
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
    // The same, for a scan that should not keep the manifest resident in this process
    // (the thread caches' take-back, run by any statistics call): the pages of each
    // k_scan_chunk_slots records are dropped from this process's page tables once read
    // (shm_drop_local_pages), so a scan of a million records peaks at one chunk.
    template <typename Fn>
    void for_each_used_dropping(Fn&& fn) const {
        const std::uint64_t extent = used_extent();
        for (std::uint64_t chunk = 0; chunk < extent; chunk += k_scan_chunk_slots) {
            const std::uint64_t end = std::min(extent, chunk + k_scan_chunk_slots);
            for (std::uint64_t slot = chunk; slot < end; ++slot) {
                std::uint64_t word = records_[slot].id.load(std::memory_order_acquire);
                if (word != 0) fn(slot, records_[slot], word);
            }
            shm_drop_local_pages(&records_[chunk], &records_[end - 1] + 1);
        }
    }

    // Rebuilds the free-slot stack from the records (repair).
    void rebuild_free_slots() noexcept;

private:
    PoolHeader* header_ = nullptr;
    ManifestRecord* records_ = nullptr;
    IdBlock* id_blocks_ = nullptr;
    Backing* backing_ = nullptr;
    std::uint64_t capacity_ = 0;
    std::uint32_t slot_bits_ = 0;
    std::uint64_t counter_limit_ = 0;
};

}  // namespace dragonmem::detail
