// Manifest slot management, id assignment and record commit points.
#include "pool/manifest.hpp"

namespace dragonmem::detail {

std::uint64_t Manifest::take_slot() noexcept {
    if (header_->slot_free_head != 0) {
        std::uint64_t slot = header_->slot_free_head - 1;
        // A free slot's `offset` field links to the next free slot (1-based, 0 = end).
        header_->slot_free_head = records_[slot].offset.load(std::memory_order_relaxed);
        return slot;
    }
    return header_->slot_hwm++;
}

void Manifest::give_back_slot(std::uint64_t slot) noexcept {
    records_[slot].offset.store(header_->slot_free_head, std::memory_order_relaxed);
    header_->slot_free_head = slot + 1;
}

void Manifest::publish(std::uint64_t slot, std::uint64_t id, std::uint64_t offset, std::uint64_t requested_bytes,
                       std::uint64_t type, std::uint32_t size_class) noexcept {
    ManifestRecord& rec = records_[slot];
    rec.offset.store(offset, std::memory_order_relaxed);
    rec.requested_bytes.store(requested_bytes, std::memory_order_relaxed);
    rec.type.store(type, std::memory_order_relaxed);
    rec.size_class.store(size_class, std::memory_order_relaxed);
    // Killed before this store: the slot still reads free and repair reclaims the block.
    // Killed after it: the allocation is complete, listed, and anyone may free it.
    rec.id.store(id, std::memory_order_release);
}

bool Manifest::retire(std::uint64_t slot, std::uint64_t word) noexcept {
    // Killed before this CAS: still allocated. After it: gone; repair frees the block.
    if (!records_[slot].id.compare_exchange_strong(word, 0, std::memory_order_acq_rel, std::memory_order_relaxed))
        return false;
    // The slot's fields are rewritten after this (free-slot link, the next allocation's
    // offset and size): a lock-free reader that sees one of those values must also see
    // that the id is gone (read_live's second load). Free on x86 (a compiler barrier).
    std::atomic_thread_fence(std::memory_order_release);
    return true;
}

const ManifestRecord* Manifest::find(std::uint64_t id) const noexcept {
    if (!is_live_id(id)) return nullptr;
    std::uint64_t slot = slot_of(id);
    // Past the backed records no slot was ever used: do not touch their pages.
    if (slot >= backing_->records_backed()) return nullptr;
    const ManifestRecord& rec = records_[slot];
    return rec.id.load(std::memory_order_acquire) == id ? &rec : nullptr;
}

void Manifest::rebuild_free_slots() noexcept {
    header_->slot_free_head = 0;
    std::uint64_t extent = used_extent();
    // Push from the top so the lowest free slot is reused first.
    for (std::uint64_t slot = extent; slot-- > 0;)
        if (records_[slot].id.load(std::memory_order_relaxed) == 0) give_back_slot(slot);
}

}  // namespace dragonmem::detail
