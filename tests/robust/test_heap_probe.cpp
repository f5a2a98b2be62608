// The buddy heap's merge probe (lib/pool/buddy_heap.cpp): freeing a block merges it with its
// buddy only if the buddy is free, and must find that out without reading the buddy's
// bytes while it is allocated: its owner may be writing them at that instant, without
// the pool lock (a data race; ThreadSanitizer reports it in suite "threads"). Here the
// allocated buddy's page is made inaccessible, so a read of it faults instead of racing.
// Suite "threads": it runs under ThreadSanitizer too, with the threaded stress that
// would show the race itself.
#include "pool/buddy_heap.hpp"
#include "testing.hpp"

#include <sys/mman.h>

#include <cstring>
#include <vector>

using dragonmem::detail::BuddyHeap;
using dragonmem::detail::HeapState;
using dragonmem::detail::k_deferred_limit;
using namespace dmtest;

TEST_SUITE_BEGIN("threads");

TEST_CASE("threads: freeing a block never reads its buddy while the buddy is allocated") {
    Isolated r = run_isolated([]() -> std::string {
        constexpr std::uint32_t min_order = 5;
        constexpr std::uint32_t max_order = 20;
        constexpr std::uint32_t order = 12;  // page-sized blocks, so one can be made inaccessible
        constexpr std::uint64_t heap_bytes = std::uint64_t{1} << max_order;
        constexpr std::uint64_t block = std::uint64_t{1} << order;
        void* mapped = ::mmap(nullptr, heap_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) return std::string("mmap failed");
        auto* base = static_cast<std::uint8_t*>(mapped);
        std::vector<std::uint64_t> free_map(BuddyHeap::free_map_bytes(heap_bytes, min_order) / 8, 0);
        HeapState state{};
        dragonmem::detail::Backing backing = dragonmem::detail::Backing::everything(heap_bytes);
        BuddyHeap heap(&state, base, free_map.data(), min_order, max_order, &backing);
        heap.format(0x5EC2E7);
        // Buddies B and C; then enough blocks of their size freed that the size's
        // deferred list is full, so that the next free of that size merges at once.
        std::uint64_t b = heap.alloc(order);
        std::uint64_t c = heap.alloc(order);
        if ((b ^ c) != block) return "setup: blocks at " + std::to_string(b) + " and " + std::to_string(c) + " are not buddies";
        std::vector<std::uint64_t> others;
        for (std::uint64_t i = 0; i < k_deferred_limit; ++i) others.push_back(heap.alloc(order));
        for (std::uint64_t offset : others) heap.free(offset, order);
        // C is allocated: user data, and any read of it faults.
        std::memset(base + c, 0xA5, block);
        if (::mprotect(base + c, block, PROT_NONE) != 0) return std::string("mprotect failed");
        heap.free(b, order);  // must find out that C is not free without reading C
        ::mprotect(base + c, block, PROT_READ | PROT_WRITE);
        // Now C's free merges with B, and everything coalesces back into one block.
        heap.free(c, order);
        if (!heap.coalesce_deferred()) return std::string("coalescing found a damaged header");
        if (heap.free_bytes() != heap_bytes) return "free bytes " + std::to_string(heap.free_bytes()) + " after freeing all";
        std::uint64_t whole = heap.alloc(max_order);
        if (whole != 0) return "the whole heap did not allocate after freeing all: " + std::to_string(whole);
        std::vector<dragonmem::detail::HeapBlock> listed;
        std::vector<std::string> problems;
        heap.free(whole, max_order);
        heap.collect_listed_blocks(listed, problems);
        if (!problems.empty()) return "checker: " + problems.front();
        return std::string("ok");
    });
    CHECK_MESSAGE((r.completed && r.text == "ok"), r.text);
}

// The free map's pages get memory with the heap pages they describe (pool_backing.hpp):
// a heap page never backed has never held a free block, so its free-map bits are known
// to be 0 and must not be read (on a full /dev/shm the read is a SIGBUS). Here the free
// map's pages past the first are inaccessible and only the heap's first page is marked
// backed; a manifest (damaged, as after a crash) names a live block in a page never
// backed, and its buddy's free goes through the merge probe.
TEST_CASE("threads: the merge probe and repair never read free-map bits of a heap page never backed") {
    Isolated r = run_isolated([]() -> std::string {
        using namespace dragonmem::detail;
        constexpr std::uint32_t min_order = 5;
        constexpr std::uint32_t max_order = 23;  // 8 MiB: 8 free-map pages, one per MiB
        constexpr std::uint32_t order = 20;      // 1 MiB blocks: buddies in different free-map pages
        constexpr std::uint64_t heap_bytes = std::uint64_t{1} << max_order;
        const std::uint64_t map_bytes = backing_map_bytes_for(max_order);
        const std::uint64_t free_map_offset = k_backing_map_offset + map_bytes;
        const std::uint64_t free_map_bytes = BuddyHeap::free_map_bytes(heap_bytes, min_order);
        const std::uint64_t heap_offset = free_map_offset + free_map_bytes;
        const std::uint64_t total = heap_offset + heap_bytes;
        void* mapped = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) return std::string("mmap failed");
        auto* base = static_cast<std::uint8_t*>(mapped);
        auto* h = reinterpret_cast<PoolHeader*>(base);
        h->heap_offset = heap_offset;
        h->heap_bytes = heap_bytes;
        h->min_block_order = min_order;
        h->max_block_order = max_order;
        h->manifest_capacity = 64;
        h->backing_dir_offset = k_backing_dir_offset;
        h->backing_map_offset = k_backing_map_offset;
        h->backing_map_bytes = map_bytes;
        h->heap_chunk_shift = heap_chunk_shift_for(max_order);
        h->free_map_offset = free_map_offset;
        h->free_map_bytes = free_map_bytes;
        // Backed: the map's first page and the heap's first page (with its free-map page).
        reinterpret_cast<BitPage*>(base + k_backing_dir_offset)->words[0].store(1);
        reinterpret_cast<BitPage*>(base + k_backing_map_offset)->words[0].store(1);
        if (::mprotect(base + free_map_offset + k_page_bytes, free_map_bytes - k_page_bytes, PROT_NONE) != 0)
            return std::string("mprotect failed");
        Backing backing(h, ShmMapping{base, total}, "dragonmem.none", ShmObjectId{});
        BuddyHeap heap(&h->heap, base + heap_offset, reinterpret_cast<std::uint64_t*>(base + free_map_offset),
                       min_order, max_order, &backing);
        // Repair after a crash: live blocks at 0 and at 1 MiB (a page never backed). The
        // gaps past 2 MiB cannot be backed here (their free-map pages refuse): left out.
        const std::uint64_t mib = std::uint64_t{1} << order;
        const HeapBlock live[] = {{0, order}, {mib, order}};
        heap.rebuild(live, 0x5EC2E7);
        if (heap.free_bytes() != 0) return "free bytes after the repair: " + std::to_string(heap.free_bytes());
        // The block at 0 is freed and coalesced: its buddy at 1 MiB is asked about.
        heap.free(0, order);
        if (!heap.coalesce_deferred()) return std::string("coalescing found a damaged header");
        std::vector<HeapBlock> listed;
        std::vector<std::string> problems;
        heap.collect_listed_blocks(listed, problems);
        if (!problems.empty()) return "checker: " + problems.front();
        if (listed.size() != 1 || listed[0].offset != 0 || listed[0].order != order)
            return "listed " + std::to_string(listed.size()) + " blocks, expected the 1 MiB block at 0";
        ::munmap(mapped, total);
        return std::string("ok");
    });
    CHECK_MESSAGE((r.completed && r.text == "ok"), r.text);
}

TEST_SUITE_END();
