// The buddy heap's merge probe (lib/buddy_heap.cpp): freeing a block merges it with its
// buddy only if the buddy is free, and must find that out without reading the buddy's
// bytes while it is allocated: its owner may be writing them at that instant, without
// the pool lock (a data race; ThreadSanitizer reports it in suite "threads"). Here the
// allocated buddy's page is made inaccessible, so a read of it faults instead of racing.
// Suite "threads": it runs under ThreadSanitizer too, with the threaded stress that
// would show the race itself.
#include "buddy_heap.hpp"
#include "support.hpp"

#include <sys/mman.h>

#include <cstring>
#include <vector>

using dragonmem::detail::BuddyHeap;
using dragonmem::detail::HeapState;
using dragonmem::detail::k_deferred_limit;
using namespace robust;

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
        BuddyHeap heap(&state, base, free_map.data(), min_order, max_order);
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

TEST_SUITE_END();
