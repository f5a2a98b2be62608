// The invariant checker (docs/design.md section 4.12): free + live bytes = heap size, no two
// blocks overlap, the manifest's live records are exactly the allocated blocks, every
// free block is on exactly one list, the free map is clear at the first and last granule
// of every allocated block, and the counters agree with what is found. Blocks
// parked in thread caches count as used; those of threads that are gone are reported
// (orphaned), and any the take-back scans would skip (the scan hint says no cache
// record exists) are a problem: nothing would ever free them. An id block reaching past
// the pool's id counter is a problem too: attach would refuse ids issued to others.
#include "pool/pool_caches.hpp"
#include "pool/pool_view.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>

namespace dragonmem::detail {

void collect_invariant_problems(const PoolView& pool, CheckReport& out) {
    PoolHeader& header = pool.header;
    Manifest& manifest = pool.manifest;
    TlsfHeap& heap = pool.heap;
    std::vector<std::string>& problems = out.problems;
    std::uint64_t heap_bytes = header.heap_bytes;
    out.heap_bytes = heap_bytes;

    struct Span {
        std::uint64_t offset;
        std::uint64_t size;
        std::uint64_t id;  // 0 for a listed free block or a cached one
        bool cached;
    };
    std::vector<Span> spans;

    std::uint64_t live_found = 0;
    std::uint64_t used_found = 0;  // live + cached records
    // Entries whose owner thread is gone, or that nobody owns (reads /proc per owned entry).
    const std::uint64_t gone_entries = dead_cache_entries(header, ~std::uint64_t{0});
    std::uint64_t orphaned_entries = 0;
    manifest.for_each_used([&](std::uint64_t slot, const ManifestRecord& rec, std::uint64_t id) {
        ++used_found;
        if (is_cache_word(id)) {
            // A block parked in a thread cache: allocated as far as the heap knows.
            std::uint64_t entry = id & k_cache_entry_mask;
            if (entry >= k_cache_entries) {
                problems.push_back(fmt::format("manifest slot {} names thread-cache entry {}, which does not exist",
                                               slot, entry));
                return;
            }
            std::uint64_t requested = rec.requested_bytes.load(std::memory_order_relaxed);
            std::uint64_t offset = rec.offset.load(std::memory_order_relaxed);
            HeapBlock block{};
            if (!heap.block_of(requested, offset, block)) {
                problems.push_back(fmt::format("cached block in manifest slot {} (offset {}, {} B) is impossible", slot,
                                               offset, requested));
                return;
            }
            std::uint64_t size = block.bytes;
            spans.push_back(Span{offset, size, 0, true});
            out.cached_blocks += 1;
            out.cached_bytes += size;
            out.used_bytes += size;
            if (((gone_entries >> entry) & 1) != 0) {
                out.orphaned_cached_blocks += 1;
                out.orphaned_cached_bytes += size;
                orphaned_entries |= std::uint64_t{1} << entry;
            }
            return;
        }
        ++live_found;
        if (manifest.slot_of(id) != slot) {
            problems.push_back(fmt::format("manifest slot {} holds id {} which belongs to slot {}", slot, id,
                                           manifest.slot_of(id)));
            return;
        }
        if (rec.requested_bytes == 0 || rec.requested_bytes > heap_bytes) {
            problems.push_back(fmt::format("allocation id {} has impossible size {} B", id, rec.requested_bytes));
            return;
        }
        HeapBlock block{};
        if (!heap.block_of(rec.requested_bytes, rec.offset, block)) {
            std::uint64_t bytes = heap.block_bytes_for(rec.requested_bytes);
            problems.push_back(fmt::format("allocation id {} at offset {} ({} B block, aligned to {}) is misaligned or "
                                           "out of bounds",
                                           id, rec.offset, bytes, heap.alignment_of(bytes)));
            return;
        }
        std::uint64_t size = block.bytes;
        spans.push_back(Span{rec.offset, size, id, false});
        out.used_bytes += size;
    });
    out.live_allocations = live_found;
    if (out.cached_blocks != 0 && header.cache_records_possible == 0)
        problems.push_back(fmt::format("{} cached blocks ({} B) are hidden from every take-back: the pool's scan "
                                       "hint says no cache record exists, so nothing would ever free them",
                                       out.cached_blocks, out.cached_bytes));
    if (out.orphaned_cached_blocks != 0)
        out.notices.push_back(fmt::format("{} cached blocks ({} B) belong to {} thread cache(s) whose thread is gone; "
                                          "they are free memory, taken back by the next allocation that needs them, "
                                          "a statistics call (get_attr, `dragonmem ls` or `dump`) or a repair",
                                          out.orphaned_cached_blocks, out.orphaned_cached_bytes,
                                          std::popcount(orphaned_entries)));
    if (used_found != header.live_count)
        problems.push_back(fmt::format("live count says {} but the manifest holds {} records in use ({} live, {} cached)",
                                       header.live_count, used_found, live_found, used_found - live_found));

    std::vector<HeapBlock> listed;
    heap.collect_listed_blocks(listed, problems);
    out.free_blocks = listed.size();
    for (const HeapBlock& block : listed) {
        std::uint64_t size = block.bytes;
        spans.push_back(Span{block.offset, size, 0, false});
        out.free_bytes += size;
    }
    if (out.free_bytes != heap.free_bytes())
        problems.push_back(fmt::format("free byte count says {} but the free lists hold {} B", heap.free_bytes(),
                                       out.free_bytes));

    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.offset < b.offset; });
    std::uint64_t cursor = 0;
    auto describe = [](const Span& s) {
        if (s.cached) return fmt::format("cached block at {} ({} B)", s.offset, s.size);
        return s.id == 0 ? fmt::format("free block at {} ({} B)", s.offset, s.size)
                         : fmt::format("allocation id {} at {} ({} B)", s.id, s.offset, s.size);
    };
    // The free map is exact at every block's first and last granule (tlsf_heap.hpp):
    // listed free blocks were checked with their lists; an allocated or cached block's
    // must be clear, or freeing its neighbour would take its bytes for a free block's.
    for (const Span& s : spans) {
        if (s.id == 0 && !s.cached) continue;
        const bool first = heap.map_marks_free(s.offset);
        const bool last = heap.map_marks_free(s.offset + s.size - 1);
        if (first || last)
            problems.push_back(fmt::format("the free map marks the {} granule of the {} as a free block's (it must "
                                           "be clear)",
                                           first && last ? "first and last" : first ? "first" : "last", describe(s)));
    }
    for (std::size_t i = 0; i < spans.size(); ++i) {
        const Span& s = spans[i];
        if (s.offset < cursor)
            problems.push_back(fmt::format("{} overlaps {}", describe(s), describe(spans[i - 1])));
        else if (s.offset > cursor)
            problems.push_back(fmt::format("{} B at offset {} are neither free nor allocated (lost)", s.offset - cursor,
                                           cursor));
        cursor = std::max(cursor, s.offset + s.size);
    }
    if (cursor < heap_bytes)
        problems.push_back(fmt::format("{} B at offset {} are neither free nor allocated (lost)", heap_bytes - cursor,
                                       cursor));
    if (out.free_bytes + out.used_bytes != heap_bytes)
        problems.push_back(fmt::format("free {} B + used {} B = {} B, but the heap has {} B", out.free_bytes,
                                       out.used_bytes, out.free_bytes + out.used_bytes, heap_bytes));

    // Free-slot stack: every free slot below the high-water mark exactly once.
    std::uint64_t extent = manifest.used_extent();
    if (header.slot_hwm > extent)  // records past the backed ones are never read (pool_backing.hpp)
        problems.push_back(fmt::format("manifest slots up to {} were used but only {} records are backed; the "
                                       "records past them are not read",
                                       header.slot_hwm, extent));
    std::uint64_t on_stack = 0;
    std::uint64_t link = header.slot_free_head;
    while (link != 0) {
        std::uint64_t slot = link - 1;
        if (slot >= extent || on_stack > extent) {
            problems.push_back(fmt::format("free-slot list is corrupt at slot {} (high-water mark {})", slot, extent));
            break;
        }
        if (manifest.record(slot).id.load(std::memory_order_relaxed) != 0)
            problems.push_back(fmt::format("manifest slot {} is on the free-slot list but holds a record in use", slot));
        ++on_stack;
        link = manifest.record(slot).offset.load(std::memory_order_relaxed);
    }
    if (on_stack + used_found != extent && problems.empty())
        problems.push_back(fmt::format("{} free slots listed + {} in use != {} slots used", on_stack, used_found, extent));

    // Id blocks (manifest.hpp, "Ids"): a block's end is at most the pool's counter + 1
    // when it is stored, and the counter only grows; read end first, then the counter, so
    // a block being moved by its owner (no lock) never reads as past it.
    for (std::uint32_t e = 0; e < k_cache_entries; ++e) {
        const IdBlock& block = manifest.id_block(e);
        const std::uint64_t end = block.end.load(std::memory_order_acquire);
        const std::uint64_t next = block.next.load(std::memory_order_relaxed);
        const std::uint64_t counter = header.id_counter.load(std::memory_order_acquire);
        if (next < end && end - 1 > counter)
            problems.push_back(fmt::format("id block of thread-cache entry {} holds counters [{}, {}), past the pool's "
                                           "id counter {}: attach would refuse ids issued to others",
                                           e, next, end, counter));
    }

    // A damaged list can produce hundreds of near-identical lines: keep the first ones.
    constexpr std::size_t k_max_problems = 50;
    if (problems.size() > k_max_problems) {
        std::size_t more = problems.size() - k_max_problems;
        problems.resize(k_max_problems);
        problems.push_back(fmt::format("... and {} more problems", more));
    }
    out.ok = problems.empty();
}

}  // namespace dragonmem::detail
