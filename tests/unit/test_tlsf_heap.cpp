// The heap alone (lib/pool/tlsf_heap.hpp), on private memory every byte of which is
// backed: free layouts a pool reaches only by chance, built with rebuild() (every gap
// between the given live blocks one free block), and what alloc, can_alloc and
// largest_request say about them. No shm object is made.
#include <doctest/doctest.h>

#include "pool/tlsf_heap.hpp"

#include <cstdint>
#include <memory>
#include <vector>

using namespace dragonmem::detail;

TEST_SUITE_BEGIN("tlsf_heap");

namespace {

constexpr std::uint64_t k_heap = 1 << 20;
constexpr std::uint32_t k_min_order = 5;  // 32 B minimum block: 64 B granules

struct PrivateHeap {
    std::vector<std::uint64_t> words = std::vector<std::uint64_t>(k_heap / 8);  // 8-byte aligned heap
    std::vector<std::uint64_t> free_map =
            std::vector<std::uint64_t>(TlsfHeap::free_map_bytes(k_heap, k_min_order) / 8);
    std::unique_ptr<HeapState> state = std::make_unique<HeapState>();
    Backing backing = Backing::everything(k_heap);
    TlsfHeap heap{state.get(), reinterpret_cast<std::uint8_t*>(words.data()), free_map.data(), k_min_order, k_heap,
                  &backing};
    PrivateHeap() { REQUIRE(heap.format(1)); }
    // The heap's free blocks are exactly `free_blocks` (sorted, apart): the rest is live.
    void free_exactly(const std::vector<HeapBlock>& free_blocks) {
        std::vector<HeapBlock> live;
        std::uint64_t cursor = 0;
        for (const HeapBlock& f : free_blocks) {
            if (f.offset > cursor) live.push_back({cursor, f.offset - cursor});
            cursor = f.offset + f.bytes;
        }
        if (cursor < k_heap) live.push_back({cursor, k_heap - cursor});
        heap.rebuild(live, 7);
        REQUIRE(heap.free_block_count() == free_blocks.size());
    }
    FreeBlockHeader& header_at(std::uint64_t offset) {
        return *reinterpret_cast<FreeBlockHeader*>(reinterpret_cast<std::uint8_t*>(words.data()) + offset);
    }
};

// A free 4 KiB-aligned block of `aligned_bytes` at offset 0, and `misaligned` blocks of
// 65 granules at 8192k + 128 (k = 1..): all on the list of 64..67 granules, and no
// 4096-aligned 4096 B inside any of the others. Rebuild lists the later blocks first,
// so the aligned one is last on its list.
std::vector<HeapBlock> aligned_block_behind(std::uint64_t aligned_bytes, std::uint64_t misaligned) {
    std::vector<HeapBlock> free_blocks{{0, aligned_bytes}};
    for (std::uint64_t k = 1; k <= misaligned; ++k) free_blocks.push_back({8192 * k + 128, 65 * 64});
    return free_blocks;
}

}  // namespace

TEST_CASE("tlsf_heap: a 4 KiB request finds the one aligned block behind a hundred that fit only unaligned") {
    PrivateHeap p;
    p.free_exactly(aligned_block_behind(66 * 64, 100));
    REQUIRE(p.heap.largest_free_block().bytes == 66 * 64);
    CHECK(p.heap.largest_request() == 4096);
    CHECK(p.heap.can_alloc(4096));  // was false: the scan stopped after 64 blocks
    const std::uint64_t got = p.heap.alloc(p.heap.block_bytes_for(4096));
    CHECK(got == 0);
    // The next class up (4352 B, granule-aligned) fits nowhere: refused, nothing changed.
    const std::uint64_t free_before = p.heap.free_bytes();
    CHECK(p.heap.alloc(p.heap.block_bytes_for(4097)) == k_nil);
    CHECK(p.heap.free_bytes() == free_before);
}

TEST_CASE("tlsf_heap: largest_request counts an aligned class that fits a smaller block, not the largest one") {
    PrivateHeap p;
    // 4096 B at 0 (aligned), 4160 B at 8320 (its 4096-aligned start leaves 4032 B).
    p.free_exactly({{0, 4096}, {8192 + 128, 65 * 64}});
    REQUIRE(p.heap.largest_free_block().bytes == 65 * 64);
    CHECK(p.heap.largest_request() == 4096);  // was 3968: alignment judged in the largest block only
    CHECK(p.heap.can_alloc(4096));
    CHECK(p.heap.alloc(4096) == 0);
    CHECK(p.heap.largest_request() == 62 * 64);  // the 4160 B block holds the 3968 B class, not 4096 aligned
}

TEST_CASE("tlsf_heap: largest_request is the largest request can_alloc accepts, on random layouts") {
    for (unsigned seed = 1; seed <= 40; ++seed) {
        CAPTURE(seed);
        PrivateHeap p;
        // Free blocks of 1..130 granules at granule offsets, apart, over the whole heap.
        std::vector<HeapBlock> free_blocks;
        std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL;
        auto next = [&x] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            return x;
        };
        for (std::uint64_t at = 64 * (1 + next() % 64); at < k_heap - 16384;) {
            const std::uint64_t bytes = 64 * (1 + next() % 130);
            free_blocks.push_back({at, bytes});
            at += bytes + 64 * (1 + next() % 64);
        }
        p.free_exactly(free_blocks);
        const std::uint64_t largest = p.heap.largest_request();
        REQUIRE(largest != 0);
        CHECK(p.heap.can_alloc(largest));
        // Every class bound above it up to the largest block is refused.
        for (std::uint64_t bytes = p.heap.block_bytes_for(largest + 1); bytes <= p.heap.largest_free_block().bytes;
             bytes = p.heap.block_bytes_for(bytes + 1))
            CHECK_MESSAGE(!p.heap.can_alloc(bytes), bytes);
        CHECK(p.heap.alloc(largest) != k_nil);
    }
}

TEST_CASE("tlsf_heap: a cycle in a free list ends the aligned search as corrupt instead of looping") {
    PrivateHeap p;
    p.free_exactly(aligned_block_behind(64 * 64 + 64, 3));
    p.heap.alloc(p.heap.block_bytes_for(4096));  // takes the aligned block at 0
    // The three 65-granule blocks are left, none with an aligned 4 KiB. Point the last one's
    // link back at the first (links are not covered by the tag).
    const std::uint64_t head = p.state->free_head[SizeClasses::list_of(65)];
    std::uint64_t last = head;
    while (p.header_at(last).next != k_nil) last = p.header_at(last).next;
    REQUIRE(last != head);
    p.header_at(last).next = head;
    CHECK(!p.heap.can_alloc(4096));
    CHECK(p.heap.alloc(4096) == k_heap_corrupt);
}

TEST_SUITE_END();
