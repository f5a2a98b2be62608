// Repair after a lock holder died: the manifest is the truth, everything else is rebuilt.
//
// Why this is enough: every mutation commits through one 64-bit store of a record's id
// (Manifest::publish/retire). Whatever the dead process was doing, each record is either
// complete and live or free. The heap's lists, the free-slot stack and the counters are
// all functions of the live records, so recomputing them restores a consistent pool.
// Records that cannot be a real allocation (out of bounds, misaligned, overlapping an
// earlier one) are retired, so a corrupt record cannot poison the rebuilt heap.
// Blocks parked in thread caches (thread_cache.hpp) are kept while their owner thread
// lives (it may be using them this instant, without the lock) and freed otherwise.
#include "pool/pool_caches.hpp"
#include "pool/pool_view.hpp"

#include "os/futex.hpp"
#include "os/random.hpp"

#include <algorithm>

namespace dragonmem::detail {

void repair_pool(const PoolView& pool) noexcept {
    PoolHeader& header = pool.header;
    Manifest& manifest = pool.manifest;
    TlsfHeap& heap = pool.heap;
    struct Live {
        std::uint64_t slot;
        std::uint64_t id;
        HeapBlock block;
    };
    std::vector<Live> live;
    std::uint64_t top_counter = 0;
    const std::uint64_t dead_entries = dead_cache_entries(header, ~std::uint64_t{0});
    try {
        manifest.for_each_used([&](std::uint64_t slot, const ManifestRecord& rec, std::uint64_t word) {
            bool plausible;
            if (is_cache_word(word)) {
                std::uint64_t entry = word & k_cache_entry_mask;
                plausible = entry < k_cache_entries && ((dead_entries >> entry) & 1) == 0;
            } else {
                plausible = manifest.slot_of(word) == slot;
                top_counter = std::max(top_counter, word >> manifest.slot_bits());
            }
            HeapBlock block{};
            plausible = plausible && heap.block_of(rec.requested_bytes.load(std::memory_order_relaxed),
                                                    rec.offset.load(std::memory_order_relaxed), block);
            if (plausible)
                live.push_back(Live{slot, word, block});
            else
                manifest.retire(slot, word);
        });
    } catch (const std::bad_alloc&) {
        // Cannot rebuild without memory; leave the pool as is rather than guess.
        return;
    }
    std::sort(live.begin(), live.end(), [](const Live& a, const Live& b) { return a.block.offset < b.block.offset; });
    std::vector<HeapBlock> blocks;
    blocks.reserve(live.size());
    std::uint64_t cursor = 0;
    for (const Live& entry : live) {
        if (entry.block.offset < cursor) {  // overlaps the previous block: cannot both be real
            manifest.retire(entry.slot, entry.id);
            continue;
        }
        blocks.push_back(entry.block);
        cursor = entry.block.offset + entry.block.bytes;
    }
    std::uint64_t secret = 0;
    if (!random_u64_now(secret))
        secret = heap.tag_secret() * 0x9E3779B97F4A7C15ULL + 1;
    heap.rebuild(blocks, secret);
    manifest.rebuild_free_slots();
    // Never lower: threads reserve counters beyond the last published id, without the
    // lock, at this very instant maybe; so raise it by CAS, never store over theirs.
    std::uint64_t counter = header.id_counter.load(std::memory_order_relaxed);
    while (counter < top_counter &&
           !header.id_counter.compare_exchange_weak(counter, top_counter, std::memory_order_relaxed)) {
    }
    release_cache_entries(header, dead_entries);
    header.live_count = blocks.size();
    if (header.max_live_count < header.live_count) header.max_live_count = header.live_count;
    header.recoveries += 1;
    // A sleeper may have been waiting on a change the dead process never announced.
    header.wake_seq.store(header.wake_seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    header.has_waiters.store(0, std::memory_order_relaxed);
    futex_wake_all(&header.wake_seq);
}

}  // namespace dragonmem::detail
