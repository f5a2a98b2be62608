// The pure part of creating and opening a pool (lib/pool/pool_geometry.hpp): create's
// size and option checks, the layout they give, and the header check open() makes
// before it maps anything. No shm object is made: these run on plain memory.
#include <doctest/doctest.h>

#include "os/error.hpp"
#include "pool/pool_geometry.hpp"
#include "pool/pool_name.hpp"
#include "pool/thread_cache.hpp"
#include "pool/tlsf_heap.hpp"

#include <bit>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <string>

using namespace dragonmem;
using namespace dragonmem::detail;

namespace {

// A header image in private memory, as open() reads one (zeros, then the fields set).
struct HeaderImage {
    alignas(64) unsigned char bytes[sizeof(PoolHeader)] = {};
    PoolHeader& header() { return *reinterpret_cast<PoolHeader*>(bytes); }
    template <typename T>
    void set(std::size_t offset, T value) {
        std::memcpy(bytes + offset, &value, sizeof value);
    }
};

// What create writes for pool `name` planned as `g` (geometry, name, magic).
void format_image(HeaderImage& image, const PoolGeometry& g, const std::string& name) {
    store_geometry(image.header(), g);
    std::memcpy(image.header().name, name.data(), name.size());
}

PoolGeometry plan_ok(std::size_t bytes, const PoolOptions& options = {}) {
    PoolGeometry g;
    REQUIRE_MESSAGE(plan_geometry("geo", bytes, options, g) == DRAGON_SUCCESS, last_error_message());
    return g;
}

// The call fails with `code` and its message contains `part`.
void check_refused(dragonError_t rc, dragonError_t code, const std::string& part) {
    CHECK(rc == code);
    CHECK_MESSAGE(last_error_message().find(part) != std::string::npos, last_error_message());
}

}  // namespace

TEST_SUITE_BEGIN("pool_geometry");

TEST_CASE("plan_geometry: a pool's regions follow each other and the heap is a power of two") {
    const PoolGeometry g = plan_ok(1000000);
    CHECK(g.heap_bytes == (1u << 20));  // rounded up
    CHECK(g.max_order == 20);
    CHECK(g.min_order == 5);             // 32 B, the default and the floor
    CHECK(g.capacity == (1u << 15));     // one record per minimum block
    CHECK(g.id_slot_bits == 15);
    CHECK(g.manifest_offset == k_backing_map_offset + g.map_bytes);
    CHECK(g.free_map_offset == g.manifest_offset + g.manifest_bytes);
    CHECK(g.heap_offset == g.free_map_offset + g.free_map_bytes);
    CHECK(g.total_bytes == g.heap_offset + g.heap_bytes);
    CHECK(g.heap_offset % k_page_bytes == 0);
    CHECK(g.manifest_bytes % k_page_bytes == 0);
    CHECK(g.alignment == g.heap_bytes);  // a 1 MiB heap is aligned to 1 MiB in every process
    // Sparse: what must fit now is the heap plus the metadata backed at creation.
    CHECK(g.needed_bytes > g.heap_bytes);
    CHECK(g.needed_bytes < g.total_bytes);
}

TEST_CASE("plan_geometry: options change the layout as asked") {
    PoolOptions options;
    options.min_block_bytes = 4096;
    options.max_allocations = 100;
    const PoolGeometry g = plan_ok(1 << 20, options);
    CHECK(g.min_order == 12);
    CHECK(g.capacity == 100);
    CHECK(g.id_slot_bits == 7);
    options.reserve = true;
    const PoolGeometry reserved = plan_ok(1 << 20, options);
    CHECK(reserved.needed_bytes == reserved.total_bytes);  // everything is backed now
    CHECK(reserved.records_backed == reserved.capacity);
    // A small heap is page-aligned, never less.
    CHECK(plan_ok(4096).alignment == k_page_bytes);
}

TEST_CASE("plan_geometry: creation backs the free-map bits of every granule heap chunk 0 overlaps") {
    // format() writes the bit of granule 0 (and Backing::back_heap_chunk counts a chunk's
    // bits the same way): with a minimum block over a page, the granule is larger than the
    // chunk, and the figure was 0 (the page written without being backed: SIGBUS when
    // /dev/shm is full at that moment).
    struct Case {
        std::size_t heap;
        std::size_t min_block;
    };
    for (const Case c : {Case{1 << 20, 32}, Case{1 << 20, 4096}, Case{1 << 20, 8192}, Case{std::size_t{1} << 30, 16384},
                         Case{std::size_t{1} << 30, 1 << 20}, Case{std::size_t{1} << 34, 32}}) {
        CAPTURE(c.heap);
        CAPTURE(c.min_block);
        PoolOptions options;
        options.min_block_bytes = c.min_block;
        options.max_allocations = 100;
        const PoolGeometry g = plan_ok(c.heap, options);
        const std::uint32_t granule_order = TlsfHeap::granule_order_for(g.min_order);
        const std::uint64_t granules_in_chunk0 = ((g.first_chunk_bytes - 1) >> granule_order) + 1;
        CHECK(g.first_free_map_bytes >= (granules_in_chunk0 + 7) / 8);
        CHECK(g.first_free_map_bytes >= k_page_bytes);
        CHECK(g.first_free_map_bytes % k_page_bytes == 0);
        CHECK(g.first_free_map_bytes <= g.free_map_bytes);
        CHECK(g.first_free_map_bytes < k_page_bytes + (granules_in_chunk0 + 7) / 8);  // no more than that
    }
}

TEST_CASE("plan_geometry refuses bad sizes and options, naming the value") {
    PoolGeometry g;
    PoolOptions options;
    check_refused(plan_geometry("geo", 0, options, g), DRAGON_INVALID_ARGUMENT, "size 0 bytes");
    check_refused(plan_geometry("geo", std::size_t{1} << 47, options, g), DRAGON_INVALID_ARGUMENT,
                  "exceeds the 2^46 B limit");
    check_refused(plan_geometry("geo", 64, options, g), DRAGON_INVALID_ARGUMENT, "hold only 2 blocks");
    {
        PoolOptions bad = options;
        bad.mem_type = static_cast<dragonMemoryPoolType_t>(7);
        check_refused(plan_geometry("geo", 1 << 20, bad, g), DRAGON_MEMORY_ILLEGAL_MEMTYPE, "memory type 7");
    }
    {
        PoolOptions bad = options;
        bad.mode = 01600;
        check_refused(plan_geometry("geo", 1 << 20, bad, g), DRAGON_INVALID_ARGUMENT, "mode 1600");
    }
    {
        PoolOptions bad = options;
        // As a C caller can store it: 9 is no dragonLockKind_t value, so it is written as
        // the enum's underlying integer (a C++ cast to the enum would be undefined).
        const std::underlying_type_t<dragonLockKind_t> nine = 9;
        std::memcpy(&bad.lock_type, &nine, sizeof nine);
        check_refused(plan_geometry("geo", 1 << 20, bad, g), DRAGON_INVALID_LOCK_KIND, "lock type 9");
    }
    {
        PoolOptions bad = options;
        bad.max_allocations = (std::uint64_t{1} << 32) + 1;
        check_refused(plan_geometry("geo", 1 << 20, bad, g), DRAGON_INVALID_ARGUMENT, "max_allocations 4294967297");
    }
    {
        PoolOptions bad = options;
        bad.preallocs = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};  // 2^21 B blocks in a 1 MiB heap
        check_refused(plan_geometry("geo", 1 << 20, bad, g), DRAGON_INVALID_ARGUMENT, "preallocation index 16");
    }
}

TEST_CASE("validate_header accepts what create formats and names what is wrong otherwise") {
    const PoolGeometry g = plan_ok(1 << 20);
    const std::string shm_name = shm_name_for("geo");
    HeaderImage image;
    format_image(image, g, "geo");
    CHECK(validate_header(image.header(), k_pool_magic, g.total_bytes, shm_name) == DRAGON_SUCCESS);

    check_refused(validate_header(image.header(), k_pool_magic + 1, g.total_bytes, shm_name), DRAGON_INVALID_ARGUMENT,
                  "wrong magic");
    check_refused(validate_header(image.header(), k_pool_magic, g.total_bytes + k_page_bytes, shm_name),
                  DRAGON_INVALID_ARGUMENT, "but the object has");
    check_refused(validate_header(image.header(), k_pool_magic, g.total_bytes, shm_name_for("other")),
                  DRAGON_INVALID_ARGUMENT, "does not match the object's name");
    {
        HeaderImage bad = image;
        bad.header().layout_version = k_layout_version + 1;
        check_refused(validate_header(bad.header(), k_pool_magic, g.total_bytes, shm_name), DRAGON_INVALID_ARGUMENT,
                      "layout version");
    }
    {
        HeaderImage bad = image;
        bad.header().heap_offset += k_page_bytes;  // regions no longer where create puts them
        check_refused(validate_header(bad.header(), k_pool_magic, g.total_bytes, shm_name), DRAGON_INVALID_ARGUMENT,
                      "inconsistent");
    }
    {
        HeaderImage bad = image;
        bad.header().heap_alignment = 3 * k_page_bytes;
        check_refused(validate_header(bad.header(), k_pool_magic, g.total_bytes, shm_name), DRAGON_INVALID_ARGUMENT,
                      "heap alignment");
    }
    {
        HeaderImage bad = image;
        bad.set(offsetof(PoolHeader, id_counter), std::uint64_t{1} << 63);
        check_refused(validate_header(bad.header(), k_pool_magic, g.total_bytes, shm_name), DRAGON_INVALID_ARGUMENT,
                      "id counter");
    }
}

TEST_CASE("pool names: the rules and the shm name live in one place") {
    CHECK(validate_pool_name("a.b-c_9") == DRAGON_SUCCESS);
    check_refused(validate_pool_name(""), DRAGON_INVALID_ARGUMENT, "has 0 characters");
    check_refused(validate_pool_name(std::string(30, 'x')), DRAGON_INVALID_ARGUMENT, "has 30 characters");
    check_refused(validate_pool_name("a/b"), DRAGON_INVALID_ARGUMENT, "contains '/'");
    check_refused(validate_pool_name("-a"), DRAGON_INVALID_ARGUMENT, "must not start with '-'");
    CHECK(shm_name_for("p1") == "dragonmem.p1");
    CHECK(base_name_of("dragonmem.p1") == "p1");
    CHECK(base_name_of("other.p1").empty());
}

// The heap's size rule is pure too (lib/pool/tlsf_heap.hpp): the cached paths' one-scan
// class of a request must be the class of the block the locked path gives it, for every
// request size and granule; and a block holds its request by less than 1/16 over whole
// granules.
TEST_CASE("size classes: class_for_request is the class of block_bytes_for, and a block wastes < 1/16") {
    using dragonmem::detail::TlsfHeap;
    for (std::uint32_t min_order : {5u, 6u, 7u, 12u}) {
        const TlsfHeap heap(nullptr, nullptr, nullptr, min_order, std::uint64_t{1} << 40, nullptr);
        const std::uint64_t granule = heap.granule_bytes();
        auto check = [&](std::uint64_t r) {
            const std::uint64_t block = heap.block_bytes_for(r);
            const std::uint64_t whole = (r + granule - 1) / granule * granule;
            CHECK_MESSAGE(heap.class_for_request(r) == heap.class_of(block), "request " << r << ", granule " << granule);
            CHECK_MESSAGE(heap.class_bytes(heap.class_of(block)) == block, "request " << r);
            CHECK_MESSAGE((block >= whole && block - whole < whole / 16 + granule), "request " << r << " block " << block);
        };
        for (std::uint64_t r = 1; r <= 70000; ++r) check(r);
        for (std::uint64_t r = 70000; r < (std::uint64_t{1} << 40); r = r * 9 / 8 + 7) check(r);
    }
}

// The cached allocation checks the block it pops against its class with the table of
// class sizes (thread_cache.hpp, k_cached_class_granules): a request belongs to cached
// class c exactly when it is over the block of class c - 1 and at most that of c.
TEST_CASE("size classes: the cached classes' table gives each class exactly its requests") {
    using dragonmem::detail::k_cached_class_granules;
    using dragonmem::detail::k_cached_classes;
    using dragonmem::detail::TlsfHeap;
    for (std::uint32_t min_order : {6u, 7u, 12u}) {
        const TlsfHeap heap(nullptr, nullptr, nullptr, min_order, std::uint64_t{1} << 40, nullptr);
        const std::uint32_t g = heap.granule_order();
        for (std::uint32_t c = 1; c < k_cached_classes; ++c) {
            CHECK(heap.class_bytes(c) == std::uint64_t{k_cached_class_granules[c]} << g);
            const std::uint64_t lower = std::uint64_t{k_cached_class_granules[c - 1]} << g;
            const std::uint64_t upper = std::uint64_t{k_cached_class_granules[c]} << g;
            for (std::uint64_t r : {lower, lower + 1, upper - 1, upper, upper + 1}) {
                if (r == 0) continue;
                const bool in_range = r > lower && r <= upper;
                CHECK_MESSAGE((heap.class_for_request(r) == c) == in_range,
                              "class " << c << ", request " << r << ", granule order " << g);
            }
        }
    }
}

// TlsfHeap::alignment_of is branch free (a branch on "a power of two" was mispredicted on
// most cached allocations of a mixed-size workload): against its definition written out
// plainly, for every class bound, under each granule.
TEST_CASE("size classes: a block's alignment is its size for a power of two up to 4 KiB, else the granule") {
    using dragonmem::detail::k_aligned_block_max;
    using dragonmem::detail::k_heap_lists;
    using dragonmem::detail::TlsfHeap;
    for (std::uint32_t min_order : {6u, 7u, 12u, 13u}) {
        const TlsfHeap heap(nullptr, nullptr, nullptr, min_order, std::uint64_t{1} << 40, nullptr);
        for (std::uint32_t c = 1; c < k_heap_lists; ++c) {
            const std::uint64_t bytes = heap.class_bytes(c);
            if (bytes == 0 || bytes > heap.heap_bytes()) continue;
            const bool natural = bytes <= k_aligned_block_max && (bytes & (bytes - 1)) == 0;
            const std::uint64_t expected = natural ? bytes : heap.granule_bytes();
            CHECK_MESSAGE(heap.alignment_of(bytes) == expected,
                          "class " << c << ", block " << bytes << " B, granule " << heap.granule_bytes() << " B");
        }
    }
}

// The branch-free class arithmetic (SizeClasses) against its definition written out
// plainly: lists 0-31 one granule apart, then 16 per power of two. The lists index
// shared memory (HeapState::free_head), so the mapping must never change silently.
TEST_CASE("size classes: the branch-free list_of, lower_bound, round_up and list_for match their definition") {
    using dragonmem::detail::SizeClasses;
    auto plain_list_of = [](std::uint64_t g) -> std::uint32_t {
        if (g < 32) return static_cast<std::uint32_t>(g);
        const auto f = static_cast<std::uint32_t>(std::bit_width(g) - 1);
        return (f - 3) * 16 + static_cast<std::uint32_t>((g >> (f - 4)) & 15);
    };
    auto plain_lower_bound = [](std::uint32_t list) -> std::uint64_t {
        if (list < 32) return list;
        return (16 + std::uint64_t{list % 16}) << (list / 16 - 1);
    };
    auto check = [&](std::uint64_t g) {
        const std::uint32_t list = plain_list_of(g);
        CHECK_MESSAGE(SizeClasses::list_of(g) == list, "granules " << g);
        CHECK_MESSAGE(SizeClasses::lower_bound(list) == plain_lower_bound(list), "list " << list);
        // round_up: the smallest class bound >= g; list_for: its list.
        const std::uint64_t up = plain_lower_bound(list) == g ? g : plain_lower_bound(list + 1);
        CHECK_MESSAGE(SizeClasses::round_up(g) == up, "granules " << g);
        CHECK_MESSAGE(SizeClasses::list_for(g) == plain_list_of(up), "granules " << g);
    };
    for (std::uint64_t g = 1; g <= 70000; ++g) check(g);
    for (std::uint64_t g = 70000; g < (std::uint64_t{1} << 40); g = g * 9 / 8 + 7) check(g);
    for (std::uint32_t f = 5; f < 40; ++f) {  // each power of two and its neighbours
        check((std::uint64_t{1} << f) - 1);
        check(std::uint64_t{1} << f);
        check((std::uint64_t{1} << f) + 1);
    }
}

TEST_SUITE_END();
