// The invariant checker: deliberate corruption of a pool — garbage in a
// free block's in-band header through the pool's base pointer, edited manifest records
// and counters through a mapping of /dev/shm/dragonmem.NAME — must be reported by
// Pool::check() (ok = false, a problem naming what is wrong) and by the C call
// dragonmem_pool_check (DRAGON_FAILURE + message). Each corruption is undone afterwards
// and check() must pass again, so the report is about that corruption and nothing else.
#include "pool/tlsf_heap.hpp"
#include "shm_view.hpp"
#include "testing.hpp"

#include <cstring>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;
using namespace dragonmem::detail;

TEST_SUITE_BEGIN("checker");

namespace {

std::string joined(const dragonmem::CheckReport& r) {
    std::string out;
    for (const auto& p : r.problems) out += p + " | ";
    return out;
}

// check() must fail with a problem containing every one of `needles`; the C call too.
void expect_problem(Pool& pool, const std::vector<std::string>& needles, const std::string& what) {
    auto report = pool.check();
    CHECK_MESSAGE(!report.ok, what << ": check() passed a corrupt pool");
    CHECK_MESSAGE(!report.problems.empty(), what << ": no problem listed");
    bool found = false;
    for (const auto& p : report.problems) {
        bool all = true;
        for (const auto& n : needles) all = all && p.find(n) != std::string::npos;
        found = found || all;
    }
    std::string wanted;
    for (const auto& n : needles) wanted += "'" + n + "' ";
    CHECK_MESSAGE(found, what << ": no problem mentions " << wanted << "; problems: " << joined(report));

    // The C API reports the same through DRAGON_FAILURE and the message.
    std::vector<std::uint8_t> ser = pool.serialize();
    dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
    dragonMemoryPoolDescr_t descr;
    REQUIRE(dragon_memory_pool_attach(&descr, &s) == DRAGON_SUCCESS);
    dragonError_t rc = dragonmem_pool_check(&descr);
    std::string msg = last_error();
    CHECK_MESSAGE(rc == DRAGON_FAILURE, what << ": dragonmem_pool_check returned " << toString(rc));
    CHECK_MESSAGE(msg.find(needles.front()) != std::string::npos,
                  what << ": dragonmem_pool_check message does not mention '" << needles.front() << "': " << msg);
    (void)dragon_memory_pool_detach(&descr);
}

void expect_ok(Pool& pool, const std::string& what) {
    auto report = pool.check();
    CHECK_MESSAGE(report.ok, what << ": " << joined(report));
}

// Saves `bytes` at `at` and restores them at scope exit.
class Undo {
public:
    Undo(void* at, std::size_t bytes) : at_(static_cast<std::uint8_t*>(at)), saved_(at_, at_ + bytes) {}
    ~Undo() { std::memcpy(at_, saved_.data(), saved_.size()); }

private:
    std::uint8_t* at_;
    std::vector<std::uint8_t> saved_;
};

}  // namespace

TEST_CASE("checker: a clean pool passes, with figures that add up") {
    ScopedPool scoped(64 * 1024, {}, "ck");
    Pool& pool = scoped.pool();
    std::vector<Memory> live;
    for (int i = 0; i < 10; ++i) live.push_back(pool.alloc(static_cast<std::size_t>(100 * (i + 1))));
    live[3].free();
    live[7].free();
    auto r = pool.check();
    CHECK_MESSAGE(r.ok, joined(r));
    CHECK(r.free_bytes + r.used_bytes == r.heap_bytes);
    CHECK(r.live_allocations == 8);
    CHECK(dragonmem_pool_check(nullptr) == DRAGON_INVALID_ARGUMENT);
}

TEST_CASE("checker: garbage written over a free block's header through the pool's base pointer") {
    ScopedPool scoped(64 * 1024, {}, "fb");
    Pool& pool = scoped.pool();
    Memory a = pool.alloc(4096);  // at 0; the rest of the heap is one free block at 4096
    REQUIRE(a.block_offset() == 0);
    auto* heap = static_cast<std::uint8_t*>(pool.base_pointer());
    {
        Undo undo(heap + 4096, 32);
        std::memset(heap + 4096, 0xEE, 32);
        expect_problem(pool, {"4096", "bad header"}, "garbage over the free block at 4096");
    }
    expect_ok(pool, "after restoring the free block at 4096");
    {
        // The footer: the last 16 bytes of the heap, the end of the same free block.
        Undo undo(heap + 64 * 1024 - 16, 16);
        std::memset(heap + 64 * 1024 - 16, 0x42, 8);  // just the tag
        expect_problem(pool, {"4096", "bad footer"}, "garbage over the free block's footer");
    }
    expect_ok(pool, "after restoring the footer");

    // A freed block merged back with the free block after it: its header is the new one.
    Memory b = pool.alloc(4096);
    std::uint64_t b_offset = b.block_offset();
    b.free();
    {
        Undo undo(heap + b_offset, 32);
        std::memset(heap + b_offset, 0x42, 8);  // just the tag
        expect_problem(pool, {std::to_string(b_offset), "bad header"}, "garbage over a merged block's tag");
    }
    expect_ok(pool, "after restoring the merged block");
    a.free();
}

TEST_CASE("checker: free-list links and counters corrupted in the heap state") {
    ScopedPool scoped(64 * 1024, {}, "fl");
    Pool& pool = scoped.pool();
    Memory a = pool.alloc(4096);
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    PoolHeader* h = view.header();
    HeapState& state = heap_state_at(view.base());
    auto* heap = static_cast<std::uint8_t*>(pool.base_pointer());
    // The one free block: 61440 B = 960 granules, in list 14 * 16 + 14 (960 = 30 << 5).
    const unsigned list = SizeClasses::list_of(960);
    REQUIRE(state.free_head[list] == 4096);

    SUBCASE("a free block linked to itself (a cycle)") {
        auto* block = reinterpret_cast<FreeBlockHeader*>(heap + 4096);
        Undo undo(block, sizeof *block);
        block->next = 4096;
        expect_problem(pool, {"4096"}, "self-linked free block");
    }
    SUBCASE("a link out of the heap") {
        Undo undo(&state.free_head[list], 8);
        state.free_head[list] = 1ULL << 40;
        expect_problem(pool, {"out of bounds or misaligned"}, "free list head out of the heap");
    }
    SUBCASE("a free block dropped from its list (lost bytes)") {
        Undo undo(&state, sizeof state);
        state.free_head[list] = k_nil;
        state.free_blocks = 0;
        state.sl_mask[list / k_heap_sl_count] = 0;
        state.fl_mask = 0;
        expect_problem(pool, {"4096", "lost"}, "free block unlinked from its list");
    }
    SUBCASE("free byte counter off by one granule") {
        Undo undo(&state.free_bytes, 8);
        state.free_bytes += 64;
        expect_problem(pool, {"free byte count"}, "free_bytes counter");
    }
    SUBCASE("the free-block count") {
        Undo undo(&state.free_blocks, 8);
        state.free_blocks = 5;
        expect_problem(pool, {"count says 5"}, "free_blocks");
    }
    SUBCASE("a list's non-empty bit") {
        Undo undo(&state.sl_mask[list / k_heap_sl_count], 4);
        state.sl_mask[list / k_heap_sl_count] &= ~(1u << (list % k_heap_sl_count));
        expect_problem(pool, {"non-empty bit"}, "sl_mask");
    }
    SUBCASE("the free map bit of the free block's first granule") {
        auto* map = reinterpret_cast<std::uint64_t*>(view.base() + h->free_map_offset);
        Undo undo(&map[1], 8);
        map[1] &= ~1ULL;  // granule 64 (offset 4096): word 1, bit 0
        expect_problem(pool, {"free map", "4096"}, "free map bit cleared");
    }
    SUBCASE("the live allocation count") {
        Undo undo(&h->live_count, 8);
        h->live_count = 3;
        expect_problem(pool, {"live count says 3"}, "live_count");
    }
    SUBCASE("a list for a block size the pool cannot have") {
        const unsigned huge = SizeClasses::list_of(1ULL << 30);
        Undo undo(&state.free_head[huge], 8);
        state.free_head[huge] = 0;
        expect_problem(pool, {"impossible size class"}, "list of 64 GiB blocks in a 64 KiB pool");
    }
    expect_ok(pool, "after undoing the corruption");
    a.free();
}

TEST_CASE("checker: a free-map bit set at an allocated block's first or last granule") {
    ScopedPool scoped(64 * 1024, {}, "fm");
    Pool& pool = scoped.pool();
    Memory a = pool.alloc(4096);  // granules 0..63: word 0 of the free map
    Memory b = pool.alloc(4096);  // granules 64..127: word 1
    REQUIRE(a.block_offset() == 0);
    REQUIRE(b.block_offset() == 4096);
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    auto* map = reinterpret_cast<std::uint64_t*>(view.base() + view.header()->free_map_offset);
    expect_ok(pool, "two allocations, the rest one free block");
    {
        Undo undo(&map[0], 8);
        map[0] |= 1ULL;  // a's first granule
        expect_problem(pool, {"free map", "first granule", "allocation id " + std::to_string(a.id())},
                       "bit set at an allocation's first granule");
    }
    {
        Undo undo(&map[1], 8);
        map[1] |= 1ULL << 63;  // b's last granule (127)
        expect_problem(pool, {"free map", "last granule", "allocation id " + std::to_string(b.id()), "at 4096"},
                       "bit set at an allocation's last granule");
    }
    {
        Undo undo(&map[0], 8);
        map[0] |= 1ULL << 5;  // inside a: interior bits mean nothing
        expect_ok(pool, "a bit inside an allocated block");
    }
    expect_ok(pool, "after restoring the map");
    a.free();
    b.free();
    expect_ok(pool, "all freed");
}

TEST_CASE("checker: manifest records edited through a mapping of /dev/shm/dragonmem.NAME") {
    ScopedPool scoped(64 * 1024, {}, "mf");
    Pool& pool = scoped.pool();
    Memory a = pool.alloc(1000, 1);
    Memory b = pool.alloc(1000, 2);
    Memory c = pool.alloc(5000, 3);
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    ManifestRecord& ra = view.record_of(a.id());
    REQUIRE(ra.id.load() == a.id());
    const std::string a_id = std::to_string(a.id());

    SUBCASE("a record moved on top of another allocation") {
        Undo undo(&ra, sizeof ra);
        ra.offset = b.block_offset();
        expect_problem(pool, {"overlaps"}, "record of a moved onto b");
        expect_problem(pool, {"lost"}, "a's real block is no longer accounted for");
    }
    SUBCASE("a record with an impossible size") {
        Undo undo(&ra, sizeof ra);
        ra.requested_bytes = 0;
        expect_problem(pool, {"id " + a_id, "impossible size"}, "requested size 0");
    }
    SUBCASE("a record larger than the heap") {
        Undo undo(&ra, sizeof ra);
        ra.requested_bytes = 1ULL << 50;
        expect_problem(pool, {"id " + a_id, "impossible size"}, "requested size 2^50");
    }
    SUBCASE("a misaligned record") {
        Undo undo(&ra, sizeof ra);
        ra.offset += 16;
        expect_problem(pool, {"id " + a_id, "misaligned"}, "offset + 16");
    }
    SUBCASE("a record whose id names another slot") {
        Undo undo(&ra, sizeof ra);
        ra.id.store(a.id() + 1);
        expect_problem(pool, {"belongs to slot"}, "id of another slot");
    }
    SUBCASE("a forged live record in a never-used slot, over free space") {
        std::uint64_t slot = 10;
        ManifestRecord& forged = view.records()[slot];
        Undo undo_rec(&forged, sizeof forged);
        Undo undo_hwm(&view.header()->slot_hwm, 8);
        view.header()->slot_hwm = 11;
        forged.offset = 32768;
        forged.requested_bytes = 64;
        forged.type = 0;
        forged.id.store((999ULL << view.header()->id_slot_bits) | slot);
        expect_problem(pool, {"live count"}, "forged record");
    }
    SUBCASE("an id block reaching past the pool's id counter (issue 11)") {
        auto* blocks = reinterpret_cast<IdBlock*>(view.base() + k_id_blocks_offset);
        IdBlock& block = blocks[k_cache_entries - 1];
        Undo undo(&block, sizeof block);
        const std::uint64_t counter = view.header()->id_counter.load();
        block.next.store(1);
        block.end.store(counter + 100);
        expect_problem(pool, {"id block of thread-cache entry " + std::to_string(k_cache_entries - 1), "past the pool's"},
                       "id block [1, counter + 100)");
        // What the check warns of: a true descriptor of an id issued, then freed, is
        // refused (a live id is accepted on its record alone).
        Memory d = pool.alloc(64);
        const std::vector<std::uint8_t> freed = d.serialize();
        d.free();
        CHECK_THROWS_AS(Memory::attach(freed), dragonmem::Error);
        CHECK_NOTHROW(Memory::attach(b.serialize()));
    }
    SUBCASE("a free-slot list that points past the used slots") {
        Undo undo(&view.header()->slot_free_head, 8);
        view.header()->slot_free_head = 1000;
        expect_problem(pool, {"free-slot list is corrupt"}, "free-slot list head");
    }
    expect_ok(pool, "after undoing the manifest corruption");
    a.free();
    b.free();
    c.free();
    expect_ok(pool, "at the end");
}

TEST_CASE("checker: random garbage over the whole heap state never crashes the checker") {
    ScopedPool scoped(256 * 1024, {}, "gh");
    Pool& pool = scoped.pool();
    std::vector<Memory> live;
    for (int i = 0; i < 30; ++i) live.push_back(pool.alloc(static_cast<std::size_t>(40 * i + 1)));
    for (int i = 0; i < 30; i += 2) live[static_cast<std::size_t>(i)].free();
    ShmView view(scoped.name(), true);
    REQUIRE(view.ok());
    HeapState& state = heap_state_at(view.base());
    std::uint64_t x = 0x9E3779B97F4A7C15ULL;
    int reported = 0;
    const int trials = 200;
    for (int trial = 0; trial < trials; ++trial) {
        Undo undo(&state, sizeof state);
        auto* words = reinterpret_cast<std::uint64_t*>(&state);
        std::size_t n_words = offsetof(HeapState, tag_secret) / 8;
        // A few words garbage (small values too, so links land inside the heap).
        for (int k = 0; k < 1 + trial % 4; ++k) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            std::uint64_t value = (trial % 3 == 0) ? x : (x % pool.heap_bytes()) & ~63ULL;
            words[x % n_words] = value;
        }
        Isolated r = run_isolated([&] {
            auto report = pool.check();
            return std::string(report.ok ? "ok" : "problems");
        });
        REQUIRE_MESSAGE(r.completed, "check() on garbage heap state (trial " << trial << "): " << r.text);
        if (r.text == "problems") ++reported;
    }
    MESSAGE("garbage heap state: " << reported << " of " << trials << " trials reported problems");
    CHECK(reported > trials / 2);
    expect_ok(pool, "after restoring the heap state");
}

TEST_SUITE_END();
