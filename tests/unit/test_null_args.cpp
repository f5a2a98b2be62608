// NULL arguments: every C API function refuses a NULL pointer argument with
// INVALID_ARGUMENT and a message (as Dragon does), instead of crashing.
#include "testing.hpp"

using namespace dmtest;

TEST_SUITE_BEGIN("null_args");

TEST_CASE("NULL pointer arguments are INVALID_ARGUMENT") {
    TestPool pool(65536);
    dragonMemoryPoolDescr_t* pd = pool.pd();
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pd, 64));
    const auto pool_bytes = serialize_pool(pd);
    dragonMemoryPoolSerial_t pser{pool_bytes.size(), const_cast<std::uint8_t*>(pool_bytes.data())};
    const auto mem_bytes = serialize_mem(&mem);
    dragonMemorySerial_t mser{mem_bytes.size(), const_cast<std::uint8_t*>(mem_bytes.data())};
    const PoolState before = pool_state(pd);

    dragonMemoryPoolAttr_t attr = default_attr();
    dragonMemoryPoolDescr_t pool_out{};
    dragonMemoryDescr_t mem_out{};
    dragonMemoryPoolSerial_t pser_out{};
    dragonMemorySerial_t mser_out{};
    dragonMemoryPoolAllocations_t allocs{};
    dragonULInt ul = 0;
    std::uint64_t u64 = 0;
    std::size_t sz = 0;
    double pct = 0;
    bool flag_b = false;
    int flag_i = 0;
    void* ptr = nullptr;
    char* fname = nullptr;
    const timespec timeout = ms_timespec(10);
    const dragonError_t E = DRAGON_INVALID_ARGUMENT;
    const std::string name = unique_pool_name();
    ShmGuard guard(name);

    // Attributes
    DM_CHECK_RC(dragon_memory_attr_init(nullptr), E);
    DM_CHECK_RC(dragon_memory_attr_destroy(nullptr), E);
    DM_CHECK_RC(dragon_memory_get_attr(nullptr, &attr), E);
    DM_CHECK_RC(dragon_memory_get_attr(pd, nullptr), E);
    // Pools
    DM_CHECK_RC(dragon_memory_pool_create(nullptr, 65536, name.c_str(), 1, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_create(&pool_out, 65536, nullptr, 1, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_destroy(nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_serialize(nullptr, pd), E);
    DM_CHECK_RC(dragon_memory_pool_serialize(&pser_out, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_serial_free(nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_attach(nullptr, &pser), E);
    DM_CHECK_RC(dragon_memory_pool_attach(&pool_out, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_attach_from_env(nullptr, "DMTEST_UNUSED"), E);
    DM_CHECK_RC(dragon_memory_pool_attach_from_env(&pool_out, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_detach(nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_descr_clone(nullptr, pd), E);
    DM_CHECK_RC(dragon_memory_pool_descr_clone(&pool_out, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_hostid(nullptr, &ul), E);
    DM_CHECK_RC(dragon_memory_pool_get_hostid(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_rt_uid(nullptr, &ul), E);
    DM_CHECK_RC(dragon_memory_pool_get_rt_uid(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_runtime_is_local(nullptr, &flag_b), E);
    DM_CHECK_RC(dragon_memory_pool_runtime_is_local(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_uid_fname(nullptr, &ul, &fname), E);
    DM_CHECK_RC(dragon_memory_pool_muid(nullptr, &ul), E);
    DM_CHECK_RC(dragon_memory_pool_muid(pd, nullptr), E);
    CHECK_FALSE(dragon_memory_pool_is_local(nullptr));
    // Statistics
    DM_CHECK_RC(dragon_memory_pool_get_free_size(nullptr, &u64), E);
    DM_CHECK_RC(dragon_memory_pool_get_free_size(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_total_size(nullptr, &u64), E);
    DM_CHECK_RC(dragon_memory_pool_get_total_size(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_utilization_pct(nullptr, &pct), E);
    DM_CHECK_RC(dragon_memory_pool_get_utilization_pct(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_num_block_sizes(nullptr, &sz), E);
    DM_CHECK_RC(dragon_memory_pool_get_num_block_sizes(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_free_blocks(nullptr, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_free_blocks(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_pointer(nullptr, &ptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_pointer(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_size(nullptr, &sz), E);
    DM_CHECK_RC(dragon_memory_pool_get_size(pd, nullptr), E);
    // Listing
    DM_CHECK_RC(dragon_memory_pool_get_allocations(nullptr, &allocs), E);
    DM_CHECK_RC(dragon_memory_pool_get_allocations(pd, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_get_type_allocations(nullptr, DRAGON_MEMORY_ALLOC_DATA, &allocs), E);
    DM_CHECK_RC(dragon_memory_pool_get_type_allocations(pd, DRAGON_MEMORY_ALLOC_DATA, nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_allocations_free(nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_allocations_destroy(nullptr), E);
    DM_CHECK_RC(dragon_memory_pool_allocation_exists(nullptr, &flag_i), E);
    DM_CHECK_RC(dragon_memory_pool_allocation_exists(&mem, nullptr), E);
    DM_CHECK_RC(dragon_memory_get_alloc_memdescr(nullptr, pd, 1, 0, nullptr), E);
    DM_CHECK_RC(dragon_memory_get_alloc_memdescr(&mem_out, nullptr, 1, 0, nullptr), E);
    // Allocation
    DM_CHECK_RC(dragon_memory_alloc(nullptr, pd, 64), E);
    DM_CHECK_RC(dragon_memory_alloc(&mem_out, nullptr, 64), E);
    DM_CHECK_RC(dragon_memory_alloc_blocking(nullptr, pd, 64, &timeout), E);
    DM_CHECK_RC(dragon_memory_alloc_blocking(&mem_out, nullptr, 64, &timeout), E);
    DM_CHECK_RC(dragon_memory_alloc_type(nullptr, pd, 64, DRAGON_MEMORY_ALLOC_DATA), E);
    DM_CHECK_RC(dragon_memory_alloc_type(&mem_out, nullptr, 64, DRAGON_MEMORY_ALLOC_DATA), E);
    DM_CHECK_RC(dragon_memory_alloc_type_blocking(nullptr, pd, 64, DRAGON_MEMORY_ALLOC_DATA, &timeout), E);
    DM_CHECK_RC(dragon_memory_alloc_type_blocking(&mem_out, nullptr, 64, DRAGON_MEMORY_ALLOC_DATA, &timeout), E);
    DM_CHECK_RC(dragon_memory_free(nullptr), E);
    // Memory descriptors
    DM_CHECK_RC(dragon_memory_get_size(nullptr, &sz), E);
    DM_CHECK_RC(dragon_memory_get_size(&mem, nullptr), E);
    DM_CHECK_RC(dragon_memory_get_pool(nullptr, &pool_out), E);
    DM_CHECK_RC(dragon_memory_get_pool(&mem, nullptr), E);
    DM_CHECK_RC(dragon_memory_get_pointer(nullptr, &ptr), E);
    DM_CHECK_RC(dragon_memory_get_pointer(&mem, nullptr), E);
    DM_CHECK_RC(dragon_memory_id(nullptr, &u64), E);
    DM_CHECK_RC(dragon_memory_id(&mem, nullptr), E);
    DM_CHECK_RC(dragon_memory_from_id(nullptr, 1, &mem_out), E);
    DM_CHECK_RC(dragon_memory_from_id(pd, 1, nullptr), E);
    DM_CHECK_RC(dragon_memory_serialize(nullptr, &mem), E);
    DM_CHECK_RC(dragon_memory_serialize(&mser_out, nullptr), E);
    DM_CHECK_RC(dragon_memory_attach(nullptr, &mser), E);
    DM_CHECK_RC(dragon_memory_attach(&mem_out, nullptr), E);
    DM_CHECK_RC(dragon_memory_detach(nullptr), E);
    DM_CHECK_RC(dragon_memory_serial_free(nullptr), E);
    DM_CHECK_RC(dragon_memory_descr_clone(nullptr, &mem, 0, nullptr), E);
    DM_CHECK_RC(dragon_memory_descr_clone(&mem_out, nullptr, 0, nullptr), E);
    DM_CHECK_RC(dragon_memory_modify_size(nullptr, 10, &timeout), E);
    DM_CHECK_RC(dragonmem_pool_check(nullptr), E);

    dragon_memory_attr_destroy(&attr);
    CHECK(shm_objects_of(name).empty());
    // None of that touched the pool or the allocation.
    CHECK(pool_state(pd) == before);
    CHECK(mem_size(&mem) == 64);
}

TEST_SUITE_END();
