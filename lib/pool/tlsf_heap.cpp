// Two-level segregated fit over 64 B granules, with immediate coalescing (tlsf_heap.hpp).
// The lock is held by every caller; each shared update's crash argument is the heap's:
// it is derived state, rebuilt from the manifest by repair (tlsf_heap.hpp, "Crash story").
#include "pool/tlsf_heap.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace dragonmem::detail {

namespace {
constexpr std::uint64_t bit(std::uint32_t n) noexcept { return std::uint64_t{1} << n; }
}  // namespace

std::uint64_t TlsfHeap::tag_for(std::uint64_t offset, std::uint64_t bytes, std::uint32_t kind) const noexcept {
    // One multiply and a fold over (secret, offset, bytes, kind): every input bit reaches
    // the upper half, so user data matches a tag by accident with odds of about 2^-64,
    // and a new secret (repair) makes every old tag a mismatch. Computed two to four
    // times per locked alloc or free, so kept short.
    std::uint64_t x = (state_->tag_secret ^ offset ^ (bytes << 20) ^ (static_cast<std::uint64_t>(kind) << 52)) *
                      0x9E3779B97F4A7C15ULL;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 32;
    return x | 1;  // 0 marks a cleared header or footer
}

bool TlsfHeap::bit_readable(std::uint64_t granule) const noexcept {
    // A granule lies in one chunk unless it is larger than a page (a large minimum block):
    // then its header and its footer may be in different chunks, and either one backed
    // means its bit's page is backed.
    const std::uint64_t first = granule << g_;
    return backing_->heap_backed(first) || backing_->heap_backed(first + granule_bytes() - sizeof(FreeBlockFooter));
}

bool TlsfHeap::map_says_free(std::uint64_t offset) const noexcept {
    const std::uint64_t index = offset >> g_;
    return bit_readable(index) && ((free_map_[index / 64] >> (index % 64)) & 1) != 0;
}

void TlsfHeap::map_set(std::uint64_t offset, bool free) noexcept {
    const std::uint64_t index = offset >> g_;
    const std::uint64_t mask = bit(static_cast<std::uint32_t>(index % 64));
    if (free)
        free_map_[index / 64] |= mask;
    else
        free_map_[index / 64] &= ~mask;
}

void TlsfHeap::map_clear_if_readable(std::uint64_t offset) noexcept {
    if (bit_readable(offset >> g_)) map_set(offset, false);
}

void TlsfHeap::reset_lists(std::uint64_t secret) noexcept {
    std::memset(state_, 0, sizeof(HeapState));
    for (std::uint64_t& head : state_->free_head) head = k_nil;
    state_->tag_secret = secret;
}

bool TlsfHeap::format(std::uint64_t secret) {
    reset_lists(secret);
    // The header is in chunk 0 (backed by create); the footer in the last chunk.
    if (!backing_->back_heap(0) || !backing_->back_heap(heap_bytes_ - sizeof(FreeBlockFooter))) return false;
    insert(0, heap_bytes_);
    state_->free_bytes = heap_bytes_;
    return true;
}

bool TlsfHeap::header_intact(std::uint64_t offset, std::uint64_t bytes) const noexcept {
    // A link into a chunk never backed cannot be ours (headers are written only in backed
    // chunks), and following it could fault: such a block is corrupt.
    auto link_ok = [&](std::uint64_t link) {
        return link == k_nil || ((link & (granule_bytes() - 1)) == 0 && backing_->heap_backed(link));
    };
    if ((offset & (granule_bytes() - 1)) != 0 || !backing_->heap_backed(offset)) return false;
    const FreeBlockHeader* h = header(offset);
    const std::uint64_t size = h->bytes;
    if (size == 0 || (size & (granule_bytes() - 1)) != 0 || size > heap_bytes_ - offset) return false;
    if (bytes != 0 && size != bytes) return false;
    return h->tag == tag_for(offset, size, k_block_free) && link_ok(h->next) && link_ok(h->prev);
}

void TlsfHeap::insert(std::uint64_t offset, std::uint64_t bytes) noexcept {
    // The chunks of the header and the footer are backed (callers back them first).
    const std::uint32_t list = SizeClasses::list_of(bytes >> g_);
    const std::uint64_t head = state_->free_head[list];
    FreeBlockHeader* h = header(offset);
    h->next = head;
    h->prev = k_nil;
    h->bytes = bytes;
    h->tag = tag_for(offset, bytes, k_block_free);
    FreeBlockFooter* f = footer(offset + bytes);
    f->start = offset;
    f->tag = tag_for(offset, bytes, k_block_footer);
    map_set(offset, true);
    map_set(offset + bytes - 1, true);
    if (head != k_nil && backing_->heap_backed(head)) header(head)->prev = offset;
    state_->free_head[list] = offset;
    state_->sl_mask[list / k_heap_sl_count] |= static_cast<std::uint32_t>(bit(list % k_heap_sl_count));
    state_->fl_mask |= bit(list / k_heap_sl_count);
    state_->free_blocks += 1;
}

void TlsfHeap::remove(std::uint64_t offset, std::uint64_t bytes) noexcept {
    const std::uint32_t list = SizeClasses::list_of(bytes >> g_);
    FreeBlockHeader* h = header(offset);
    if (h->prev != k_nil)
        header(h->prev)->next = h->next;
    else
        state_->free_head[list] = h->next;
    if (h->next != k_nil) header(h->next)->prev = h->prev;
    // A block off the lists never carries a valid header or footer, nor map bits.
    h->tag = 0;
    footer(offset + bytes)->tag = 0;
    map_set(offset, false);
    map_set(offset + bytes - 1, false);
    state_->free_blocks -= 1;
    if (state_->free_head[list] == k_nil) {
        std::uint32_t& sl = state_->sl_mask[list / k_heap_sl_count];
        sl &= ~static_cast<std::uint32_t>(bit(list % k_heap_sl_count));
        if (sl == 0) state_->fl_mask &= ~bit(list / k_heap_sl_count);
    }
}

void TlsfHeap::move_start(std::uint64_t offset, std::uint64_t bytes, std::uint64_t new_offset) noexcept {
    // The free block [offset, offset + bytes) becomes [new_offset, offset + bytes), on the
    // same list: its links move to a header at new_offset, its neighbours and the list
    // head point there, and its footer names the new start. The chunk of the new header
    // is backed (alloc backed it).
    const std::uint64_t end = offset + bytes;
    const std::uint64_t rest = end - new_offset;
    FreeBlockHeader* old = header(offset);
    FreeBlockHeader* h = header(new_offset);
    h->next = old->next;
    h->prev = old->prev;
    h->bytes = rest;
    h->tag = tag_for(new_offset, rest, k_block_free);
    old->tag = 0;
    if (h->prev != k_nil)
        header(h->prev)->next = new_offset;
    else
        state_->free_head[SizeClasses::list_of(rest >> g_)] = new_offset;
    if (h->next != k_nil) header(h->next)->prev = new_offset;
    FreeBlockFooter* f = footer(end);
    f->start = new_offset;
    f->tag = tag_for(new_offset, rest, k_block_footer);
    map_set(offset, false);
    map_set(new_offset, true);
}

std::uint32_t TlsfHeap::first_list_from(std::uint32_t list) const noexcept {
    if (list >= k_heap_lists) return k_heap_lists;
    std::uint32_t fl = list / k_heap_sl_count;
    const std::uint32_t here = state_->sl_mask[fl] & ~static_cast<std::uint32_t>(bit(list % k_heap_sl_count) - 1);
    if (here != 0) return fl * k_heap_sl_count + static_cast<std::uint32_t>(std::countr_zero(here));
    const std::uint64_t above = fl + 1 < 64 ? state_->fl_mask & ~(bit(fl + 1) - 1) : 0;
    if (above == 0) return k_heap_lists;
    fl = static_cast<std::uint32_t>(std::countr_zero(above));
    if (fl >= k_heap_fl_count || state_->sl_mask[fl] == 0) return k_heap_lists;  // a damaged mask
    return fl * k_heap_sl_count + static_cast<std::uint32_t>(std::countr_zero(state_->sl_mask[fl]));
}

bool TlsfHeap::fits(std::uint64_t offset, std::uint64_t size, std::uint64_t bytes, std::uint64_t align,
                    std::uint64_t& start) const noexcept {
    start = (offset + align - 1) & ~(align - 1);
    return start - offset <= size && bytes <= size - (start - offset);
}

TlsfHeap::FitResult TlsfHeap::find_fit(std::uint64_t bytes, std::uint64_t align, Fit& fit) const noexcept {
    auto try_block = [&](std::uint64_t offset, std::uint32_t list, bool& corrupt) {
        if (!header_intact(offset, 0) || SizeClasses::list_of(header(offset)->bytes >> g_) != list) {
            corrupt = true;
            return false;
        }
        const std::uint64_t size = header(offset)->bytes;
        std::uint64_t start = 0;
        if (!fits(offset, size, bytes, align, start)) return false;
        fit = Fit{offset, size, start};
        return true;
    };
    bool corrupt = false;
    const std::uint32_t want = SizeClasses::list_of(SizeClasses::round_up(bytes >> g_));
    const std::uint32_t first = first_list_from(want);
    if (first == k_heap_lists) return FitResult::none;
    // Every block of `first` is at least `bytes`: the head fits unless aligning moves it.
    if (try_block(state_->free_head[first], first, corrupt)) return FitResult::found;
    if (corrupt) return FitResult::corrupt;
    // A block of bytes + align - granule fits at any granule offset.
    const std::uint32_t sure = SizeClasses::list_of(SizeClasses::round_up((bytes + align - granule_bytes()) >> g_));
    const std::uint32_t above = first_list_from(sure);
    if (above != k_heap_lists) {
        if (try_block(state_->free_head[above], above, corrupt)) return FitResult::found;
        return corrupt ? FitResult::corrupt : FitResult::none;  // cannot happen: it fits
    }
    // Smaller blocks may still fit aligned: try each block of the lists in between. This
    // is reached only when the request would otherwise fail (the heads above did not fit),
    // so a long scan costs only a request that then succeeds or fails; a scan stopped
    // early refused requests a listed block holds, and can_alloc and largest_request
    // disagreed. A list holds at most heap / (its smallest size) blocks: more is a cycle
    // (links are not covered by the tag), reported corrupt rather than followed for ever.
    for (std::uint32_t list = first; list < sure && list < k_heap_lists; list = first_list_from(list + 1)) {
        std::uint64_t budget = heap_bytes_ / class_bytes(list) + 1;
        for (std::uint64_t offset = state_->free_head[list]; offset != k_nil; offset = header(offset)->next) {
            if (budget-- == 0) return FitResult::corrupt;
            if (try_block(offset, list, corrupt)) return FitResult::found;
            if (corrupt) return FitResult::corrupt;
        }
    }
    return FitResult::none;
}

std::uint64_t TlsfHeap::alloc_run(std::uint64_t block_bytes, std::uint64_t& count) {
    if (block_bytes == 0 || count == 0 || block_bytes > heap_bytes_) return k_nil;
    Fit fit;
    // The fit of one block, not of the whole run: the smallest free block that holds one
    // gives as many as it holds. Searching for the whole run instead found, once the heap
    // was used a while, only the large free block at the end of the used part, so every
    // refill of a large class took fresh memory (a 2-thread mixed workload grew its pool's
    // touched memory to 230 MB where one-block fits keep it near what is in use).
    switch (find_fit(block_bytes, alignment_of(block_bytes), fit)) {
        case FitResult::none:
            return k_nil;
        case FitResult::corrupt:
            return k_heap_corrupt;
        case FitResult::found:
            break;
    }
    count = std::min(count, (fit.offset + fit.bytes - fit.start) / block_bytes);  // >= 1: one block fits
    const std::uint64_t run = block_bytes * count;
    const std::uint64_t lead = fit.start - fit.offset;
    const std::uint64_t end = fit.start + run;
    const std::uint64_t tail = fit.offset + fit.bytes - end;
    // Before anything changes: the leading gap gets a footer and the tail a header, maybe
    // in chunks never touched; and the chunks of each block's first and last bytes are
    // backed now, so that its free never needs memory (a free cannot fail). If /dev/shm
    // cannot back them, fail with the heap as it was (chunks backed so far stay backed:
    // backing is never undone, and harmless).
    if (lead != 0 && !backing_->back_heap(fit.start - sizeof(FreeBlockFooter))) return k_nil;
    if (tail != 0 && !backing_->back_heap(end)) return k_nil;
    for (std::uint64_t at = fit.start; at != end; at += block_bytes)
        if (!backing_->back_heap(at) || !backing_->back_heap(at + block_bytes - sizeof(FreeBlockFooter))) return k_nil;
    if (lead == 0 && tail != 0 && SizeClasses::list_of(tail >> g_) == SizeClasses::list_of(fit.bytes >> g_)) {
        // The common carve from a large block: the rest stays on the same list, so it
        // takes the block's place in it (no unlink and relink, no mask change).
        move_start(fit.offset, fit.bytes, end);
    } else {
        remove(fit.offset, fit.bytes);
        if (lead != 0) insert(fit.offset, lead);
        if (tail != 0) insert(end, tail);
    }
    // Each allocated block's first and last granules may have been the interior of the
    // free block, whose bits mean nothing: make them exact (clear). Their chunks are
    // backed (above), so their bits have memory.
    for (std::uint64_t at = fit.start; at != end; at += block_bytes) {
        map_set(at, false);
        map_set(at + block_bytes - 1, false);
    }
    state_->free_bytes -= run;
    return fit.start;
}

bool TlsfHeap::can_alloc(std::uint64_t block_bytes) const {
    if (block_bytes == 0 || block_bytes > heap_bytes_) return false;
    Fit fit;
    return find_fit(block_bytes, alignment_of(block_bytes), fit) == FitResult::found;
}

void TlsfHeap::free(std::uint64_t offset, std::uint64_t bytes) {
    // The merged block's header and footer may be ours: their chunks are backed (alloc
    // backed both ends of the block); only a forged record can name others.
    if (!backing_->back_heap(offset) || !backing_->back_heap(offset + bytes - sizeof(FreeBlockFooter))) return;
    std::uint64_t start = offset;
    std::uint64_t end = offset + bytes;
    // A free block right after: its first granule's bit, then its header.
    if (end < heap_bytes_ && map_says_free(end) && header_intact(end, 0)) {
        const std::uint64_t next_bytes = header(end)->bytes;
        remove(end, next_bytes);
        end += next_bytes;
    }
    // A free block right before: the bit of our previous granule (its last), then its
    // footer, then its header. A damaged one is left alone (not merged): the next alloc
    // that meets it, or check, finds it.
    if (offset != 0 && map_says_free(offset - 1)) {
        const FreeBlockFooter* f = footer(offset);
        const std::uint64_t prev = f->start;
        if (prev < offset && (prev & (granule_bytes() - 1)) == 0 &&
            f->tag == tag_for(prev, offset - prev, k_block_footer) && header_intact(prev, offset - prev)) {
            remove(prev, offset - prev);
            start = prev;
        }
    }
    insert(start, end - start);
    state_->free_bytes += bytes;
}

void TlsfHeap::rebuild(std::span<const HeapBlock> live_sorted, std::uint64_t new_secret) {
    // Only free blocks' headers and footers are written: live blocks hold user data.
    reset_lists(new_secret);
    // The map may be wrong where the dead holder was working: the live blocks' first and
    // last granules are cleared here, the free blocks' set by insert(). Every other bit is
    // inside a block, where it means nothing until a split makes that granule a first or
    // last one, and a split writes it.
    for (const HeapBlock& block : live_sorted) {
        map_clear_if_readable(block.offset);
        map_clear_if_readable(block.offset + block.bytes - 1);
    }
    std::uint64_t free_total = 0;
    auto add_gap = [&](std::uint64_t from, std::uint64_t to) {
        if (from >= to) return;
        // A gap whose header or footer chunk cannot be backed (possible only after a damaged
        // manifest) stays out: lost until the next repair.
        if (!backing_->back_heap(from) || !backing_->back_heap(to - sizeof(FreeBlockFooter))) return;
        insert(from, to - from);
        free_total += to - from;
    };
    std::uint64_t cursor = 0;
    for (const HeapBlock& block : live_sorted) {
        add_gap(cursor, block.offset);
        cursor = std::max(cursor, block.offset + block.bytes);
    }
    add_gap(cursor, heap_bytes_);
    state_->free_bytes = free_total;
}

HeapBlock TlsfHeap::largest_free_block() const noexcept {
    HeapBlock best{0, 0};
    if (state_->fl_mask == 0) return best;
    const auto fl = static_cast<std::uint32_t>(63 - std::countl_zero(state_->fl_mask));
    if (fl >= k_heap_fl_count || state_->sl_mask[fl] == 0) return best;
    const std::uint32_t list = fl * k_heap_sl_count +
                               static_cast<std::uint32_t>(31 - std::countl_zero(state_->sl_mask[fl]));
    // The top list's blocks differ by less than a class step: look at a bounded number.
    std::uint32_t budget = 4096;
    for (std::uint64_t offset = state_->free_head[list]; offset != k_nil && budget != 0; --budget) {
        if (!header_intact(offset, 0)) break;
        if (header(offset)->bytes > best.bytes) best = HeapBlock{offset, header(offset)->bytes};
        offset = header(offset)->next;
    }
    return best;
}

std::uint64_t TlsfHeap::largest_request() const noexcept {
    const HeapBlock block = largest_free_block();
    if (block.bytes == 0) return 0;
    // The largest class bound that alloc() would find room for, by asking it (can_alloc):
    // a request's block is a class bound, so no request between two bounds fits where the
    // upper one does not. An aligned class (a power of two up to 4 KiB) may fit in some
    // smaller block and not in the largest one, or the other way round, so the answer is
    // the search's, not the largest block's. Every class but the aligned ones (a few) is
    // answered from a list head; the first that fits ends the walk down.
    for (std::uint32_t list = SizeClasses::list_of(block.bytes >> g_); list != 0; --list)
        if (can_alloc(class_bytes(list))) return class_bytes(list);
    return 0;
}

void TlsfHeap::free_histogram(std::vector<std::uint64_t>& counts) const {
    std::vector<HeapBlock> listed;
    std::vector<std::string> ignored;  // a damaged list is the checker's business
    collect_listed_blocks(listed, ignored);
    counts.assign(64, 0);
    for (const HeapBlock& block : listed) counts[static_cast<std::size_t>(std::bit_width(block.bytes) - 1)] += 1;
}

void TlsfHeap::walk_list(std::uint32_t list, std::vector<HeapBlock>& out, std::vector<std::string>& problems) const {
    const std::uint64_t lower = class_bytes(list);
    const std::uint64_t limit = heap_bytes_ / lower + 1;  // more entries than blocks of this size: a cycle
    std::uint64_t offset = state_->free_head[list];
    std::uint64_t prev = k_nil;
    std::uint64_t seen = 0;
    while (offset != k_nil) {
        if (seen >= limit) {
            problems.push_back(
                    fmt::format("free list of {} B blocks has more than {} entries (a cycle)", lower, limit));
            return;
        }
        if (offset >= heap_bytes_ || (offset & (granule_bytes() - 1)) != 0) {
            problems.push_back(fmt::format("free list of {} B blocks links to offset {} (out of bounds or misaligned)",
                                           lower, offset));
            return;
        }
        if (!backing_->heap_backed(offset)) {
            problems.push_back(
                    fmt::format("free list of {} B blocks links to offset {}, where no header was ever "
                                "written (its memory was never backed)",
                                lower, offset));
            return;
        }
        const FreeBlockHeader* h = header(offset);
        const std::uint64_t size = h->bytes;
        if (size == 0 || (size & (granule_bytes() - 1)) != 0 || size > heap_bytes_ - offset ||
            SizeClasses::list_of(size >> g_) != list || h->tag != tag_for(offset, size, k_block_free)) {
            problems.push_back(
                    fmt::format("free block at offset {} (list of {} B blocks) has a bad header (size {}, "
                                "overwritten?)",
                                offset, lower, size));
            return;  // its size and links cannot be trusted
        }
        const std::uint64_t end = offset + size;
        if (!backing_->heap_backed(end - sizeof(FreeBlockFooter)) ||
            footer(end)->tag != tag_for(offset, size, k_block_footer) || footer(end)->start != offset)
            problems.push_back(
                    fmt::format("free block at offset {} ({} B) has a bad footer (overwritten?)", offset, size));
        if (!map_says_free(offset) || !map_says_free(end - 1))
            problems.push_back(
                    fmt::format("the free map does not mark the first and last granule of the free block "
                                "at offset {} ({} B)",
                                offset, size));
        if (h->prev != prev)
            problems.push_back(
                    fmt::format("free block at offset {} has back link {} instead of {}", offset, h->prev, prev));
        out.push_back({offset, size});
        ++seen;
        prev = offset;
        offset = h->next;
    }
    const bool mask_bit = ((state_->sl_mask[list / k_heap_sl_count] >> (list % k_heap_sl_count)) & 1) != 0;
    if (mask_bit != (seen != 0))
        problems.push_back(fmt::format("free list of {} B blocks: non-empty bit is {} but the list holds {}", lower,
                                       mask_bit ? 1 : 0, seen));
}

void TlsfHeap::collect_listed_blocks(std::vector<HeapBlock>& out, std::vector<std::string>& problems) const {
    const std::size_t before = out.size();
    const std::uint32_t top = SizeClasses::list_of(heap_bytes_ >> g_);
    for (std::uint32_t list = 0; list < k_heap_lists; ++list) {
        if (list == 0 || list > top) {
            if (state_->free_head[list] != k_nil)
                problems.push_back(fmt::format("a free list exists for impossible size class {}", list));
            continue;
        }
        walk_list(list, out, problems);
    }
    for (std::uint32_t fl = 0; fl < k_heap_fl_count; ++fl)
        if (((state_->fl_mask >> fl) & 1) != (state_->sl_mask[fl] != 0 ? 1u : 0u))
            problems.push_back(fmt::format("free lists of size group {}: the group bit disagrees with its lists", fl));
    if (out.size() - before != state_->free_blocks)
        problems.push_back(fmt::format("the free lists hold {} blocks but the count says {}", out.size() - before,
                                       state_->free_blocks));
}

}  // namespace dragonmem::detail
