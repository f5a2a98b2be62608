// A mapped pool's shared state as repair and check see it: the header, the manifest and
// the heap, nothing of the process that mapped it. Both run with the pool lock held.
#pragma once

#include "pool/tlsf_heap.hpp"
#include "pool/manifest.hpp"
#include "pool/pool_layout.hpp"

#include <dragonmem/types.hpp>

namespace dragonmem::detail {

struct PoolView {
    PoolHeader& header;
    Manifest& manifest;
    TlsfHeap& heap;
};

// After a lock holder died, or the heap was found corrupt: rebuilds everything derived
// from the manifest (pool_repair.cpp says why that is enough). Lock held.
void repair_pool(const PoolView& pool) noexcept;

// The invariant checker (pool_check.cpp): fills `out` (sizes, counts, problems found).
// Lock held; may throw std::bad_alloc (the caller unlocks and reports it).
void collect_invariant_problems(const PoolView& pool, CheckReport& out);

}  // namespace dragonmem::detail
