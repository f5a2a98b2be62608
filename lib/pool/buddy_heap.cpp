// Buddy allocator with per-size deferred lists and lazy coalescing (see buddy_heap.hpp).
#include "pool/buddy_heap.hpp"

#include <fmt/format.h>

#include <bit>
#include <unordered_set>
#include <cstring>

namespace dragonmem::detail {

namespace {
constexpr std::uint64_t bit(std::uint32_t order) { return std::uint64_t{1} << order; }
}  // namespace

std::uint64_t BuddyHeap::tag_for(std::uint64_t offset, std::uint32_t order, std::uint32_t kind) const noexcept {
    // splitmix64 finaliser over (secret, offset, order, kind): cheap and well mixed.
    std::uint64_t x = state_->tag_secret ^ (offset * 0x9E3779B97F4A7C15ULL) ^
                      ((static_cast<std::uint64_t>(order) << 32) | kind);
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x | 1;  // 0 marks a cleared header
}

bool BuddyHeap::header_intact(std::uint64_t offset, std::uint32_t order, std::uint32_t kind) const noexcept {
    std::uint64_t size = bit(order);
    // A link into a chunk never backed cannot be ours (we write headers only in backed
    // chunks), and following it could fault: treat it as corrupt.
    auto link_ok = [&](std::uint64_t link) {
        return link == k_nil || ((link & (size - 1)) == 0 && backing_->heap_backed(link));
    };
    if ((offset & (size - 1)) != 0 || !backing_->heap_backed(offset)) return false;
    const FreeBlockHeader* h = header(offset);
    return h->tag == tag_for(offset, order, kind) && link_ok(h->next) && link_ok(h->prev);
}

bool BuddyHeap::is_free_block(std::uint64_t offset, std::uint32_t order) const noexcept {
    // The map first: the block may be allocated, its bytes written by its owner now. And
    // the backing map before the free map: a chunk never backed has no free block (so
    // its bits are 0), and the free-map page holding them may have no memory.
    return backing_->heap_backed(offset) && map_says_free(offset) && header_intact(offset, order, k_block_free);
}

void BuddyHeap::reset_lists(std::uint64_t secret) noexcept {
    std::memset(state_, 0, sizeof(HeapState));
    for (unsigned k = 0; k < k_max_orders; ++k) {
        state_->free_head[k] = k_nil;
        state_->deferred_head[k] = k_nil;
    }
    state_->tag_secret = secret;
}

void BuddyHeap::format(std::uint64_t secret) {
    reset_lists(secret);
    push_free(0, max_order_);
    state_->free_bytes = heap_bytes();
}

void BuddyHeap::push_free(std::uint64_t offset, std::uint32_t order) noexcept {
    FreeBlockHeader* h = header(offset);
    std::uint64_t head = state_->free_head[order];
    h->next = head;
    h->prev = k_nil;
    h->order = order;
    h->kind = k_block_free;
    h->tag = tag_for(offset, order, k_block_free);
    map_set(offset, true);  // its chunk is backed (a header was just written), so is its map page
    if (head != k_nil && backing_->heap_backed(head)) header(head)->prev = offset;
    state_->free_head[order] = offset;
    state_->free_count[order] += 1;
    state_->free_mask |= bit(order);
}

void BuddyHeap::remove_free(std::uint64_t offset, std::uint32_t order) noexcept {
    FreeBlockHeader* h = header(offset);
    if (h->prev != k_nil)
        header(h->prev)->next = h->next;
    else
        state_->free_head[order] = h->next;
    if (h->next != k_nil) header(h->next)->prev = h->prev;
    h->tag = 0;  // a block off the lists never carries a valid header
    map_set(offset, false);
    state_->free_count[order] -= 1;
    if (state_->free_head[order] == k_nil) state_->free_mask &= ~bit(order);
}

void BuddyHeap::push_deferred(std::uint64_t offset, std::uint32_t order) noexcept {
    FreeBlockHeader* h = header(offset);
    h->next = state_->deferred_head[order];
    h->prev = k_nil;
    h->order = order;
    h->kind = k_block_deferred;
    h->tag = tag_for(offset, order, k_block_deferred);
    state_->deferred_head[order] = offset;
    state_->deferred_count[order] += 1;
    state_->deferred_mask |= bit(order);
}

std::uint64_t BuddyHeap::pop_deferred(std::uint32_t order) noexcept {
    std::uint64_t offset = state_->deferred_head[order];
    FreeBlockHeader* h = header(offset);
    state_->deferred_head[order] = h->next;
    h->tag = 0;
    state_->deferred_count[order] -= 1;
    if (state_->deferred_head[order] == k_nil) state_->deferred_mask &= ~bit(order);
    return offset;
}

void BuddyHeap::free_coalescing(std::uint64_t offset, std::uint32_t order) noexcept {
    while (order < max_order_) {
        std::uint64_t buddy = offset ^ bit(order);
        if (!is_free_block(buddy, order)) break;
        remove_free(buddy, order);
        offset &= ~bit(order);
        ++order;
    }
    push_free(offset, order);
}

std::uint64_t BuddyHeap::alloc(std::uint32_t order) {
    if (order > max_order_) return k_nil;
    std::uint64_t offset;
    if (state_->deferred_mask & bit(order)) {
        if (!header_intact(state_->deferred_head[order], order, k_block_deferred)) return k_heap_corrupt;
        offset = pop_deferred(order);
    } else {
        std::uint64_t at_least = ~(bit(order) - 1);
        std::uint64_t candidates = (state_->free_mask | state_->deferred_mask) & at_least;
        if (candidates == 0) {
            if (state_->deferred_mask == 0) return k_nil;
            if (!coalesce_deferred()) return k_heap_corrupt;
            candidates = state_->free_mask & at_least;
            if (candidates == 0) return k_nil;
        }
        std::uint32_t have = static_cast<std::uint32_t>(std::countr_zero(candidates));
        bool listed_free = (state_->free_mask & bit(have)) != 0;
        offset = listed_free ? state_->free_head[have] : state_->deferred_head[have];
        if (!header_intact(offset, have, listed_free ? k_block_free : k_block_deferred)) return k_heap_corrupt;
        // Before anything changes: the split below writes headers in chunks never
        // touched before; if /dev/shm cannot back them, fail with the heap as it was.
        if (!back_split(offset, have, order)) return k_nil;
        if (listed_free)
            remove_free(offset, have);
        else
            pop_deferred(have);
        // Split down: the upper halves go back on the free lists.
        while (have > order) {
            --have;
            push_free(offset + bit(have), have);
        }
    }
    state_->free_bytes -= bit(order);
    return offset;
}

bool BuddyHeap::back_split(std::uint64_t offset, std::uint32_t have, std::uint32_t order) noexcept {
    for (std::uint32_t half = order; half < have; ++half)
        if (!backing_->back_heap(offset + bit(half))) return false;
    return true;
}

bool BuddyHeap::can_alloc(std::uint32_t order) {
    if (order > max_order_) return false;
    std::uint64_t at_least = ~(bit(order) - 1);
    if ((state_->free_mask | state_->deferred_mask) & at_least) return true;
    if (state_->deferred_mask == 0) return false;
    return coalesce_deferred() && (state_->free_mask & at_least) != 0;
}

void BuddyHeap::free(std::uint64_t offset, std::uint32_t order) {
    if (!backing_->back_heap(offset)) return;  // cannot write its header: left out (lost until a repair)
    state_->free_bytes += bit(order);
    if (state_->deferred_count[order] < k_deferred_limit)
        push_deferred(offset, order);
    else
        free_coalescing(offset, order);
}

void BuddyHeap::park_deferred(std::uint64_t offset, std::uint32_t order) {
    if (!backing_->back_heap(offset)) return;  // as in free()
    state_->free_bytes += bit(order);
    push_deferred(offset, order);
}

bool BuddyHeap::coalesce_deferred() {
    while (state_->deferred_mask != 0) {
        std::uint32_t order = static_cast<std::uint32_t>(std::countr_zero(state_->deferred_mask));
        if (!header_intact(state_->deferred_head[order], order, k_block_deferred)) return false;
        free_coalescing(pop_deferred(order), order);
    }
    return true;
}

void BuddyHeap::rebuild(std::span<const HeapBlock> live_sorted, std::uint64_t new_secret) {
    // Only free blocks' first bytes are written: live blocks hold user data.
    reset_lists(new_secret);
    // The free map may be wrong where the dead holder was working: clear the bits of the
    // live blocks' starts; add_gap sets those of the free blocks. Every other block
    // start is inside one of these, and its bit is set or cleared when a split or a
    // merge makes it a start again.
    // A live block in a chunk never backed (only after a damaged manifest) has its bit 0
    // already, and its free-map page may have no memory: not touched.
    for (const HeapBlock& block : live_sorted)
        if (backing_->heap_backed(block.offset)) map_set(block.offset, false);
    std::uint64_t free_total = 0;
    auto add_gap = [&](std::uint64_t from, std::uint64_t to) {
        while (from < to) {
            // Largest aligned block starting at `from` that fits before `to`.
            std::uint32_t order = from == 0 ? max_order_ : static_cast<std::uint32_t>(std::countr_zero(from));
            if (order > max_order_) order = max_order_;
            while (from + bit(order) > to) --order;
            // A block no header was ever written in (possible only after a damaged
            // manifest) whose chunk cannot be backed stays out: lost until the next repair.
            if (backing_->back_heap(from)) {
                push_free(from, order);
                free_total += bit(order);
            }
            from += bit(order);
        }
    };
    std::uint64_t cursor = 0;
    for (const HeapBlock& block : live_sorted) {
        add_gap(cursor, block.offset);
        cursor = block.offset + bit(block.order);
    }
    add_gap(cursor, heap_bytes());
    state_->free_bytes = free_total;
}

void BuddyHeap::coalesced_counts(std::vector<std::uint64_t>& counts) const {
    std::vector<HeapBlock> listed;
    std::vector<std::string> ignored;  // a damaged list is the checker's business
    collect_listed_blocks(listed, ignored);
    // Merge buddies order by order, smallest first, in a private set.
    std::vector<std::unordered_set<std::uint64_t>> by_order(k_max_orders);
    for (const HeapBlock& block : listed) by_order[block.order].insert(block.offset);
    counts.assign(k_max_orders, 0);
    for (std::uint32_t order = 0; order < k_max_orders; ++order) {
        auto& here = by_order[order];
        if (order < max_order_) {
            for (auto it = here.begin(); it != here.end();) {
                std::uint64_t buddy = *it ^ bit(order);
                if (here.count(buddy) != 0) {
                    by_order[order + 1].insert(*it & ~bit(order));
                    here.erase(buddy);
                    it = here.erase(it);
                } else {
                    ++it;
                }
            }
        }
        counts[order] = here.size();
    }
}

void BuddyHeap::walk_list(std::uint32_t order, bool deferred, std::vector<HeapBlock>& out,
                          std::vector<std::string>& problems) const {
    const char* list_name = deferred ? "deferred" : "free";
    std::uint32_t kind = deferred ? k_block_deferred : k_block_free;
    std::uint64_t expected = deferred ? state_->deferred_count[order] : state_->free_count[order];
    std::uint64_t limit = heap_bytes() >> order;  // more entries than blocks of this size: a cycle
    std::uint64_t offset = deferred ? state_->deferred_head[order] : state_->free_head[order];
    std::uint64_t prev = k_nil;
    std::uint64_t seen = 0;
    while (offset != k_nil) {
        if (seen >= limit) {
            problems.push_back(fmt::format("{} list of {} B blocks has more than {} entries (a cycle)", list_name,
                                           bit(order), limit));
            return;
        }
        if (offset >= heap_bytes() || (offset & (bit(order) - 1)) != 0) {
            problems.push_back(fmt::format("{} list of {} B blocks links to offset {} (out of bounds or misaligned)",
                                           list_name, bit(order), offset));
            return;
        }
        if (!backing_->heap_backed(offset)) {
            problems.push_back(fmt::format("{} list of {} B blocks links to offset {}, where no header was ever written "
                                           "(its memory was never backed)",
                                           list_name, bit(order), offset));
            return;
        }
        const FreeBlockHeader* h = header(offset);
        if (h->tag != tag_for(offset, order, kind) || h->order != order || h->kind != kind)
            problems.push_back(fmt::format("{} block at offset {} ({} B) has a bad header (order {}, overwritten?)",
                                           list_name, offset, bit(order), h->order));
        if (map_says_free(offset) != !deferred)
            problems.push_back(fmt::format("the free map {} the {} block at offset {} ({} B) as on a free list",
                                           deferred ? "marks" : "does not mark", list_name, offset, bit(order)));
        if (!deferred && h->prev != prev)
            problems.push_back(fmt::format("free block at offset {} has back link {} instead of {}", offset, h->prev,
                                           prev));
        out.push_back({offset, order});
        ++seen;
        prev = offset;
        offset = h->next;
    }
    if (seen != expected)
        problems.push_back(fmt::format("{} list of {} B blocks holds {} blocks but its count says {}", list_name,
                                       bit(order), seen, expected));
    bool mask_bit = ((deferred ? state_->deferred_mask : state_->free_mask) & bit(order)) != 0;
    if (mask_bit != (seen != 0))
        problems.push_back(fmt::format("{} list of {} B blocks: non-empty bit is {} but the list holds {}", list_name,
                                       bit(order), mask_bit ? 1 : 0, seen));
}

void BuddyHeap::collect_listed_blocks(std::vector<HeapBlock>& out, std::vector<std::string>& problems) const {
    for (std::uint32_t order = 0; order < k_max_orders; ++order) {
        bool in_range = order >= min_order_ && order <= max_order_;
        if (!in_range) {
            if (state_->free_head[order] != k_nil || state_->deferred_head[order] != k_nil)
                problems.push_back(fmt::format("a list exists for impossible block size 2^{}", order));
            continue;
        }
        walk_list(order, false, out, problems);
        walk_list(order, true, out, problems);
    }
}

}  // namespace dragonmem::detail
