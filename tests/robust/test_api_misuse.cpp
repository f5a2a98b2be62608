// Bad-input matrix, API-misuse rows (BAD_INPUTS.md, rows A*): NULL for every pointer
// argument of every C function, uninitialised (garbage) and stale descriptors, destroyed
// and detached pools, double free, free through a stale clone, invalid timeouts, offsets
// and sizes. Each row: the exact code, a message, no crash, and the pool unchanged.
#include "testing.hpp"

#include <cstring>
#include <functional>
#include <random>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

TEST_SUITE_BEGIN("api_misuse");

namespace {

using Call = std::pair<std::string, std::function<dragonError_t()>>;

// Every C call that takes a pool descriptor, with valid other arguments.
std::vector<Call> pool_calls(dragonMemoryPoolDescr_t* p, bool include_destroy) {
    static dragonMemoryPoolAttr_t attr;
    static dragonMemoryPoolSerial_t ser;
    static dragonMemoryPoolDescr_t out_pool;
    static dragonMemoryDescr_t out_mem;
    static dragonULInt ul;
    static std::uint64_t u64;
    static double dbl;
    static std::size_t sz;
    static bool flag;
    static void* ptr;
    static dragonMemoryPoolAllocations_t allocs;
    static dragonHeapStatsAllocationItem_t blocks[64];
    static timespec no_wait{0, 0};
    static const dragonULInt len = 1;
    std::vector<Call> calls = {
        {"get_attr", [=] { dragon_memory_attr_init(&attr); dragonError_t rc = dragon_memory_get_attr(p, &attr); dragon_memory_attr_destroy(&attr); return rc; }},
        {"pool_serialize", [=] { dragonError_t rc = dragon_memory_pool_serialize(&ser, p); if (rc == DRAGON_SUCCESS) dragon_memory_pool_serial_free(&ser); return rc; }},
        {"pool_descr_clone", [=] { dragonError_t rc = dragon_memory_pool_descr_clone(&out_pool, p); if (rc == DRAGON_SUCCESS) dragon_memory_pool_detach(&out_pool); return rc; }},
        {"pool_get_hostid", [=] { return dragon_memory_pool_get_hostid(p, &ul); }},
        {"pool_get_rt_uid", [=] { return dragon_memory_pool_get_rt_uid(p, &ul); }},
        {"pool_runtime_is_local", [=] { return dragon_memory_pool_runtime_is_local(p, &flag); }},
        {"pool_muid", [=] { return dragon_memory_pool_muid(p, &ul); }},
        {"pool_get_free_size", [=] { return dragon_memory_pool_get_free_size(p, &u64); }},
        {"pool_get_total_size", [=] { return dragon_memory_pool_get_total_size(p, &u64); }},
        {"pool_get_utilization_pct", [=] { return dragon_memory_pool_get_utilization_pct(p, &dbl); }},
        {"pool_get_num_block_sizes", [=] { return dragon_memory_pool_get_num_block_sizes(p, &sz); }},
        {"pool_get_free_blocks", [=] { return dragon_memory_pool_get_free_blocks(p, blocks); }},
        {"pool_get_pointer", [=] { return dragon_memory_pool_get_pointer(p, &ptr); }},
        {"pool_get_size", [=] { return dragon_memory_pool_get_size(p, &sz); }},
        {"pool_get_allocations", [=] { dragonError_t rc = dragon_memory_pool_get_allocations(p, &allocs); if (rc == DRAGON_SUCCESS) dragon_memory_pool_allocations_free(&allocs); return rc; }},
        {"pool_get_type_allocations", [=] { dragonError_t rc = dragon_memory_pool_get_type_allocations(p, DRAGON_MEMORY_ALLOC_DATA, &allocs); if (rc == DRAGON_SUCCESS) dragon_memory_pool_allocations_free(&allocs); return rc; }},
        {"get_alloc_memdescr", [=] { dragonError_t rc = dragon_memory_get_alloc_memdescr(&out_mem, p, 1, 0, &len); if (rc == DRAGON_SUCCESS) dragon_memory_detach(&out_mem); return rc; }},
        {"alloc", [=] { dragonError_t rc = dragon_memory_alloc(&out_mem, p, 64); if (rc == DRAGON_SUCCESS) dragon_memory_free(&out_mem); return rc; }},
        {"alloc_blocking", [=] { dragonError_t rc = dragon_memory_alloc_blocking(&out_mem, p, 64, &no_wait); if (rc == DRAGON_SUCCESS) dragon_memory_free(&out_mem); return rc; }},
        {"alloc_type", [=] { dragonError_t rc = dragon_memory_alloc_type(&out_mem, p, 64, DRAGON_MEMORY_ALLOC_CHANNEL); if (rc == DRAGON_SUCCESS) dragon_memory_free(&out_mem); return rc; }},
        {"alloc_type_blocking", [=] { dragonError_t rc = dragon_memory_alloc_type_blocking(&out_mem, p, 64, DRAGON_MEMORY_ALLOC_CHANNEL, &no_wait); if (rc == DRAGON_SUCCESS) dragon_memory_free(&out_mem); return rc; }},
        {"from_id", [=] { dragonError_t rc = dragon_memory_from_id(p, 1, &out_mem); if (rc == DRAGON_SUCCESS) dragon_memory_detach(&out_mem); return rc; }},
        {"dragonmem_pool_check", [=] { return dragonmem_pool_check(p); }},
        {"pool_detach", [=] { return dragon_memory_pool_detach(p); }},
    };
    if (include_destroy) calls.push_back({"pool_destroy", [=] { return dragon_memory_pool_destroy(p); }});
    return calls;
}

// Every C call that takes a memory descriptor.
std::vector<Call> memory_calls(dragonMemoryDescr_t* m) {
    static dragonMemoryDescr_t out_mem;
    static dragonMemoryPoolDescr_t out_pool;
    static dragonMemorySerial_t ser;
    static std::size_t sz;
    static void* ptr;
    static std::uint64_t id;
    static int flag;
    return {
        {"get_size", [=] { return dragon_memory_get_size(m, &sz); }},
        {"get_pool", [=] { dragonError_t rc = dragon_memory_get_pool(m, &out_pool); if (rc == DRAGON_SUCCESS) dragon_memory_pool_detach(&out_pool); return rc; }},
        {"get_pointer", [=] { return dragon_memory_get_pointer(m, &ptr); }},
        {"id", [=] { return dragon_memory_id(m, &id); }},
        {"serialize", [=] { dragonError_t rc = dragon_memory_serialize(&ser, m); if (rc == DRAGON_SUCCESS) dragon_memory_serial_free(&ser); return rc; }},
        {"descr_clone", [=] { dragonError_t rc = dragon_memory_descr_clone(&out_mem, m, 0, nullptr); if (rc == DRAGON_SUCCESS) dragon_memory_detach(&out_mem); return rc; }},
        {"pool_allocation_exists", [=] { return dragon_memory_pool_allocation_exists(m, &flag); }},
        {"modify_size", [=] { return dragon_memory_modify_size(m, 1, nullptr); }},
        {"free", [=] { return dragon_memory_free(m); }},
        {"detach", [=] { return dragon_memory_detach(m); }},
    };
}

struct MisuseFixture {
    ScopedPool scoped{64 * 1024, {}, "am"};
    dragonMemoryPoolDescr_t pd{};
    std::vector<Memory> live;
    PoolSnapshot before;
    MisuseFixture() {
        std::vector<std::uint8_t> ser = scoped.pool().serialize();
        dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
        REQUIRE(dragon_memory_pool_attach(&pd, &s) == DRAGON_SUCCESS);
        for (int i = 0; i < 5; ++i) live.push_back(scoped.pool().alloc(static_cast<std::size_t>(100 + 500 * i), static_cast<std::uint64_t>(i)));
        live[1].free();
        before = snapshot(scoped.pool());
    }
    ~MisuseFixture() { (void)dragon_memory_pool_detach(&pd); }
    void require_unchanged(const std::string& row) {
        PoolSnapshot after = snapshot(scoped.pool());
        CHECK_MESSAGE(after == before, row << ": the pool changed\nbefore " << before.describe() << "\nafter  "
                                           << after.describe());
    }
};

void expect(const std::string& row, dragonError_t rc, dragonError_t expected) {
    count_bad_inputs();
    std::string msg = rc != DRAGON_SUCCESS ? last_error() : "";
    CHECK_MESSAGE(rc == expected, row << " returned " << toString(rc) << " (expected " << toString(expected) << "): " << msg);
    if (expected != DRAGON_SUCCESS && rc == expected) CHECK_MESSAGE(!msg.empty(), row << ": no message");
}

}  // namespace

TEST_CASE("A1: NULL for every pointer argument of every C function") {
    MisuseFixture f;
    dragonMemoryPoolDescr_t* p = &f.pd;
    dragonMemoryDescr_t m;
    REQUIRE(dragon_memory_alloc(&m, p, 64) == DRAGON_SUCCESS);
    PoolSnapshot before = snapshot(f.scoped.pool());
    dragonMemoryPoolAttr_t attr;
    dragon_memory_attr_init(&attr);
    dragonMemoryPoolSerial_t pser{};
    dragonMemorySerial_t mser{};
    REQUIRE(dragon_memory_pool_serialize(&pser, p) == DRAGON_SUCCESS);
    REQUIRE(dragon_memory_serialize(&mser, &m) == DRAGON_SUCCESS);
    dragonMemoryPoolDescr_t pool_out;
    dragonMemoryDescr_t mem_out;
    dragonULInt ul = 0;
    std::uint64_t u64 = 0;
    double dbl = 0;
    std::size_t sz = 0;
    bool flag = false;
    int iflag = 0;
    void* ptr = nullptr;
    dragonMemoryPoolAllocations_t allocs{};
    timespec t{0, 0};
    const dragonULInt len = 1;
    const std::string name = unique_pool_name("null");
    ShmGuard guard(name);
    const std::vector<Call> rows = {
        {"attr_init(NULL)", [&] { return dragon_memory_attr_init(nullptr); }},
        {"attr_destroy(NULL)", [&] { return dragon_memory_attr_destroy(nullptr); }},
        {"get_attr(NULL, attr)", [&] { return dragon_memory_get_attr(nullptr, &attr); }},
        {"get_attr(pool, NULL)", [&] { return dragon_memory_get_attr(p, nullptr); }},
        {"pool_create(NULL, ...)", [&] { return dragon_memory_pool_create(nullptr, 65536, name.c_str(), 1, nullptr); }},
        {"pool_create(descr, NULL name)", [&] { return dragon_memory_pool_create(&pool_out, 65536, nullptr, 1, nullptr); }},
        {"pool_destroy(NULL)", [&] { return dragon_memory_pool_destroy(nullptr); }},
        {"pool_serialize(NULL, pool)", [&] { return dragon_memory_pool_serialize(nullptr, p); }},
        {"pool_serialize(ser, NULL)", [&] { return dragon_memory_pool_serialize(&pser, nullptr); }},
        {"pool_serial_free(NULL)", [&] { return dragon_memory_pool_serial_free(nullptr); }},
        {"pool_attach(NULL, ser)", [&] { return dragon_memory_pool_attach(nullptr, &pser); }},
        {"pool_attach(descr, NULL)", [&] { return dragon_memory_pool_attach(&pool_out, nullptr); }},
        {"pool_attach_from_env(NULL, var)", [&] { return dragon_memory_pool_attach_from_env(nullptr, "HOME"); }},
        {"pool_attach_from_env(descr, NULL)", [&] { return dragon_memory_pool_attach_from_env(&pool_out, nullptr); }},
        {"pool_detach(NULL)", [&] { return dragon_memory_pool_detach(nullptr); }},
        {"pool_descr_clone(NULL, pool)", [&] { return dragon_memory_pool_descr_clone(nullptr, p); }},
        {"pool_descr_clone(new, NULL)", [&] { return dragon_memory_pool_descr_clone(&pool_out, nullptr); }},
        {"pool_get_hostid(NULL, x)", [&] { return dragon_memory_pool_get_hostid(nullptr, &ul); }},
        {"pool_get_hostid(pool, NULL)", [&] { return dragon_memory_pool_get_hostid(p, nullptr); }},
        {"pool_get_rt_uid(NULL, x)", [&] { return dragon_memory_pool_get_rt_uid(nullptr, &ul); }},
        {"pool_get_rt_uid(pool, NULL)", [&] { return dragon_memory_pool_get_rt_uid(p, nullptr); }},
        {"pool_runtime_is_local(NULL, x)", [&] { return dragon_memory_pool_runtime_is_local(nullptr, &flag); }},
        {"pool_runtime_is_local(pool, NULL)", [&] { return dragon_memory_pool_runtime_is_local(p, nullptr); }},
        {"pool_get_uid_fname(NULL, ...)", [&] { return dragon_memory_pool_get_uid_fname(nullptr, &ul, nullptr); }},
        {"pool_muid(NULL, x)", [&] { return dragon_memory_pool_muid(nullptr, &ul); }},
        {"pool_muid(pool, NULL)", [&] { return dragon_memory_pool_muid(p, nullptr); }},
        {"pool_get_free_size(NULL, x)", [&] { return dragon_memory_pool_get_free_size(nullptr, &u64); }},
        {"pool_get_free_size(pool, NULL)", [&] { return dragon_memory_pool_get_free_size(p, nullptr); }},
        {"pool_get_total_size(NULL, x)", [&] { return dragon_memory_pool_get_total_size(nullptr, &u64); }},
        {"pool_get_total_size(pool, NULL)", [&] { return dragon_memory_pool_get_total_size(p, nullptr); }},
        {"pool_get_utilization_pct(NULL, x)", [&] { return dragon_memory_pool_get_utilization_pct(nullptr, &dbl); }},
        {"pool_get_utilization_pct(pool, NULL)", [&] { return dragon_memory_pool_get_utilization_pct(p, nullptr); }},
        {"pool_get_num_block_sizes(NULL, x)", [&] { return dragon_memory_pool_get_num_block_sizes(nullptr, &sz); }},
        {"pool_get_num_block_sizes(pool, NULL)", [&] { return dragon_memory_pool_get_num_block_sizes(p, nullptr); }},
        {"pool_get_free_blocks(pool, NULL)", [&] { return dragon_memory_pool_get_free_blocks(p, nullptr); }},
        {"pool_get_pointer(NULL, x)", [&] { return dragon_memory_pool_get_pointer(nullptr, &ptr); }},
        {"pool_get_pointer(pool, NULL)", [&] { return dragon_memory_pool_get_pointer(p, nullptr); }},
        {"pool_get_size(NULL, x)", [&] { return dragon_memory_pool_get_size(nullptr, &sz); }},
        {"pool_get_size(pool, NULL)", [&] { return dragon_memory_pool_get_size(p, nullptr); }},
        {"pool_get_allocations(NULL, x)", [&] { return dragon_memory_pool_get_allocations(nullptr, &allocs); }},
        {"pool_get_allocations(pool, NULL)", [&] { return dragon_memory_pool_get_allocations(p, nullptr); }},
        {"pool_get_type_allocations(pool, NULL)", [&] { return dragon_memory_pool_get_type_allocations(p, DRAGON_MEMORY_ALLOC_DATA, nullptr); }},
        {"pool_allocations_free(NULL)", [&] { return dragon_memory_pool_allocations_free(nullptr); }},
        {"pool_allocations_destroy(NULL)", [&] { return dragon_memory_pool_allocations_destroy(nullptr); }},
        {"pool_allocation_exists(NULL, x)", [&] { return dragon_memory_pool_allocation_exists(nullptr, &iflag); }},
        {"pool_allocation_exists(mem, NULL)", [&] { return dragon_memory_pool_allocation_exists(&m, nullptr); }},
        {"get_alloc_memdescr(NULL, pool, ...)", [&] { return dragon_memory_get_alloc_memdescr(nullptr, p, 1, 0, &len); }},
        {"get_alloc_memdescr(mem, NULL, ...)", [&] { return dragon_memory_get_alloc_memdescr(&mem_out, nullptr, 1, 0, &len); }},
        {"alloc(NULL, pool, n)", [&] { return dragon_memory_alloc(nullptr, p, 64); }},
        {"alloc(mem, NULL, n)", [&] { return dragon_memory_alloc(&mem_out, nullptr, 64); }},
        {"alloc_blocking(NULL, pool, ...)", [&] { return dragon_memory_alloc_blocking(nullptr, p, 64, &t); }},
        {"alloc_blocking(mem, NULL, ...)", [&] { return dragon_memory_alloc_blocking(&mem_out, nullptr, 64, &t); }},
        {"alloc_type(NULL, pool, ...)", [&] { return dragon_memory_alloc_type(nullptr, p, 64, DRAGON_MEMORY_ALLOC_DATA); }},
        {"alloc_type(mem, NULL, ...)", [&] { return dragon_memory_alloc_type(&mem_out, nullptr, 64, DRAGON_MEMORY_ALLOC_DATA); }},
        {"alloc_type_blocking(NULL, pool, ...)", [&] { return dragon_memory_alloc_type_blocking(nullptr, p, 64, DRAGON_MEMORY_ALLOC_DATA, &t); }},
        {"alloc_type_blocking(mem, NULL, ...)", [&] { return dragon_memory_alloc_type_blocking(&mem_out, nullptr, 64, DRAGON_MEMORY_ALLOC_DATA, &t); }},
        {"free(NULL)", [&] { return dragon_memory_free(nullptr); }},
        {"get_size(NULL, x)", [&] { return dragon_memory_get_size(nullptr, &sz); }},
        {"get_size(mem, NULL)", [&] { return dragon_memory_get_size(&m, nullptr); }},
        {"get_pool(NULL, x)", [&] { return dragon_memory_get_pool(nullptr, &pool_out); }},
        {"get_pool(mem, NULL)", [&] { return dragon_memory_get_pool(&m, nullptr); }},
        {"get_pointer(NULL, x)", [&] { return dragon_memory_get_pointer(nullptr, &ptr); }},
        {"get_pointer(mem, NULL)", [&] { return dragon_memory_get_pointer(&m, nullptr); }},
        {"id(NULL, x)", [&] { return dragon_memory_id(nullptr, &u64); }},
        {"id(mem, NULL)", [&] { return dragon_memory_id(&m, nullptr); }},
        {"from_id(NULL, id, mem)", [&] { return dragon_memory_from_id(nullptr, 1, &mem_out); }},
        {"from_id(pool, id, NULL)", [&] { return dragon_memory_from_id(p, 1, nullptr); }},
        {"serialize(NULL, mem)", [&] { return dragon_memory_serialize(nullptr, &m); }},
        {"serialize(ser, NULL)", [&] { return dragon_memory_serialize(&mser, nullptr); }},
        {"attach(NULL, ser)", [&] { return dragon_memory_attach(nullptr, &mser); }},
        {"attach(mem, NULL)", [&] { return dragon_memory_attach(&mem_out, nullptr); }},
        {"detach(NULL)", [&] { return dragon_memory_detach(nullptr); }},
        {"serial_free(NULL)", [&] { return dragon_memory_serial_free(nullptr); }},
        {"descr_clone(NULL, mem, ...)", [&] { return dragon_memory_descr_clone(nullptr, &m, 0, nullptr); }},
        {"descr_clone(new, NULL, ...)", [&] { return dragon_memory_descr_clone(&mem_out, nullptr, 0, nullptr); }},
        {"modify_size(NULL, ...)", [&] { return dragon_memory_modify_size(nullptr, 1, nullptr); }},
        {"dragonmem_pool_check(NULL)", [&] { return dragonmem_pool_check(nullptr); }},
    };
    for (const auto& entry : rows) {
        const std::string& row = entry.first;
        const std::function<dragonError_t()>& call = entry.second;
        Isolated r = run_isolated(
            [&] {
                const dragonError_t rc = call();
                return std::to_string(static_cast<int>(rc)) + " " + last_error();
            },
            10000);
        count_bad_inputs();
        REQUIRE_MESSAGE(r.completed, "A1 " << row << ": " << r.text);
        int rc = std::stoi(r.text);
        std::string msg = r.text.substr(r.text.find(' ') + 1);
        CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, "A1 " << row << " returned "
                                                           << toString(static_cast<dragonError_t>(rc)) << ": " << msg);
        CHECK_MESSAGE(!msg.empty(), "A1 " << row << ": no message");
    }
    CHECK_FALSE(dragon_memory_pool_is_local(nullptr));
    CHECK_FALSE(shm_exists(name));
    PoolSnapshot after = snapshot(f.scoped.pool());
    CHECK_MESSAGE(after == before, "A1\nbefore " << before.describe() << "\nafter  " << after.describe());
    dragon_memory_pool_serial_free(&pser);
    dragon_memory_serial_free(&mser);
    dragon_memory_attr_destroy(&attr);
    REQUIRE(dragon_memory_free(&m) == DRAGON_SUCCESS);
    f.require_unchanged("A1 end");
}

TEST_CASE("A2: uninitialised (garbage) and stale descriptors") {
    MisuseFixture f;
    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> keys = {0, 1, 2, 0xFFFFFFFF, ~0ULL, 0xDEADBEEFDEADBEEFULL, f.pd._idx ^ (1ULL << 32),
                                       f.pd._idx + 1000, f.pd._idx ^ 0xFFFFFFFF00000000ULL};
    for (int i = 0; i < 20; ++i) keys.push_back(rng());
    for (std::uint64_t key : keys) {
        dragonMemoryPoolDescr_t garbage;
        std::memset(&garbage, 0xA5, sizeof garbage);
        garbage._idx = key;
        for (const auto& [name, call] : pool_calls(&garbage, true))
            expect("A2 pool descriptor key " + std::to_string(key) + " " + name, call(), DRAGON_MAP_KEY_NOT_FOUND);
        CHECK_FALSE(dragon_memory_pool_is_local(&garbage));
        dragonMemoryDescr_t mem_garbage;
        std::memset(&mem_garbage, 0x5A, sizeof mem_garbage);
        mem_garbage._idx = key;
        for (const auto& [name, call] : memory_calls(&mem_garbage))
            expect("A2 memory descriptor key " + std::to_string(key) + " " + name, call(), DRAGON_MAP_KEY_NOT_FOUND);
    }
    // A detached pool descriptor and a detached memory descriptor are stale.
    dragonMemoryPoolDescr_t clone;
    REQUIRE(dragon_memory_pool_descr_clone(&clone, &f.pd) == DRAGON_SUCCESS);
    REQUIRE(dragon_memory_pool_detach(&clone) == DRAGON_SUCCESS);
    for (const auto& [name, call] : pool_calls(&clone, true))
        expect("A2 detached pool descriptor " + name, call(), DRAGON_MAP_KEY_NOT_FOUND);
    dragonMemoryDescr_t mem;
    REQUIRE(dragon_memory_from_id(&f.pd, f.live[0].id(), &mem) == DRAGON_SUCCESS);
    REQUIRE(dragon_memory_detach(&mem) == DRAGON_SUCCESS);
    for (const auto& [name, call] : memory_calls(&mem))
        expect("A2 detached memory descriptor " + name, call(), DRAGON_MAP_KEY_NOT_FOUND);
    CHECK(f.live[0].exists());
    f.require_unchanged("A2");
}

TEST_CASE("A3: a destroyed pool: its descriptors, clones and allocation descriptors") {
    ScopedPool scoped(64 * 1024, {}, "dd");
    std::vector<std::uint8_t> ser = scoped.pool().serialize();
    dragonMemoryPoolSerial_t s{ser.size(), ser.data()};
    dragonMemoryPoolDescr_t pd, clone;
    REQUIRE(dragon_memory_pool_attach(&pd, &s) == DRAGON_SUCCESS);
    REQUIRE(dragon_memory_pool_descr_clone(&clone, &pd) == DRAGON_SUCCESS);
    dragonMemoryDescr_t mem, view;
    REQUIRE(dragon_memory_alloc(&mem, &pd, 1000) == DRAGON_SUCCESS);
    std::size_t len = 10;
    REQUIRE(dragon_memory_descr_clone(&view, &mem, 5, &len) == DRAGON_SUCCESS);
    REQUIRE(dragon_memory_pool_destroy(&pd) == DRAGON_SUCCESS);
    CHECK_FALSE(shm_exists(scoped.name()));
    for (const auto& [name, call] : pool_calls(&pd, true))
        expect("A3 destroyed pool descriptor " + name, call(), DRAGON_MAP_KEY_NOT_FOUND);
    // Its clone and the C++ handle refer to the same destroyed pool in this process.
    for (const auto& [name, call] : pool_calls(&clone, false)) {
        if (name == "pool_detach" || name == "pool_get_hostid" || name == "pool_get_rt_uid" ||
            name == "pool_runtime_is_local" || name == "pool_muid" || name == "pool_get_size" ||
            name == "pool_get_total_size" || name == "pool_get_pointer")
            continue;  // identity queries and detach work on a destroyed pool's clone
        expect("A3 clone of a destroyed pool " + name, call(), DRAGON_MAP_KEY_NOT_FOUND);
    }
    for (dragonMemoryDescr_t* d : {&mem, &view})
        for (const auto& [name, call] : memory_calls(d)) {
            if (name == "get_size" || name == "id" || name == "descr_clone" || name == "modify_size" || name == "detach")
                continue;  // descriptor-only queries
            expect("A3 allocation of a destroyed pool " + name, call(), DRAGON_MAP_KEY_NOT_FOUND);
        }
    (void)dragon_memory_detach(&mem);
    (void)dragon_memory_detach(&view);
    (void)dragon_memory_pool_detach(&clone);
    try {
        scoped.pool().alloc(10);
        FAIL_CHECK("A3 C++ handle of a destroyed pool allocated");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == DRAGON_MAP_KEY_NOT_FOUND, e.what());
    }
    count_bad_inputs();
}

TEST_CASE("A4: double free, free through a stale clone, free after the block was reused") {
    MisuseFixture f;
    Pool& pool = f.scoped.pool();
    dragonMemoryDescr_t a, a_clone, a_by_id;
    REQUIRE(dragon_memory_alloc(&a, &f.pd, 2000) == DRAGON_SUCCESS);
    std::uint64_t a_id = 0;
    REQUIRE(dragon_memory_id(&a, &a_id) == DRAGON_SUCCESS);
    REQUIRE(dragon_memory_descr_clone(&a_clone, &a, 100, nullptr) == DRAGON_SUCCESS);
    REQUIRE(dragon_memory_from_id(&f.pd, a_id, &a_by_id) == DRAGON_SUCCESS);
    std::vector<std::uint8_t> a_serial;
    {
        dragonMemorySerial_t s{};
        REQUIRE(dragon_memory_serialize(&s, &a) == DRAGON_SUCCESS);
        a_serial.assign(s.data, s.data + s.len);
        dragon_memory_serial_free(&s);
    }
    REQUIRE(dragon_memory_free(&a) == DRAGON_SUCCESS);
    f.require_unchanged("A4 after alloc+free");
    expect("A4 double free through the same descriptor", dragon_memory_free(&a), DRAGON_MAP_KEY_NOT_FOUND);
    expect("A4 free through a clone of a freed allocation", dragon_memory_free(&a_clone), DRAGON_KEY_NOT_FOUND);
    expect("A4 free through a from_id descriptor of a freed allocation", dragon_memory_free(&a_by_id),
           DRAGON_KEY_NOT_FOUND);
    f.require_unchanged("A4 stale frees");
    // The block and the manifest slot get reused by a newer allocation; the stale
    // descriptors must not reach it.
    Memory newer = pool.alloc(2000, 9);
    std::memset(newer.pointer(), 0x3C, 2000);
    PoolSnapshot with_newer = snapshot(pool);
    expect("A4 free through a stale clone after reuse", dragon_memory_free(&a_clone), DRAGON_KEY_NOT_FOUND);
    expect("A4 free through a stale from_id descriptor after reuse", dragon_memory_free(&a_by_id), DRAGON_KEY_NOT_FOUND);
    dragonMemorySerial_t s{a_serial.size(), a_serial.data()};
    dragonMemoryDescr_t a_attached;
    if (dragon_memory_attach(&a_attached, &s) == DRAGON_SUCCESS) {
        void* p = nullptr;
        expect("A4 get_pointer through a stale serialized descriptor after reuse",
               dragon_memory_get_pointer(&a_attached, &p), DRAGON_KEY_NOT_FOUND);
        expect("A4 free through a stale serialized descriptor after reuse", dragon_memory_free(&a_attached),
               DRAGON_KEY_NOT_FOUND);
        (void)dragon_memory_detach(&a_attached);
    }
    void* p = nullptr;
    expect("A4 get_pointer through a stale clone after reuse", dragon_memory_get_pointer(&a_clone, &p),
           DRAGON_KEY_NOT_FOUND);
    PoolSnapshot after = snapshot(pool);
    CHECK_MESSAGE(after == with_newer, "A4 reuse\nbefore " << with_newer.describe() << "\nafter  " << after.describe());
    CHECK(newer.exists());
    CHECK(static_cast<unsigned char*>(newer.pointer())[1999] == 0x3C);
    (void)dragon_memory_detach(&a_clone);
    (void)dragon_memory_detach(&a_by_id);
    // Double free through the C++ API.
    newer.free();
    try {
        Memory again = pool.from_id(with_newer.allocations.back().id);
        FAIL_CHECK("A4 from_id found a freed allocation");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == DRAGON_KEY_NOT_FOUND, e.what());
    }
    count_bad_inputs();
    f.require_unchanged("A4 end");
}

TEST_CASE("A5: invalid timeouts, offsets, lengths, sizes and ids") {
    MisuseFixture f;
    dragonMemoryPoolDescr_t* p = &f.pd;
    dragonMemoryDescr_t m, out;
    REQUIRE(dragon_memory_alloc(&m, p, 1000) == DRAGON_SUCCESS);
    PoolSnapshot before = snapshot(f.scoped.pool());
    for (timespec t : {timespec{0, -1}, timespec{0, 1000000000L}, timespec{-1, 0}, timespec{0, 2000000000L}}) {
        expect("A5 alloc_blocking timeout {" + std::to_string(t.tv_sec) + "," + std::to_string(t.tv_nsec) + "}",
               dragon_memory_alloc_blocking(&out, p, 64, &t), DRAGON_INVALID_ARGUMENT);
    }
    std::size_t big = 1001, ok_len = 10;
    expect("A5 descr_clone offset -1", dragon_memory_descr_clone(&out, &m, -1, nullptr), DRAGON_INVALID_ARGUMENT);
    expect("A5 descr_clone offset past the end", dragon_memory_descr_clone(&out, &m, 1001, nullptr), DRAGON_INVALID_ARGUMENT);
    expect("A5 descr_clone length past the end", dragon_memory_descr_clone(&out, &m, 0, &big), DRAGON_INVALID_ARGUMENT);
    expect("A5 descr_clone offset+length past the end", dragon_memory_descr_clone(&out, &m, 995, &ok_len),
           DRAGON_INVALID_ARGUMENT);
    expect("A5 descr_clone offset PTRDIFF_MIN", dragon_memory_descr_clone(&out, &m, PTRDIFF_MIN, nullptr),
           DRAGON_INVALID_ARGUMENT);
    expect("A5 modify_size beyond the requested size", dragon_memory_modify_size(&m, 1001, nullptr), DRAGON_INVALID_ARGUMENT);
    expect("A5 alloc larger than the pool", dragon_memory_alloc(&out, p, 1ULL << 40), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    expect("A5 alloc SIZE_MAX", dragon_memory_alloc(&out, p, SIZE_MAX), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    timespec forever_not{0, 1000000};
    expect("A5 blocking alloc larger than the pool", dragon_memory_alloc_blocking(&out, p, 1ULL << 40, &forever_not),
           DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
    std::uint64_t id = 0;
    (void)dragon_memory_id(&m, &id);
    for (std::uint64_t bad : std::vector<std::uint64_t>{0, id + 1, id ^ (1ULL << 62), ~0ULL, id + (1ULL << 20)})
        expect("A5 from_id " + std::to_string(bad), dragon_memory_from_id(p, bad, &out), DRAGON_KEY_NOT_FOUND);
    const dragonULInt too_long = 1001;
    expect("A5 get_alloc_memdescr offset past the end", dragon_memory_get_alloc_memdescr(&out, p, id, 1001, nullptr),
           DRAGON_INVALID_ARGUMENT);
    expect("A5 get_alloc_memdescr length past the end", dragon_memory_get_alloc_memdescr(&out, p, id, 0, &too_long),
           DRAGON_INVALID_ARGUMENT);
    PoolSnapshot after = snapshot(f.scoped.pool());
    CHECK_MESSAGE(after == before, "A5\nbefore " << before.describe() << "\nafter  " << after.describe());
    REQUIRE(dragon_memory_free(&m) == DRAGON_SUCCESS);
    f.require_unchanged("A5 end");
}

TEST_CASE("A6: pool_create misuse, and a name in use leaves the existing pool untouched") {
    MisuseFixture f;
    dragonMemoryPoolDescr_t d;
    const std::string name = unique_pool_name("cr");
    ShmGuard guard(name);
    dragonMemoryPoolAttr_t attr;
    dragon_memory_attr_init(&attr);
    attr.n_segments = 1;
    expect("A6 n_segments 1", dragon_memory_pool_create(&d, 65536, name.c_str(), 1, &attr), DRAGON_INVALID_ARGUMENT);
    dragon_memory_attr_init(&attr);
    attr.npre_allocs = 3;
    attr.pre_allocs = nullptr;
    expect("A6 npre_allocs without pre_allocs", dragon_memory_pool_create(&d, 65536, name.c_str(), 1, &attr),
           DRAGON_INVALID_ARGUMENT);
    dragon_memory_attr_init(&attr);
    attr.max_allocations = 4;
    expect("A6 max_allocations 4", dragon_memory_pool_create(&d, 65536, name.c_str(), 1, &attr), DRAGON_INVALID_ARGUMENT);
    dragon_memory_attr_init(&attr);
    attr.mode = 010000;
    expect("A6 mode with non-permission bits", dragon_memory_pool_create(&d, 65536, name.c_str(), 1, &attr),
           DRAGON_INVALID_ARGUMENT);
    expect("A6 size 0", dragon_memory_pool_create(&d, 0, name.c_str(), 1, nullptr), DRAGON_INVALID_ARGUMENT);
    expect("A6 size 100 (fewer than 5 minimum blocks)", dragon_memory_pool_create(&d, 100, name.c_str(), 1, nullptr),
           DRAGON_INVALID_ARGUMENT);
    expect("A6 size 2^60", dragon_memory_pool_create(&d, 1ULL << 60, name.c_str(), 1, nullptr), DRAGON_INVALID_ARGUMENT);
    for (std::string bad : {std::string(""), std::string(30, 'n'), std::string("a/b"), std::string("../etc"),
                            std::string(".x"), std::string("-x"), std::string("a b")})
        expect("A6 name '" + bad + "'", dragon_memory_pool_create(&d, 65536, bad.c_str(), 1, nullptr),
               DRAGON_INVALID_ARGUMENT);
    CHECK_FALSE(shm_exists(name));
    // The fixture's pool name is in use: MEMORY_ERRNO, and that pool is untouched.
    expect("A6 name in use", dragon_memory_pool_create(&d, 65536, f.scoped.name().c_str(), 1, nullptr),
           DRAGON_MEMORY_ERRNO);
    expect("A6 name in use, other size", dragon_memory_pool_create(&d, 1 << 20, f.scoped.name().c_str(), 1, nullptr),
           DRAGON_MEMORY_ERRNO);
    f.require_unchanged("A6");
}

TEST_CASE("A7: with every pthread key taken, the C API works and sets no key it does not own") {
    // The C API's descriptor tables create a pthread key (to give a thread's free handles
    // back when it exits) when first used; in a process that has none left, the failure
    // must be handled, not ignored: an ignored one leaves the table using key 0, i.e.
    // another owner's key, and the library writes its own pointer into it.
    ScopedPool scoped(1 << 16, {}, "keys");
    // No pthread key left means no thread-exit hook: the exiting thread's descriptor stash
    // is not given back, by design, which LeakSanitizer would report at the child's exit.
    Child child = Child::spawn({child_program(), "keys-exhausted"},
                               {{"DMR_POOL", scoped.pool().serialize_base64()}, {"ASAN_OPTIONS", "detect_leaks=0"}});
    ChildResult e = child.wait(30000);
    REQUIRE_MESSAGE(e.exited_with(0), "keys-exhausted child " << e.describe());
    auto line = child.wait_line("keys", 100);
    REQUIRE_MESSAGE(line.has_value(), child.output());
    CHECK_MESSAGE(std::stoul(field(*line, "taken")) > 0, *line);
    CHECK_MESSAGE(field(*line, "clobbered") == "0", *line);
    CHECK_MESSAGE(field(*line, "rc") == "0", *line);
    count_bad_inputs();
    // The child's allocation was freed: the pool is as it was.
    auto attrs = scoped.pool().attributes();
    CHECK(attrs.live_allocations == 0);
    CHECK(scoped.pool().check().ok);
}

TEST_SUITE_END();
