// The descriptor state behind dragonmem::Pool / dragonmem::Memory and behind the C
// API's handles. Not for direct use: the layout may change between releases.
#pragma once

#include <dragonmem/detail/require_cxx20.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace dragonmem::detail {
class PoolMapping;  // a pool mapped into this process (lib/pool/pool_mapping.hpp)
}  // namespace dragonmem::detail

namespace dragonmem::abi {
// Reference counting of PoolMapping, out of line (lib/pool/mapping_registry.cpp). The
// inline code below calls them from the user's program, so they are part of
// libdragonmem.so's interface (lib/dragonmem.map exports them; nothing in detail is
// exported). Not for direct use.
void mapping_add_ref(detail::PoolMapping* mapping) noexcept;
void mapping_release(detail::PoolMapping* mapping) noexcept;
}  // namespace dragonmem::abi

namespace dragonmem::detail {

// What a descriptor knows about a pool without mapping it: enough to serialize it,
// tell whether it is local and answer hostid/uid/name queries off-node.
struct PoolIdentity {
    std::string name;          // base name, 1-29 chars
    std::uint64_t m_uid = 0;
    std::uint64_t hostid = 0;
    std::uint64_t rt_uid = 0;
    std::uint64_t nonce = 0;   // random per pool instance: a recreated pool never matches
    std::uint64_t heap_bytes = 0;
    std::uint32_t id_slot_bits = 0;  // ids carry the manifest slot in their low bits
    // The pool's capability secret (all zero: unknown, as in a format-1 descriptor), and
    // the address ("HOST:PORT") of the agent that serves the pool off-node, empty when
    // none was known where the descriptor was serialized.
    std::array<std::uint8_t, 16> secret{};
    std::string agent;
};

// A counted reference to a PoolMapping; the mapping is unmapped when the last one goes.
// Moves are inline pointer swaps: only copies and the last release touch the count.
class MappingRef {
public:
    MappingRef() = default;
    explicit MappingRef(PoolMapping* adopt) noexcept : p_(adopt) {}  // takes over one count
    MappingRef(const MappingRef& o) noexcept : p_(o.p_) {
        if (p_ != nullptr) abi::mapping_add_ref(p_);
    }
    MappingRef(MappingRef&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
    MappingRef& operator=(const MappingRef& o) noexcept {
        // Self-assignment keeps the reference (reset() would empty o.p_ too, then the
        // count taken here would never be given back).
        if (this == &o) return *this;
        if (o.p_ != nullptr) abi::mapping_add_ref(o.p_);
        reset();
        p_ = o.p_;
        return *this;
    }
    MappingRef& operator=(MappingRef&& o) noexcept {
        if (this != &o) {
            reset();
            p_ = o.p_;
            o.p_ = nullptr;
        }
        return *this;
    }
    ~MappingRef() { reset(); }
    PoolMapping* get() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    void reset() noexcept {
        if (p_ != nullptr) abi::mapping_release(p_);
        p_ = nullptr;
    }

private:
    PoolMapping* p_ = nullptr;
};

// A pool descriptor: local (mapping set; the identity is the mapping's) or remote
// (identity only). Neither set: an empty descriptor.
struct PoolRef {
    MappingRef mapping;
    std::shared_ptr<const PoolIdentity> identity;  // remote descriptors only
    bool valid() const noexcept { return static_cast<bool>(mapping) || identity != nullptr; }
};

// An allocation descriptor: a view [view_offset, view_offset + view_bytes) of a block.
// id 0 is the zero-byte allocation (no block, no manifest record).
struct MemoryRef {
    // Local access, borrowed without a count (allocating costs no atomic): valid while
    // the mapping's epoch is still `mapping_epoch`. Mappings are recycled, never freed,
    // so a descriptor outliving its pool's last attach is detected, not followed.
    PoolMapping* mapping = nullptr;
    std::uint64_t mapping_epoch = 0;
    // A remote pool's identity, or the attach held by a descriptor made by memory attach.
    PoolRef pool;
    std::uint64_t id = 0;
    std::uint64_t type = 0;
    std::uint64_t block_offset = 0;    // offset of the block in the pool's heap
    std::uint64_t requested_bytes = 0; // size asked for at allocation
    std::uint64_t view_offset = 0;     // from the block start
    std::uint64_t view_bytes = 0;
    bool valid() const noexcept { return mapping != nullptr || pool.valid(); }
};

}  // namespace dragonmem::detail
