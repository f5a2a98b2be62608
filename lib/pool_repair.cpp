// Repair after a lock holder died: the manifest is the truth, everything else is rebuilt.
//
// Why this is enough: every mutation commits through one 64-bit store of a record's id
// (Manifest::publish/retire). Whatever the dead process was doing, each record is either
// complete and live or free. The heap's lists, the free-slot stack and the counters are
// all functions of the live records, so recomputing them restores a consistent pool.
// Records that cannot be a real allocation (out of bounds, misaligned, overlapping an
// earlier one) are retired, so a corrupt record cannot poison the rebuilt heap.
#include "pool_mapping.hpp"

#include "waiter.hpp"

#include <sys/random.h>

#include <algorithm>

namespace dragonmem::detail {

void PoolMapping::repair() noexcept {
    struct Live {
        std::uint64_t slot;
        std::uint64_t id;
        HeapBlock block;
    };
    std::vector<Live> live;
    std::uint64_t heap_bytes = header_->heap_bytes;
    std::uint64_t top_counter = header_->id_counter;
    try {
        manifest_.for_each_live([&](std::uint64_t slot, const ManifestRecord& rec, std::uint64_t id) {
            bool plausible = manifest_.slot_of(id) == slot && rec.requested_bytes != 0 &&
                             rec.requested_bytes <= heap_bytes;
            if (plausible) {
                std::uint32_t order = heap_.order_for(rec.requested_bytes);
                std::uint64_t size = std::uint64_t{1} << order;
                plausible = rec.offset < heap_bytes && rec.offset % size == 0 && rec.offset + size <= heap_bytes;
                if (plausible) live.push_back(Live{slot, id, HeapBlock{rec.offset, order}});
            }
            if (!plausible) manifest_.retire(slot);
            top_counter = std::max(top_counter, id >> manifest_.slot_bits());
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
            manifest_.retire(entry.slot);
            continue;
        }
        blocks.push_back(entry.block);
        cursor = entry.block.offset + (std::uint64_t{1} << entry.block.order);
    }
    std::uint64_t secret = 0;
    if (::getrandom(&secret, sizeof secret, GRND_NONBLOCK) != sizeof secret)
        secret = header_->heap.tag_secret * 0x9E3779B97F4A7C15ULL + 1;
    heap_.rebuild(blocks, secret);
    manifest_.rebuild_free_slots();
    header_->id_counter = top_counter;
    header_->live_count = blocks.size();
    if (header_->max_live_count < header_->live_count) header_->max_live_count = header_->live_count;
    header_->recoveries += 1;
    // A sleeper may have been waiting on a change the dead process never announced.
    header_->wake_seq.store(header_->wake_seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    header_->has_waiters.store(0, std::memory_order_relaxed);
    futex_wake_all(&header_->wake_seq);
}

}  // namespace dragonmem::detail
