// Manifest slot management, id assignment and record commit points.
#include "manifest.hpp"

namespace dragonmem::detail {

std::uint64_t Manifest::take_slot() noexcept {
    if (header_->slot_free_head != 0) {
        std::uint64_t slot = header_->slot_free_head - 1;
        // A free slot's `offset` field links to the next free slot (1-based, 0 = end).
        header_->slot_free_head = records_[slot].offset;
        return slot;
    }
    return header_->slot_hwm++;
}

void Manifest::give_back_slot(std::uint64_t slot) noexcept {
    records_[slot].offset = header_->slot_free_head;
    header_->slot_free_head = slot + 1;
}

bool Manifest::next_id(std::uint64_t slot, std::uint64_t& id_out) noexcept {
    std::uint64_t limit = ~std::uint64_t{0} >> slot_bits_;
    if (header_->id_counter >= limit) return false;
    std::uint64_t counter = ++header_->id_counter;
    id_out = (counter << slot_bits_) | slot;
    return true;
}

void Manifest::publish(std::uint64_t slot, std::uint64_t id, std::uint64_t offset, std::uint64_t requested_bytes,
                       std::uint64_t type) noexcept {
    ManifestRecord& rec = records_[slot];
    rec.offset = offset;
    rec.requested_bytes = requested_bytes;
    rec.type = type;
    // Killed before this store: the slot still reads free and repair reclaims the block.
    // Killed after it: the allocation is complete, listed, and anyone may free it.
    rec.id.store(id, std::memory_order_release);
}

void Manifest::retire(std::uint64_t slot) noexcept {
    // Killed before this store: still allocated. After it: gone; repair frees the block.
    records_[slot].id.store(0, std::memory_order_release);
}

const ManifestRecord* Manifest::find(std::uint64_t id) const noexcept {
    if (id == 0) return nullptr;
    std::uint64_t slot = slot_of(id);
    if (slot >= capacity_) return nullptr;
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
