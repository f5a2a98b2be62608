// The pool's side of the per-thread block caches (pool_caches.hpp): the lock-free alloc
// and free, and the locked refill, flush and take-back. The protocol and its crash
// argument are in thread_cache.hpp; each shared update below says what a survivor sees
// if we die there.
#include "pool/pool_caches.hpp"

#include "pool/robust_lock.hpp"
#include "os/futex.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <bit>
#include <new>

namespace dragonmem::detail {

namespace {

constexpr std::uint64_t bit(std::uint64_t e) noexcept { return std::uint64_t{1} << e; }

// A thread whose start time could not be read has no reliable owner word: it caches nothing.
bool owner_word_known(std::uint64_t word) noexcept { return (word >> 32) != 0; }

// Used records one sweep of exited threads' entries may scan per entry it frees
// (sweep_exited_threads_locked).
constexpr std::uint64_t k_records_per_swept_entry = 65536;

}  // namespace

std::uint64_t dead_cache_entries(const PoolHeader& header, std::uint64_t among) noexcept {
    std::uint64_t dead = 0;
    for (std::uint32_t e = 0; e < k_cache_entries; ++e)
        if (((among >> e) & 1) != 0 &&
            owner_word_is_dead(header.cache_entries[e].owner.load(std::memory_order_relaxed)))
            dead |= bit(e);
    return dead;
}

void release_cache_entries(PoolHeader& header, std::uint64_t entries) noexcept {
    // Callers took back these entries' records first. Killed before a store: the entry
    // still names its (dead or departed) owner and the next sweep releases it; after it:
    // free for the next thread, and it names no record.
    for (std::uint32_t e = 0; e < k_cache_entries; ++e)
        if (((entries >> e) & 1) != 0) header.cache_entries[e].owner.store(0, std::memory_order_relaxed);
}

bool PoolCaches::alloc_from_cache(ThreadCache& cache, std::uint32_t size_class, std::uint64_t bytes,
                                  std::uint64_t type, BlockInfo& out) noexcept {
    MagazineHead* head = magazine_head(cache, size_class);
    if (head == nullptr || head->count == 0) return false;
    MagazineHead& mag = *head;
    std::uint32_t* const slots = magazine_slots(cache, size_class);  // count > 0: its group exists
    const std::uint64_t cached = cached_word(cache.entry);
    // The class's blocks, and the requests it serves: (lower, block_bytes]. Both are at
    // most heap / 64 (a class is cached only if its cap, budget / block bytes, is > 0),
    // and size_class >= 1 (class 0 has no blocks: its cap is 0, its count stays 0).
    const std::uint32_t g = heap_->granule_order();
    const std::uint64_t block_bytes = std::uint64_t{k_cached_class_granules[size_class]} << g;
    const std::uint64_t lower = std::uint64_t{k_cached_class_granules[size_class - 1]} << g;
    const std::uint64_t align_mask = heap_->alignment_mask_of(block_bytes);
    const std::uint64_t last_offset = heap_->heap_bytes() - block_bytes;
    while (mag.count != 0) {
        const std::uint32_t slot = magazine_pop(mag, slots);
        ManifestRecord& rec = manifest_->record(slot);
        std::uint64_t expected = cached;
        // Claim: from here only this thread (or, once it is dead, a survivor) changes it.
        if (!rec.id.compare_exchange_strong(expected, claimed_word(cache.entry), std::memory_order_acquire,
                                            std::memory_order_relaxed))
            continue;  // taken back to the heap since it was cached: a stale slot
        std::uint64_t offset = rec.offset.load(std::memory_order_relaxed);
        // The record's block: of this class (its request in (lower, block_bytes], so its
        // block of this size), aligned as that size must be and inside the heap (what
        // TlsfHeap::block_of checks, with the class known: a few compares).
        const std::uint64_t requested = rec.requested_bytes.load(std::memory_order_relaxed);
        if (requested - lower - 1 >= block_bytes - lower || (offset & align_mask) != 0 || offset > last_offset) {
            // A stale duplicate of a slot that was taken back, then cached again at
            // another size (the copy pushed then is the valid one), or a record damaged
            // in shared memory (take-back frees no block for it). Unclaim, drop.
            rec.id.store(cached, std::memory_order_release);
            continue;
        }
        std::uint64_t counter = 0;
        if (!take_counter(cache, counter)) {
            rec.id.store(cached, std::memory_order_release);
            magazine_push(mag, slots, slot);
            return false;  // the locked path reports the exhausted id space
        }
        const std::uint64_t id = manifest_->id_of(counter, slot);
        // Killed from the claim to the id store: the record reads claimed by a dead
        // thread, and a survivor frees the block (repair, or a take-back).
        rec.requested_bytes.store(bytes, std::memory_order_relaxed);
        rec.type.store(type, std::memory_order_relaxed);
        rec.size_class.store(size_class, std::memory_order_relaxed);  // checked above: the block's
        rec.id.store(id, std::memory_order_release);                   // commit point: a live allocation
        // Statistics, on the id block's line this thread just wrote (take_counter). Killed
        // before this store: the allocation is made and uncounted, nothing else.
        manifest_->id_block(cache.entry).allocs.store(++cache.allocs, std::memory_order_relaxed);
        out = BlockInfo{id, type, offset, bytes};
        return true;
    }
    return false;
}

bool PoolCaches::take_counter(ThreadCache& cache, std::uint64_t& counter) noexcept {
    IdBlock& block = manifest_->id_block(cache.entry);
    if (cache.id_next == cache.id_end) {
        std::uint64_t first = 0;
        std::uint64_t got = 0;
        if (!manifest_->reserve_counters(k_id_block_counters, first, got)) return false;
        // Killed from the reservation to the end store: the block is never issued (the
        // pool's counter has passed it). Next first: the pair (first, old end) is an empty
        // range, so a reader never sees the new block spanning counters of other threads.
        block.next.store(first, std::memory_order_relaxed);
        block.end.store(first + got, std::memory_order_release);
        cache.id_next = first;
        cache.id_end = first + got;
    }
    counter = cache.id_next++;
    // Issued from here on (attach accepts it). The caller's commit store of the id is a
    // release, so this store is visible before the id is. Killed after it: the counter
    // is issued to no allocation, never to another.
    block.next.store(cache.id_next, std::memory_order_relaxed);
    return true;
}

bool PoolCaches::free_to_cache(ThreadCache& cache, std::uint64_t id) noexcept {
    // A sleeper waits for a free to wake it: leave that to the locked path. (A sleeper
    // that sets the flag just after this read is woken by its 100 ms re-check at worst.)
    if (header_->has_waiters.load(std::memory_order_relaxed) != 0) return false;
    std::uint64_t slot = manifest_->slot_of(id);
    if (!is_live_id(id) || slot >= manifest_->capacity()) return false;  // the locked path explains
    ManifestRecord& rec = manifest_->record(slot);
    if (rec.id.load(std::memory_order_acquire) != id) return false;
    // Read while the record holds this id: its fields cannot change until it is freed,
    // and the CAS below proves it was not.
    // The block's class, as the allocation wrote it (a hint, pool_layout.hpp: a wrong one
    // files the block where the allocation that pops it drops it; one past the cached
    // classes, or of a class with no cap, goes to the locked path).
    const std::uint32_t size_class = rec.size_class.load(std::memory_order_relaxed);
    MagazineHead* head = magazine_head(cache, size_class);
    if (head == nullptr || head->count >= head->cap) return false;  // full or not cached: the locked path flushes
    MagazineHead& mag = *head;
    std::uint64_t expected = id;
    // Commit point of the free. Killed after it: the block is cached by a dead thread.
    if (!rec.id.compare_exchange_strong(expected, cached_word(cache.entry), std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
        return false;  // freed by someone else meanwhile: the locked path reports it
    magazine_push(mag, magazine_slots(cache, size_class), static_cast<std::uint32_t>(slot));  // cap > 0: its group exists
    mag.recycled = true;
    // Statistics: the thread's own id-block line, which no other thread writes. Killed
    // before this store: the free is done and uncounted, nothing else.
    manifest_->id_block(cache.entry).frees.store(++cache.frees, std::memory_order_relaxed);
    return true;
}

bool PoolCaches::retire_locked(std::uint64_t slot, std::uint64_t word, HeapBlock& block) noexcept {
    ManifestRecord& rec = manifest_->record(slot);
    if (!manifest_->retire(slot, word)) return false;
    // Retired: killed from here on, repair rebuilds the heap without this block (and the
    // free-slot stack without this slot) whether or not it was given back yet.
    // An implausible record (overwritten shared memory) names no block (bytes 0): the
    // checker reports its bytes as lost and a repair recovers them.
    if (!heap_->block_of(rec.requested_bytes.load(std::memory_order_relaxed),
                         rec.offset.load(std::memory_order_relaxed), block))
        block = HeapBlock{0, 0};
    manifest_->give_back_slot(slot);  // reuses the record's offset word: read above
    header_->live_count -= 1;
    return true;
}

int PoolCaches::take_back_locked(std::uint64_t slot, std::uint64_t word) noexcept {
    HeapBlock block{};
    if (!retire_locked(slot, word, block)) return -1;
    if (block.bytes == 0) return 0;
    heap_->free(block.offset, block.bytes);
    return static_cast<int>(heap_->class_of(block.bytes));
}

bool PoolCaches::announce_frees_locked() noexcept {
    // Lock holders change wake_seq, so a plain increment suffices. The one writer without
    // the lock, destroy --force, adds with fetch_add: should this store overwrite its
    // addition, the word has changed all the same, and it wakes every sleeper itself.
    header_->wake_seq.store(header_->wake_seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    bool wake = header_->has_waiters.load(std::memory_order_relaxed) != 0;
    if (wake) header_->has_waiters.store(0, std::memory_order_relaxed);
    return wake;
}

ThreadCache* PoolCaches::cache_for_this_thread_locked(PoolMapping* mapping, std::uint64_t epoch) noexcept {
    ThreadCache* cache = thread_cache_find(mapping, epoch);
    if (cache == nullptr) cache = thread_cache_create(mapping, epoch);
    if (cache == nullptr) return nullptr;
    if (cache->entry != k_no_entry) {
        // Still ours? Only a survivor that judged us dead would have released it.
        if (header_->cache_entries[cache->entry].owner.load(std::memory_order_relaxed) == current_owner_word())
            return cache;
        // Not ours any more. Our lock-free frees since the release may have parked blocks
        // under an entry we no longer own, after a scan had cleared the hint: set it, so
        // that the next take-back finds them. (Killed before this store: those blocks
        // stay cached under an entry whose owner is gone; check reports them.)
        header_->cache_records_possible = 1;
        // Its slots and ids are stale: forget them, and stay uncached.
        cache->drop_magazines();
        cache->entry = k_no_entry;
        cache->gave_up = true;
        cache->id_next = cache->id_end = 0;
        cache->allocs = cache->frees = 0;  // loaded from an entry's id block when one is claimed
        return cache;
    }
    // One-off users (a CLI command, one allocation) never claim an entry: the second
    // locked allocation of this thread does.
    if (cache->gave_up || ++cache->slow_allocs < 2) return cache;
    const std::uint64_t me = current_owner_word();
    if (!owner_word_known(me)) return cache;
    const auto pid = static_cast<std::uint32_t>(::getpid());
    if (my_entries_pid_ != pid) {
        // A forked child: the entries recorded here are its parent's (this object was
        // copied by fork). They are not ours to hand back; start our own record.
        my_entries_ = 0;
        my_entries_pid_ = pid;
    }
    // Threads of this process that cached and have exited since: their blocks go back to
    // the heap before this thread builds its own cache. Left parked (until every entry is
    // taken), each generation of short-lived threads would carve its cache from memory
    // the heap had not used yet: measured with the mixed workload (fresh threads per
    // rep), each new pair of threads backed pages never used before with ~15,600 system
    // calls (~2,100 with this sweep), made under the lock, which other threads wait out.
    sweep_exited_threads_locked();
    for (int pass = 0; pass < 2 && cache->entry == k_no_entry; ++pass) {
        if (pass == 1) sweep_dead_entries_locked();  // every entry taken: free those of dead threads
        for (std::uint32_t e = 0; e < k_cache_entries; ++e) {
            CacheEntry& entry = header_->cache_entries[e];
            if (entry.owner.load(std::memory_order_relaxed) != 0) continue;
            header_->cache_records_possible = 1;  // before the entry can produce a cache word
            // Killed right after: the entry names a dead thread and holds nothing.
            entry.owner.store(me, std::memory_order_relaxed);
            entry.pid.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
            my_entries_ |= bit(e);
            my_entry_owner_[e] = me;
            cache->entry = e;
            // The entry's counts go on from where its last owner left them.
            cache->allocs = manifest_->id_block(e).allocs.load(std::memory_order_relaxed);
            cache->frees = manifest_->id_block(e).frees.load(std::memory_order_relaxed);
            break;
        }
    }
    if (cache->entry == k_no_entry) {
        cache->gave_up = true;  // all entries held by live threads: this thread stays uncached
        return cache;
    }
    return cache;
}

void PoolCaches::refill_locked(ThreadCache& cache, std::uint32_t size_class) noexcept {
    if (cache.entry == k_no_entry) return;
    const std::uint32_t group_index = size_class / k_heap_sl_count;
    if (group_index >= k_cache_groups) return;  // blocks this large are never cached
    MagazineGroup*& group = cache.groups[group_index];
    MagazineHead* const heads = &cache.heads[std::size_t{group_index} * k_heap_sl_count];
    if (group == nullptr) {
        group = new (std::nothrow) MagazineGroup();
        if (group == nullptr) return;  // no memory: this class stays uncached
        // Blocks a thread may hold per class: bounded in count and bytes (thread_cache.hpp),
        // and a small share of a small pool (0: blocks this large are not cached).
        const std::uint64_t budget = std::min(k_cache_budget_bytes, header_->heap_bytes / 64);
        for (std::uint32_t i = 0; i < k_heap_sl_count; ++i) {
            const std::uint64_t bytes = heap_->class_bytes(group_index * k_heap_sl_count + i);
            const std::uint64_t by_bytes =
                bytes == 0 ? 0 : std::clamp(k_cache_class_bytes / bytes, k_magazine_min_slots, k_magazine_slots);
            heads[i].cap = static_cast<std::uint8_t>(bytes == 0 ? 0 : std::min(by_bytes, budget / bytes));
        }
    }
    MagazineHead& mag = heads[size_class % k_heap_sl_count];
    std::uint32_t* const slots = magazine_slots(cache, size_class);  // its group exists (above)
    const std::uint64_t block_bytes = heap_->class_bytes(size_class);
    if (mag.cap == 0 || !mag.recycled) return;
    if (header_->has_waiters.load(std::memory_order_relaxed) != 0) return;  // others need the memory
    std::uint64_t want = std::min<std::uint32_t>(mag.warm, mag.cap - mag.count);
    want = std::min(want, std::max(k_refill_min_blocks, k_refill_bytes / block_bytes));
    mag.warm = static_cast<std::uint8_t>(std::min<std::uint32_t>(mag.cap, mag.warm == 0 ? 1u : mag.warm * 2u));
    // Leave most of the pool to others: at most 1/16 of the free slots and bytes.
    want = std::min(want, (manifest_->capacity() - header_->live_count) / 16);
    want = std::min(want, (heap_->free_bytes() / 16) / block_bytes);
    if (want == 0) return;
    // The blocks side by side in runs: each run as many as the free block that best fits
    // one of them holds (one list search and one split per run, tlsf_heap.hpp). Killed
    // after a carve: repair rebuilds the heap from the manifest, so the blocks not yet
    // committed below are free again.
    const std::uint64_t cached = cached_word(cache.entry);
    bool slots_left = true;
    while (want != 0 && slots_left) {
        std::uint64_t run_left = want;
        std::uint64_t run_at = heap_->alloc_run(block_bytes, run_left);
        if (run_at == k_nil || run_at == k_heap_corrupt) break;  // the next allocation repairs
        want -= run_left;
        for (; run_left != 0; --run_left, run_at += block_bytes) {
            if (!manifest_->has_free_slot()) {
                slots_left = false;
                break;
            }
            std::uint64_t slot = manifest_->take_slot();
            ManifestRecord& rec = manifest_->record(slot);
            rec.offset.store(run_at, std::memory_order_relaxed);
            rec.requested_bytes.store(block_bytes, std::memory_order_relaxed);
            rec.type.store(0, std::memory_order_relaxed);
            rec.size_class.store(size_class, std::memory_order_relaxed);
            // Commit point. Killed before it: the slot reads free and repair frees the
            // block (and the rest of the run).
            rec.id.store(cached, std::memory_order_release);
            header_->live_count += 1;
            magazine_push(mag, slots, static_cast<std::uint32_t>(slot));
        }
        // Out of slots before the run was used up: its rest goes back, as one block.
        if (run_left != 0) heap_->free(run_at, run_left * block_bytes);
    }
    // The high-water mark counts manifest records in use, cached blocks included.
    if (header_->live_count > header_->max_live_count) header_->max_live_count = header_->live_count;
}

void PoolCaches::flush_magazine_locked(ThreadCache& cache, std::uint32_t size_class) noexcept {
    MagazineHead* head = magazine_head(cache, size_class);
    if (head == nullptr || head->count == 0) return;
    MagazineHead& mag = *head;
    std::uint32_t* const slots = magazine_slots(cache, size_class);  // count > 0: its group exists
    const std::uint64_t cached = cached_word(cache.entry);
    // Retire the records first, then give the heap their blocks sorted by offset, each
    // run of blocks side by side as one block: the same heap as freeing them one by one
    // (coalescing is immediate), for one list update per run instead of per block (a
    // refill carves its blocks as one run, so a magazine's blocks are often neighbours).
    // Killed between a retire and the heap's free: repair rebuilds the heap without the
    // retired records' blocks, as for any free.
    HeapBlock blocks[k_magazine_slots];
    std::uint32_t n = 0;
    while (mag.count > mag.cap / 2) {
        HeapBlock block{};
        // A stale slot (taken back or claimed since) fails its retire: a no-op.
        if (retire_locked(magazine_pop(mag, slots), cached, block) && block.bytes != 0) blocks[n++] = block;
    }
    std::sort(blocks, blocks + n, [](const HeapBlock& a, const HeapBlock& b) { return a.offset < b.offset; });
    for (std::uint32_t i = 0; i < n;) {
        HeapBlock run = blocks[i++];
        // Exactly adjacent only: overlapping blocks (a damaged manifest) are freed apart, as before.
        while (i < n && blocks[i].offset == run.offset + run.bytes) run.bytes += blocks[i++].bytes;
        heap_->free(run.offset, run.bytes);
    }
}

std::uint64_t PoolCaches::reclaim_cached_locked(const ReclaimPlan& plan, std::uint64_t* left,
                                                 std::uint64_t* claimed_left) noexcept {
    if (left != nullptr) *left = 0;
    if (claimed_left != nullptr) *claimed_left = 0;
    if (header_->cache_records_possible == 0) return 0;  // no thread has cached since the last clean scan
    std::uint64_t taken = 0;
    std::uint64_t remaining = 0;
    std::uint64_t claimed_entries = 0;  // entries with a claimed (in-flight) record
    manifest_->for_each_used_dropping([&](std::uint64_t slot, const ManifestRecord&, std::uint64_t word) {
        if (!is_cache_word(word)) return;
        std::uint64_t e = word & k_cache_entry_mask;
        bool claimed = e < k_cache_entries && (word & k_claimed_bit) != 0;
        bool take;
        if (e >= k_cache_entries)
            take = true;  // names no entry: damaged, nobody can own it
        else if (claimed)
            take = ((plan.dead_entries >> e) & 1) != 0;  // only a dead owner's claim may be undone
        else
            take = ((plan.cached_of >> e) & 1) != 0;
        // A failed CAS: the owner claimed (or freed into) it meanwhile.
        if (take && take_back_locked(slot, word) >= 0) {
            ++taken;
        } else {
            ++remaining;
            if (claimed) claimed_entries |= bit(e);
        }
    });
    // Claims found in flight: undo those whose thread is gone (it died between claim and
    // commit). /proc is read for those entries only.
    std::uint64_t dead = 0;
    if (plan.find_dead_claims && claimed_entries != 0) dead = dead_cache_entries(*header_, claimed_entries);
    if (dead != 0) {
        manifest_->for_each_used_dropping([&](std::uint64_t slot, const ManifestRecord&, std::uint64_t word) {
            if (!is_cache_word(word) || (word & k_claimed_bit) == 0) return;
            std::uint64_t e = word & k_cache_entry_mask;
            if (e < k_cache_entries && ((dead >> e) & 1) != 0 && take_back_locked(slot, word) >= 0) {
                ++taken;
                --remaining;
            }
        });
        release_cache_entries(*header_, dead);
    }
    if (claimed_left != nullptr) *claimed_left = claimed_entries & ~dead;
    // No cache word left and no owner that could make one: later scans can be skipped.
    // (Set again, before any cache word can exist, when an entry is claimed.) Killed
    // around it: the flag is only a hint towards scanning; repair never clears it.
    if (remaining == 0 && !any_entry_owned_locked()) header_->cache_records_possible = 0;
    if (left != nullptr) *left = remaining;
    return taken;
}


bool PoolCaches::any_entry_owned_locked() const noexcept {
    for (const CacheEntry& entry : header_->cache_entries)
        if (entry.owner.load(std::memory_order_relaxed) != 0) return true;
    return false;
}


std::uint64_t PoolCaches::take_back_all_cached_locked(std::uint64_t* left) noexcept {
    return reclaim_cached_locked(ReclaimPlan{~std::uint64_t{0}, 0, true}, left);
}

void PoolCaches::sweep_dead_entries_locked(std::uint64_t among) noexcept {
    std::uint64_t dead = dead_cache_entries(*header_, among);  // reads /proc for owned entries only
    if (dead == 0) return;
    // Killed anywhere in here: the blocks not taken back yet stay cached by a dead owner,
    // and the entries stay owned by it; the next sweep (or repair) does the rest.
    bool wake = reclaim_cached_locked(ReclaimPlan{dead, dead, false}) > 0 && announce_frees_locked();
    release_cache_entries(*header_, dead);
    if (wake) futex_wake_all(&header_->wake_seq);
}

void PoolCaches::sweep_exited_threads_locked() noexcept {
    const auto pid = static_cast<std::uint32_t>(::getpid());
    if (my_entries_ == 0 || my_entries_pid_ != pid) return;
    std::uint64_t gone = 0;
    for (std::uint32_t e = 0; e < k_cache_entries; ++e) {
        if (((my_entries_ >> e) & 1) == 0) continue;
        const std::uint64_t owner = header_->cache_entries[e].owner.load(std::memory_order_relaxed);
        if (owner != my_entry_owner_[e]) {
            my_entries_ &= ~bit(e);  // released by a sweep or a take-back since: not ours any more
            continue;
        }
        // A probe, not the verdict: ESRCH says no thread of ours has that id now; the
        // owner word's start time (dead_cache_entries, /proc) confirms the thread is gone
        // and not merely renumbered. A live thread costs this one system call, no file read.
        const auto tid = static_cast<std::uint32_t>(owner);
        if (::syscall(SYS_tgkill, static_cast<pid_t>(pid), static_cast<pid_t>(tid), 0) != 0 && errno == ESRCH)
            gone |= bit(e);
    }
    // A sweep scans every used record once (reclaim_cached_locked): in a pool with many
    // records, wait for enough exited threads that one scan serves them all, so a thread
    // start costs at most ~k_records_per_swept_entry record visits on average.
    if (gone == 0 || static_cast<std::uint64_t>(std::popcount(gone)) * k_records_per_swept_entry < header_->live_count)
        return;
    sweep_dead_entries_locked(gone);
    for (std::uint32_t e = 0; e < k_cache_entries; ++e)
        if (((gone >> e) & 1) != 0 && header_->cache_entries[e].owner.load(std::memory_order_relaxed) == 0)
            my_entries_ &= ~bit(e);
}

void PoolCaches::hand_back_process_caches(bool pool_gone) noexcept {
    // Entries claimed through this mapping object; nothing uses them any more (the last
    // reference is gone, and the threads' caches are stale by epoch). In a forked child
    // they are the parent's (fork copied this object), whose threads still cache: a
    // child must never take back or release them (the parent's later frees would park
    // under an entry nobody owns).
    std::uint64_t mine = my_entries_;
    my_entries_ = 0;
    if (my_entries_pid_ != static_cast<std::uint32_t>(::getpid())) return;
    if (mine == 0 || pool_gone) return;
    // Never wait at detach: if the lock is busy, the blocks stay cached, and any failing
    // allocation or statistics call takes them back.
    if (!owner_lock_try_acquire(header_->lock)) return;
    std::uint64_t still_mine = 0;
    for (std::uint32_t e = 0; e < k_cache_entries; ++e)
        if (((mine >> e) & 1) != 0 &&
            header_->cache_entries[e].owner.load(std::memory_order_relaxed) == my_entry_owner_[e])
            still_mine |= bit(e);
    // Cached blocks only: a claimed record would be a thread still allocating through a
    // mapping it no longer holds; its entry then stays owned until that thread is gone.
    std::uint64_t claimed_left = 0;
    bool wake =
        reclaim_cached_locked(ReclaimPlan{still_mine, 0, false}, nullptr, &claimed_left) > 0 && announce_frees_locked();
    release_cache_entries(*header_, still_mine & ~claimed_left);
    owner_lock_release(header_->lock);
    if (wake) futex_wake_all(&header_->wake_seq);
}

}  // namespace dragonmem::detail
