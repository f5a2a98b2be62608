// The heap's merge probes (lib/pool/tlsf_heap.cpp): freeing a block merges it with the
// free block ending right before it and the one starting right after it, and must find
// out whether those are free without reading their bytes while they are allocated: their
// owners may be writing them at that instant, without the pool lock (a data race;
// ThreadSanitizer reports it in suite "threads"). Here the allocated neighbours' pages
// are made inaccessible, so a read of them faults instead of racing.
// Suite "threads": it runs under ThreadSanitizer too, with the threaded stress that
// would show the race itself.
#include "pool/tlsf_heap.hpp"
#include "testing.hpp"

#include <sys/mman.h>

#include <cstring>
#include <memory>
#include <vector>

using dragonmem::detail::HeapBlock;
using dragonmem::detail::HeapState;
using dragonmem::detail::TlsfHeap;
using namespace dmtest;

TEST_SUITE_BEGIN("threads");

TEST_CASE("threads: freeing a block never reads its neighbours while they are allocated") {
    Isolated r = run_isolated([]() -> std::string {
        constexpr std::uint32_t min_order = 5;
        constexpr std::uint64_t heap_bytes = std::uint64_t{1} << 20;
        constexpr std::uint64_t block = 4096;  // page-sized blocks, so one can be made inaccessible
        void* mapped = ::mmap(nullptr, heap_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) return std::string("mmap failed");
        auto* base = static_cast<std::uint8_t*>(mapped);
        std::vector<std::uint64_t> free_map(TlsfHeap::free_map_bytes(heap_bytes, min_order) / 8, 0);
        auto state = std::make_unique<HeapState>();
        dragonmem::detail::Backing backing = dragonmem::detail::Backing::everything(heap_bytes);
        TlsfHeap heap(state.get(), base, free_map.data(), min_order, heap_bytes, &backing);
        if (!heap.format(0x5EC2E7)) return std::string("format failed");
        // A, B, C, D side by side: B lies between two allocated blocks.
        const std::uint64_t a = heap.alloc(block);
        const std::uint64_t b = heap.alloc(block);
        const std::uint64_t c = heap.alloc(block);
        const std::uint64_t d = heap.alloc(block);
        if (a != 0 || b != block || c != 2 * block || d != 3 * block)
            return "setup: blocks at " + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) +
                   ", " + std::to_string(d) + " are not side by side from 0";
        // A and C are allocated: user data, and any read of them faults.
        std::memset(base + a, 0xA5, block);
        std::memset(base + c, 0x5A, block);
        if (::mprotect(base + a, block, PROT_NONE) != 0 || ::mprotect(base + c, block, PROT_NONE) != 0)
            return std::string("mprotect failed");
        heap.free(b, block);  // must find out that A and C are not free without reading them
        ::mprotect(base + a, block, PROT_READ | PROT_WRITE);
        ::mprotect(base + c, block, PROT_READ | PROT_WRITE);
        // Now C merges with B and with the rest after D; A and D close the gaps.
        heap.free(c, block);
        heap.free(a, block);
        heap.free(d, block);
        if (heap.free_bytes() != heap_bytes)
            return "free bytes " + std::to_string(heap.free_bytes()) + " after freeing all";
        if (heap.free_block_count() != 1)
            return std::to_string(heap.free_block_count()) + " free blocks after freeing all";
        std::uint64_t whole = heap.alloc(heap_bytes);
        if (whole != 0) return "the whole heap did not allocate after freeing all: " + std::to_string(whole);
        std::vector<HeapBlock> listed;
        std::vector<std::string> problems;
        heap.free(whole, heap_bytes);
        heap.collect_listed_blocks(listed, problems);
        if (!problems.empty()) return "checker: " + problems.front();
        ::munmap(mapped, heap_bytes);
        return std::string("ok");
    });
    CHECK_MESSAGE((r.completed && r.text == "ok"), r.text);
}

// The free map's pages get memory with the heap pages they describe (pool_backing.hpp):
// a heap page never backed has never held a free block's header or footer, so its
// free-map bits are known to be 0 and must not be read (on a full /dev/shm the read is a
// SIGBUS). Here the free map's pages past the first are inaccessible and only a few heap
// pages are marked backed; a manifest (damaged, as after a crash) names a live block in a
// page never backed, and its neighbour's free goes through the merge probe.
TEST_CASE("threads: the merge probe and repair never read free-map bits of a heap page never backed") {
    Isolated r = run_isolated([]() -> std::string {
        using namespace dragonmem::detail;
        constexpr std::uint32_t min_order = 5;
        constexpr std::uint32_t max_order = 23;  // 8 MiB: 4 free-map pages, one per 2 MiB
        constexpr std::uint64_t heap_bytes = std::uint64_t{1} << max_order;
        constexpr std::uint64_t mib = std::uint64_t{1} << 20;
        const std::uint64_t map_bytes = backing_map_bytes_for(max_order);
        const std::uint64_t free_map_offset = k_backing_map_offset + map_bytes;
        const std::uint64_t free_map_bytes = TlsfHeap::free_map_bytes(heap_bytes, min_order);
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
        // Backed: the map's first page, and the heap's first and 512th pages (the first
        // and last of the 2 MiB block at 0), whose free-map bits are on the first page.
        reinterpret_cast<BitPage*>(base + k_backing_dir_offset)->words[0].store(1);
        auto* map = reinterpret_cast<BitPage*>(base + k_backing_map_offset);
        map->words[0].store(1);
        map->words[7].store(std::uint64_t{1} << 63);
        if (::mprotect(base + free_map_offset + k_page_bytes, free_map_bytes - k_page_bytes, PROT_NONE) != 0)
            return std::string("mprotect failed");
        Backing backing(h, ShmMapping{base, total}, "dragonmem.none", ShmObjectId{});
        TlsfHeap heap(&heap_state_at(base), base + heap_offset,
                      reinterpret_cast<std::uint64_t*>(base + free_map_offset), min_order, heap_bytes, &backing);
        // Repair after a crash: live blocks at 0 (2 MiB) and at 2 MiB (1 MiB, a page never
        // backed). The gap after it cannot be backed here (its pages refuse): left out.
        const HeapBlock live[] = {{0, 2 * mib}, {2 * mib, mib}};
        heap.rebuild(live, 0x5EC2E7);
        if (heap.free_bytes() != 0) return "free bytes after the repair: " + std::to_string(heap.free_bytes());
        // The block at 0 is freed: its neighbour at 2 MiB is asked about.
        heap.free(0, 2 * mib);
        std::vector<HeapBlock> listed;
        std::vector<std::string> problems;
        heap.collect_listed_blocks(listed, problems);
        if (!problems.empty()) return "checker: " + problems.front();
        if (listed.size() != 1 || listed[0].offset != 0 || listed[0].bytes != 2 * mib)
            return "listed " + std::to_string(listed.size()) + " blocks, expected the 2 MiB block at 0";
        ::munmap(mapped, total);
        return std::string("ok");
    });
    CHECK_MESSAGE((r.completed && r.text == "ok"), r.text);
}

TEST_SUITE_END();
