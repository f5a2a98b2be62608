// Pool creation and destruction: names, sizes, attributes, mode, the error codes of
// every rejected request (docs/design.md section 2), and use of a destroyed pool.
#include "testing.hpp"

#include <sys/stat.h>

#include <cstring>

using namespace dmtest;

namespace {

unsigned shm_mode(const std::string& name) {
    struct stat st{};
    REQUIRE_MESSAGE(::stat(shm_path(name).c_str(), &st) == 0, "no " << shm_path(name));
    return st.st_mode & 07777;
}

// Restores the process umask on scope exit.
struct UmaskScope {
    explicit UmaskScope(mode_t mask) : old(::umask(mask)) {}
    ~UmaskScope() { ::umask(old); }
    mode_t old;
};

dragonError_t try_create(const std::string& name, std::size_t bytes, const dragonMemoryPoolAttr_t* attr,
                         dragonMemoryPoolDescr_t* out) {
    return dragon_memory_pool_create(out, bytes, name.c_str(), 1, attr);
}

}  // namespace

TEST_SUITE_BEGIN("pool_create");

TEST_CASE("create makes the shm object and destroy removes everything") {
    ShmGuard guard(unique_pool_name());
    dragonMemoryPoolDescr_t pool{};
    DM_REQUIRE_OK(try_create(guard.name(), 65536, nullptr, &pool));
    CHECK(shm_exists(guard.name()));
    CHECK(dragon_memory_pool_is_local(&pool));
    DM_CHECK_OK(dragon_memory_pool_destroy(&pool));
    CHECK_MESSAGE(shm_objects_of(guard.name()).empty(), "left in /dev/shm after destroy: "
                                                            << shm_objects_of(guard.name()).size() << " objects");
    CHECK_FALSE(shm_exists(guard.name()));
}

TEST_CASE("the allocatable size is bytes rounded up to a power of two") {
    for (std::size_t bytes : {std::size_t{256}, std::size_t{4096}, std::size_t{5000}, std::size_t{65536},
                              std::size_t{100000}, std::size_t{1} << 20}) {
        CAPTURE(bytes);
        TestPool pool(bytes);
        const std::size_t heap = next_pow2(bytes);
        dragonMemoryPoolAttr_t attr{};
        DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &attr));
        CHECK(attr.allocatable_data_size == heap);
        CHECK(attr.max_allocatable_block_size == heap);
        CHECK(attr.free_space == heap);
        CHECK(attr.total_data_size >= heap);
        dragon_memory_attr_destroy(&attr);
        CHECK(free_bytes(pool.pd()) == heap);
        std::uint64_t total = 0;
        DM_CHECK_OK(dragon_memory_pool_get_total_size(pool.pd(), &total));
        CHECK(total == heap);
        // The whole heap is one block: a single allocation of all of it fits.
        dragonMemoryDescr_t mem{};
        DM_CHECK_OK(dragon_memory_alloc(&mem, pool.pd(), heap));
        DM_CHECK_OK(dragon_memory_free(&mem));
    }
}

TEST_CASE("pools with fewer than 5 minimum blocks are INVALID_ARGUMENT and leave nothing behind") {
    struct Row {
        std::size_t bytes;
        std::size_t min_block;
    };
    const Row rows[] = {{0, 0}, {1, 0}, {32, 0}, {128, 0}, {96, 0}, {4096, 1024}, {2048, 512}, {256, 64}};
    for (const Row& row : rows) {
        CAPTURE(row.bytes);
        CAPTURE(row.min_block);
        ShmGuard guard(unique_pool_name());
        dragonMemoryPoolAttr_t attr = default_attr();
        if (row.min_block) attr.data_min_block_size = row.min_block;
        DM_CHECK_CREATE_FAILS(guard.name(), row.bytes, &attr, DRAGON_INVALID_ARGUMENT);
        CHECK(shm_objects_of(guard.name()).empty());
        dragon_memory_attr_destroy(&attr);
    }
    // The smallest accepted pools: 8 blocks (the next power of two above 4).
    TestPool smallest(256);
    CHECK(free_bytes(smallest.pd()) == 256);
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.data_min_block_size = 1024;
    TestPool big_blocks(8192, &attr);
    CHECK(free_bytes(big_blocks.pd()) == 8192);
    dragon_memory_attr_destroy(&attr);
}

TEST_CASE("the minimum block defaults to 32 B and is rounded up to a power of two") {
    TestPool plain(65536);
    dragonMemoryPoolAttr_t got{};
    DM_REQUIRE_OK(dragon_memory_get_attr(plain.pd(), &got));
    CHECK(got.data_min_block_size == 32);
    dragon_memory_attr_destroy(&got);

    dragonMemoryPoolAttr_t attr = default_attr();
    attr.data_min_block_size = 48;
    TestPool rounded(65536, &attr);
    DM_REQUIRE_OK(dragon_memory_get_attr(rounded.pd(), &got));
    CHECK(got.data_min_block_size == 64);
    dragon_memory_attr_destroy(&got);
    // A 1-byte allocation takes a whole 64 B block.
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, rounded.pd(), 1));
    CHECK(free_bytes(rounded.pd()) == 65536 - 64);
    dragon_memory_attr_destroy(&attr);
}

TEST_CASE("max_allocations below 5 is INVALID_ARGUMENT, 5 is accepted") {
    for (std::size_t max_allocs = 1; max_allocs < 5; ++max_allocs) {
        CAPTURE(max_allocs);
        ShmGuard guard(unique_pool_name());
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.max_allocations = max_allocs;
        DM_CHECK_CREATE_FAILS(guard.name(), 65536, &attr, DRAGON_INVALID_ARGUMENT);
        CHECK(shm_objects_of(guard.name()).empty());
        dragon_memory_attr_destroy(&attr);
    }
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.max_allocations = 5;
    TestPool pool(65536, &attr);
    dragonMemoryPoolAttr_t got{};
    DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
    CHECK(got.max_allocations == 5);
    dragon_memory_attr_destroy(&got);
    dragon_memory_attr_destroy(&attr);
}

TEST_CASE("n_segments other than 0 is INVALID_ARGUMENT") {
    for (std::size_t segments : {std::size_t{1}, std::size_t{2}, std::size_t{100}}) {
        CAPTURE(segments);
        ShmGuard guard(unique_pool_name());
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.n_segments = segments;
        DM_CHECK_CREATE_FAILS(guard.name(), 65536, &attr, DRAGON_INVALID_ARGUMENT);
        CHECK(shm_objects_of(guard.name()).empty());
        dragon_memory_attr_destroy(&attr);
    }
}

TEST_CASE("memory types other than SHM, HUGEPAGE and GPU are rejected with ILLEGAL_MEMTYPE") {
    // HUGEPAGE pools: tests/hugepage (they need a hugetlbfs mount and reserved pages);
    // GPU pools: tests/gpu (a GPU, or the error without one).
    for (auto type : {DRAGON_MEMORY_TYPE_FILE, DRAGON_MEMORY_TYPE_PRIVATE}) {
        CAPTURE(static_cast<int>(type));
        ShmGuard guard(unique_pool_name());
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.mem_type = type;
        DM_CHECK_CREATE_FAILS(guard.name(), 65536, &attr, DRAGON_MEMORY_ILLEGAL_MEMTYPE);
        CHECK(shm_objects_of(guard.name()).empty());
        dragon_memory_attr_destroy(&attr);
    }
}

TEST_CASE("pool names: 1-29 safe characters") {
    SUBCASE("29 characters are accepted") {
        TestPool pool(4096, nullptr, 1, 29);
        CHECK(pool.name().size() == 29);
        CHECK(shm_exists(pool.name()));
    }
    SUBCASE("every character of the safe set is accepted") {
        std::string name = unique_pool_name() + "a.Z_9-";
        ShmGuard guard(name);
        dragonMemoryPoolDescr_t pool{};
        DM_REQUIRE_OK(try_create(name, 4096, nullptr, &pool));
        CHECK(shm_exists(name));
        DM_CHECK_OK(dragon_memory_pool_destroy(&pool));
    }
    SUBCASE("empty, 30+ characters and unsafe characters are INVALID_ARGUMENT") {
        const std::string base = unique_pool_name();
        ShmGuard guard(base);
        const std::string bad_names[] = {
            "",
            base + std::string(30 - base.size(), 'y'),
            base + std::string(40 - base.size(), 'y'),
            base + "/x",
            "/" + base,
            base + " x",
            base + "*",
            base + ";x",
            base + "\nx",
            base + "\tx",
            base + "\x01",
            base + "\xc3\xa9",  // UTF-8 e-acute
            base + "%s",
            base + "$x",
            "." + base,
            "-" + base,
            "..",
            ".",
        };
        for (const std::string& bad : bad_names) {
            CAPTURE(bad);
            DM_CHECK_CREATE_FAILS(bad, 4096, nullptr, DRAGON_INVALID_ARGUMENT);
        }
        // Nothing whose name starts with the base was created.
        CHECK(shm_entries_with_prefix("dragonmem." + base).empty());
        CHECK(shm_entries_with_prefix("dragonmem.." + base).empty());
        CHECK(shm_entries_with_prefix("dragonmem.-" + base).empty());
    }
    SUBCASE("a NULL name is INVALID_ARGUMENT") {
        dragonMemoryPoolDescr_t pool{};
        DM_CHECK_RC(dragon_memory_pool_create(&pool, 4096, nullptr, 1, nullptr), DRAGON_INVALID_ARGUMENT);
    }
}

TEST_CASE("a name already in use is MEMORY_ERRNO and the existing pool is untouched") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 1000));
    fill_pattern(mem_pointer(&mem), 1000, 42);
    const PoolState before = pool_state(pool.pd());

    dragonMemoryPoolDescr_t second{};
    DM_CHECK_RC(dragon_memory_pool_create(&second, 65536, pool.name().c_str(), 2, nullptr), DRAGON_MEMORY_ERRNO);
    DM_CHECK_CONTAINS(last_error(), pool.name());
    // Also with another size: the existing object must not be truncated or resized.
    DM_CHECK_RC(dragon_memory_pool_create(&second, 4096, pool.name().c_str(), 2, nullptr), DRAGON_MEMORY_ERRNO);

    CHECK(pool_state(pool.pd()) == before);
    CHECK(find_pattern_mismatch(mem_pointer(&mem), 1000, 42) == -1);
    CHECK(shm_exists(pool.name()));

    // After a destroy the name can be used again.
    DM_REQUIRE_OK(pool.destroy());
    DM_CHECK_OK(dragon_memory_pool_create(&second, 4096, pool.name().c_str(), 2, nullptr));
    DM_CHECK_OK(dragon_memory_pool_destroy(&second));
}

TEST_CASE("mode: default 0600, attr.mode honoured whatever the umask") {
    SUBCASE("default") {
        UmaskScope umask_scope(0);  // a permissive umask must not widen the default
        TestPool pool(4096);
        CHECK(shm_mode(pool.name()) == 0600);
    }
    SUBCASE("0640 under umask 077") {
        UmaskScope umask_scope(077);
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.mode = 0640;
        TestPool pool(4096, &attr);
        CHECK(shm_mode(pool.name()) == 0640);
        dragonMemoryPoolAttr_t got{};
        DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
        CHECK(got.mode == 0640);
        dragon_memory_attr_destroy(&got);
        dragon_memory_attr_destroy(&attr);
    }
    SUBCASE("0666 under umask 022") {
        UmaskScope umask_scope(022);
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.mode = 0666;
        TestPool pool(4096, &attr);
        CHECK(shm_mode(pool.name()) == 0666);
        dragon_memory_attr_destroy(&attr);
    }
}

TEST_CASE("attr_init fills Dragon's defaults and attr_destroy accepts them") {
    dragonMemoryPoolAttr_t attr;
    std::memset(&attr, 0xA5, sizeof attr);  // no field may keep garbage
    DM_REQUIRE_OK(dragon_memory_attr_init(&attr));
    CHECK(attr.data_min_block_size == 32);
    CHECK(attr.mode == 0600);
    CHECK(attr.n_segments == 0);
    // Dragon's placeholders and its HEAD's fields.
    CHECK(attr.allocatable_data_size == (std::size_t{4} << 30));
    CHECK(attr.max_allocatable_block_size == (std::size_t{4} << 30));
    CHECK(attr.max_size == (std::size_t{4} << 30));
    CHECK(attr.segment_size == (std::size_t{128} << 20));
    CHECK(attr.max_allocations == 0);
    CHECK(attr.total_data_size == 0);
    CHECK(attr.free_space == 0);
    CHECK(attr.gpu_device_id == 0);
    CHECK(attr.ipc_handle_size == 0);
    CHECK(attr.numa_node == -1);
    CHECK(attr.lock_type == DRAGON_LOCK_FIFO_LITE);
    CHECK(attr.mem_type == DRAGON_MEMORY_TYPE_SHM);
    CHECK(attr.growth_type == DRAGON_MEMORY_GROWTH_NONE);
    CHECK(attr.npre_allocs == 0);
    CHECK(attr.pre_allocs == nullptr);
    CHECK(attr.mname == nullptr);
    CHECK(attr.names == nullptr);
    DM_CHECK_OK(dragon_memory_attr_destroy(&attr));
}

TEST_CASE("get_attr reports the creation parameters and live figures") {
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.data_min_block_size = 64;
    attr.max_allocations = 100;
    attr.lock_type = DRAGON_LOCK_GREEDY;
    attr.growth_type = DRAGON_MEMORY_GROWTH_CAPPED;
    attr.segment_size = 12345;
    attr.max_size = 67890;
    attr.mode = 0640;
    TestPool pool(100000, &attr, 4242);
    dragon_memory_attr_destroy(&attr);

    dragonMemoryPoolAttr_t got{};
    DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
    CHECK(got.allocatable_data_size == 131072);
    CHECK(got.max_allocatable_block_size == 131072);
    CHECK(got.total_data_size >= 131072);
    CHECK(got.free_space == 131072);
    CHECK(got.utilization_pct == 0.0);
    CHECK(got.data_min_block_size == 64);
    CHECK(got.max_allocations == 100);
    CHECK(got.manifest_entries == 0);
    CHECK(got.waiters_for_manifest == 0);
    CHECK(got.lock_type == DRAGON_LOCK_GREEDY);
    CHECK(got.mem_type == DRAGON_MEMORY_TYPE_SHM);
    CHECK(got.growth_type == DRAGON_MEMORY_GROWTH_CAPPED);
    CHECK(got.segment_size == 12345);
    CHECK(got.max_size == 67890);
    CHECK(got.mode == 0640);
    CHECK(got.n_segments == 0);
    REQUIRE(got.mname != nullptr);
    DM_CHECK_CONTAINS(std::string(got.mname), "dragonmem." + pool.name());
    REQUIRE(got.names != nullptr);
    REQUIRE(got.names[0] != nullptr);
    DM_CHECK_CONTAINS(std::string(got.names[0]), pool.name());
    dragon_memory_attr_destroy(&got);

    // Live figures follow allocations.
    dragonMemoryDescr_t a{}, b{};
    DM_REQUIRE_OK(dragon_memory_alloc(&a, pool.pd(), 1000));  // 1024 B block
    DM_REQUIRE_OK(dragon_memory_alloc(&b, pool.pd(), 64));
    DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
    CHECK(got.manifest_entries == 2);
    CHECK(got.max_manifest_entries >= 2);
    CHECK(got.free_space == 131072 - 1024 - 64);
    CHECK(got.utilization_pct == doctest::Approx(100.0 * (1024 + 64) / 131072));
    dragon_memory_attr_destroy(&got);
    DM_REQUIRE_OK(dragon_memory_free(&a));
    DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
    CHECK(got.manifest_entries == 1);
    CHECK(got.max_manifest_entries == 2);
    dragon_memory_attr_destroy(&got);
}

TEST_CASE("the default manifest capacity is the number of minimum blocks, capped at 1048576") {
    SUBCASE("32 KiB of 32 B blocks") {
        TestPool pool(32768);
        dragonMemoryPoolAttr_t got{};
        DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
        CHECK(got.max_allocations == 1024);
        dragon_memory_attr_destroy(&got);
    }
    SUBCASE("64 KiB of 128 B blocks") {
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.data_min_block_size = 128;
        TestPool pool(65536, &attr);
        dragonMemoryPoolAttr_t got{};
        DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
        CHECK(got.max_allocations == 512);
        dragon_memory_attr_destroy(&got);
        dragon_memory_attr_destroy(&attr);
    }
    SUBCASE("64 MiB of 32 B blocks is capped") {
        TestPool pool(std::size_t{64} << 20);
        dragonMemoryPoolAttr_t got{};
        DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
        CHECK(got.max_allocations == 1048576);
        dragon_memory_attr_destroy(&got);
    }
}

TEST_CASE("pre_allocs: the pool is created and every byte stays allocatable") {
    std::size_t pre[] = {4, 2, 1};  // 4 x 32 B, 2 x 64 B, 1 x 128 B (32 B take a 64 B granule)
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.npre_allocs = 3;
    attr.pre_allocs = pre;
    TestPool pool(4096, &attr);
    attr.npre_allocs = 0;
    attr.pre_allocs = nullptr;  // ours, not the library's to free
    dragon_memory_attr_destroy(&attr);
    CHECK(free_bytes(pool.pd()) == 4096);
    std::vector<dragonMemoryDescr_t> mems(64);
    for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_alloc(&m, pool.pd(), 32));
    CHECK(free_bytes(pool.pd()) == 0);
    for (auto& m : mems) DM_REQUIRE_OK(dragon_memory_free(&m));
    CHECK(free_bytes(pool.pd()) == 4096);
}

TEST_CASE("after pool_destroy every use in this process is MAP_KEY_NOT_FOUND") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    dragonMemoryPoolDescr_t clone{};
    DM_REQUIRE_OK(dragon_memory_pool_descr_clone(&clone, pool.pd()));
    const auto serial = serialize_pool(pool.pd());
    dragonMemoryPoolSerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
    dragonMemoryPoolDescr_t attached{};
    DM_REQUIRE_OK(dragon_memory_pool_attach(&attached, &ser));

    DM_REQUIRE_OK(pool.destroy());
    CHECK(shm_objects_of(pool.name()).empty());

    const dragonError_t gone = DRAGON_MAP_KEY_NOT_FOUND;
    const char* which[] = {"the destroyed descriptor", "a clone taken before destroy", "a descriptor attached before destroy"};
    int index = 0;
    for (dragonMemoryPoolDescr_t* d : {pool.pd(), &clone, &attached}) {
        const std::string descriptor = which[index++];
        CAPTURE(descriptor);
        dragonMemoryDescr_t m{};
        DM_CHECK_RC(dragon_memory_alloc(&m, d, 32), gone);
        std::uint64_t u = 0;
        DM_CHECK_RC(dragon_memory_pool_get_free_size(d, &u), gone);
        dragonMemoryPoolAttr_t attr{};
        DM_CHECK_RC(dragon_memory_get_attr(d, &attr), gone);
        dragonMemoryPoolAllocations_t allocs{};
        DM_CHECK_RC(dragon_memory_pool_get_allocations(d, &allocs), gone);
        void* base = nullptr;
        DM_CHECK_RC(dragon_memory_pool_get_pointer(d, &base), gone);
        DM_CHECK_RC(dragon_memory_pool_destroy(d), gone);
        CHECK_FALSE(dragon_memory_pool_is_local(d));
    }
    void* p = nullptr;
    DM_CHECK_RC(dragon_memory_get_pointer(&mem, &p), gone);
    DM_CHECK_RC(dragon_memory_free(&mem), gone);
    CHECK(shm_objects_of(pool.name()).empty());
}

TEST_SUITE_END();
