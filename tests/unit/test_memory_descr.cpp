// Allocation descriptors: descr_clone views (offset/length, bounds, shared record),
// modify_size, serialize/attach/detach (offsets survive), get_alloc_memdescr,
// get_pool and allocation_exists.
#include "testing.hpp"

using namespace dmtest;

namespace {

dragonMemorySerial_t as_mem_serial(const std::vector<std::uint8_t>& bytes) {
    return dragonMemorySerial_t{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
}

char* ptr_of(const dragonMemoryDescr_t* mem) { return static_cast<char*>(mem_pointer(mem)); }

int exists_flag(dragonMemoryDescr_t* mem) {
    int flag = -1;
    const dragonError_t rc = dragon_memory_pool_allocation_exists(mem, &flag);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "allocation_exists returned " << toString(rc) << ": " << last_error());
    return flag;
}

}  // namespace

TEST_SUITE_BEGIN("memory_descr");

TEST_CASE("descr_clone makes a view at offset with the given or remaining length") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 256));
    char* p = ptr_of(&mem);
    const std::uint64_t id = mem_id(&mem);

    dragonMemoryDescr_t view{};
    std::size_t len = 32;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 16, &len));
    CHECK(ptr_of(&view) == p + 16);
    CHECK(mem_size(&view) == 32);
    CHECK(mem_id(&view) == id);

    dragonMemoryDescr_t rest{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&rest, &mem, 16, nullptr));
    CHECK(ptr_of(&rest) == p + 16);
    CHECK(mem_size(&rest) == 240);

    // A view of a view adds the offsets.
    dragonMemoryDescr_t nested{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&nested, &rest, 8, nullptr));
    CHECK(ptr_of(&nested) == p + 24);
    CHECK(mem_size(&nested) == 232);

    // A whole-allocation clone.
    dragonMemoryDescr_t whole{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&whole, &mem, 0, nullptr));
    CHECK(ptr_of(&whole) == p);
    CHECK(mem_size(&whole) == 256);

    // Exact end bounds are allowed.
    dragonMemoryDescr_t tail{};
    len = 56;
    DM_CHECK_OK(dragon_memory_descr_clone(&tail, &mem, 200, &len));
    CHECK(mem_size(&tail) == 56);
    dragonMemoryDescr_t empty_tail{};
    DM_CHECK_OK(dragon_memory_descr_clone(&empty_tail, &mem, 256, nullptr));
    CHECK(mem_size(&empty_tail) == 0);

    // Bytes written through a view are the allocation's bytes.
    fill_pattern(ptr_of(&view), 32, 5);
    CHECK(find_pattern_mismatch(p + 16, 32, 5) == -1);

    // Cloning does not create allocations.
    CHECK(live_ids(pool.pd()) == std::vector<std::uint64_t>{id});
}

TEST_CASE("descr_clone out of bounds is INVALID_ARGUMENT") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 256));
    dragonMemoryDescr_t view{};
    std::size_t len = 0;

    DM_CHECK_RC(dragon_memory_descr_clone(&view, &mem, 257, nullptr), DRAGON_INVALID_ARGUMENT);
    len = 257;
    DM_CHECK_RC(dragon_memory_descr_clone(&view, &mem, 0, &len), DRAGON_INVALID_ARGUMENT);
    len = 57;
    DM_CHECK_RC(dragon_memory_descr_clone(&view, &mem, 200, &len), DRAGON_INVALID_ARGUMENT);
    len = SIZE_MAX;  // offset + len overflows
    DM_CHECK_RC(dragon_memory_descr_clone(&view, &mem, 16, &len), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragon_memory_descr_clone(&view, &mem, -1, nullptr), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragon_memory_descr_clone(&view, &mem, PTRDIFF_MAX, nullptr), DRAGON_INVALID_ARGUMENT);

    // Bounds are the view's, not the block's: a 32 B view cannot be widened.
    dragonMemoryDescr_t small{};
    len = 32;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&small, &mem, 64, &len));
    len = 33;
    DM_CHECK_RC(dragon_memory_descr_clone(&view, &small, 0, &len), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragon_memory_descr_clone(&view, &small, 33, nullptr), DRAGON_INVALID_ARGUMENT);
}

TEST_CASE("views share the record: freeing a view frees the allocation") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 512));
    dragonMemoryDescr_t view{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 100, nullptr));
    dragonMemoryDescr_t witness{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&witness, &mem, 0, nullptr));
    CHECK(exists_flag(&witness) == 1);

    DM_REQUIRE_OK(dragon_memory_free(&view));
    CHECK(exists_flag(&witness) == 0);
    CHECK(live_ids(pool.pd()).empty());
    CHECK(free_bytes(pool.pd()) == 65536);
    CHECK(dragon_memory_free(&mem) != DRAGON_SUCCESS);
    CHECK(free_bytes(pool.pd()) == 65536);
}

TEST_CASE("modify_size changes the size within the requested size") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    void* p = mem_pointer(&mem);
    const std::uint64_t id = mem_id(&mem);
    const timespec timeout = ms_timespec(100);

    DM_CHECK_OK(dragon_memory_modify_size(&mem, 50, &timeout));
    CHECK(mem_size(&mem) == 50);
    DM_CHECK_OK(dragon_memory_modify_size(&mem, 100, &timeout));
    CHECK(mem_size(&mem) == 100);
    // The block is 128 B, but the requested size is the limit.
    DM_CHECK_RC(dragon_memory_modify_size(&mem, 101, &timeout), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "101");
    DM_CHECK_RC(dragon_memory_modify_size(&mem, 128, nullptr), DRAGON_INVALID_ARGUMENT);
    CHECK(mem_size(&mem) == 100);
    CHECK(mem_pointer(&mem) == p);
    CHECK(mem_id(&mem) == id);
    CHECK(live_ids(pool.pd()) == std::vector<std::uint64_t>{id});
}

TEST_CASE("modify_size on a zero-size descriptor allocates") {
    TestPool pool(4096);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 0));
    const timespec timeout = ms_timespec(100);
    DM_REQUIRE_OK(dragon_memory_modify_size(&mem, 64, &timeout));
    CHECK(mem_size(&mem) == 64);
    void* p = mem_pointer(&mem);
    CHECK(p != nullptr);
    const std::uint64_t id = mem_id(&mem);
    CHECK(id != 0);
    CHECK(live_ids(pool.pd()) == std::vector<std::uint64_t>{id});
    CHECK(free_bytes(pool.pd()) == 4096 - 64);
    fill_pattern(p, 64, 3);
    DM_CHECK_OK(dragon_memory_free(&mem));
    CHECK(free_bytes(pool.pd()) == 4096);
}

TEST_CASE("modify_size on a zero-size descriptor of a full pool times out") {
    TestPool pool(4096);
    dragonMemoryDescr_t all{};
    DM_REQUIRE_OK(dragon_memory_alloc(&all, pool.pd(), 4096));
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 0));
    const PoolState before = pool_state(pool.pd());
    const timespec timeout = ms_timespec(50);
    const double t0 = now_ms();
    DM_CHECK_RC(dragon_memory_modify_size(&mem, 64, &timeout), DRAGON_TIMEOUT);
    CHECK(now_ms() - t0 >= 45.0);
    CHECK(mem_size(&mem) == 0);
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_RC(dragon_memory_modify_size(&mem, 8192, &timeout), DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
}

TEST_CASE("a serialized allocation attaches to the same memory; offsets survive") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc_type(&mem, pool.pd(), 1000, DRAGON_MEMORY_ALLOC_CHANNEL_BUFFER));
    fill_pattern(mem_pointer(&mem), 1000, 21);
    const std::size_t max_len = dragon_memory_max_serialized_len();
    CHECK(max_len > 0);

    SUBCASE("the whole allocation") {
        const auto serial = serialize_mem(&mem);
        CHECK(serial.size() <= max_len);
        auto ser = as_mem_serial(serial);
        dragonMemoryDescr_t attached{};
        DM_REQUIRE_OK(dragon_memory_attach(&attached, &ser));
        CHECK(mem_pointer(&attached) == mem_pointer(&mem));
        CHECK(mem_size(&attached) == 1000);
        CHECK(mem_id(&attached) == mem_id(&mem));
        DM_CHECK_OK(dragon_memory_detach(&attached));
        // Detaching a descriptor does not free the allocation.
        CHECK(exists_flag(&mem) == 1);
        CHECK(find_pattern_mismatch(mem_pointer(&mem), 1000, 21) == -1);
        // A detached descriptor is gone.
        void* p = nullptr;
        DM_CHECK_RC(dragon_memory_get_pointer(&attached, &p), DRAGON_MAP_KEY_NOT_FOUND);
        DM_CHECK_RC(dragon_memory_detach(&attached), DRAGON_MAP_KEY_NOT_FOUND);
    }
    SUBCASE("a view at an offset") {
        dragonMemoryDescr_t view{};
        std::size_t len = 100;
        DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 333, &len));
        const auto serial = serialize_mem(&view);
        CHECK(serial.size() <= max_len);
        auto ser = as_mem_serial(serial);
        dragonMemoryDescr_t attached{};
        DM_REQUIRE_OK(dragon_memory_attach(&attached, &ser));
        CHECK(ptr_of(&attached) == ptr_of(&mem) + 333);
        CHECK(mem_size(&attached) == 100);
        CHECK(mem_id(&attached) == mem_id(&mem));
        // The serialized view keeps the bounds of the view.
        dragonMemoryDescr_t beyond{};
        len = 101;
        DM_CHECK_RC(dragon_memory_descr_clone(&beyond, &attached, 0, &len), DRAGON_INVALID_ARGUMENT);
    }
    SUBCASE("a zero-byte allocation") {
        dragonMemoryDescr_t zero{};
        DM_REQUIRE_OK(dragon_memory_alloc(&zero, pool.pd(), 0));
        const auto serial = serialize_mem(&zero);
        CHECK(serial.size() <= max_len);
        auto ser = as_mem_serial(serial);
        dragonMemoryDescr_t attached{};
        DM_REQUIRE_OK(dragon_memory_attach(&attached, &ser));
        CHECK(mem_id(&attached) == 0);
        CHECK(mem_size(&attached) == 0);
        void* p = reinterpret_cast<void*>(0x1);
        DM_CHECK_OK(dragon_memory_get_pointer(&attached, &p));
        CHECK(p == nullptr);
    }
    SUBCASE("serial_free") {
        dragonMemorySerial_t ser{};
        DM_REQUIRE_OK(dragon_memory_serialize(&ser, &mem));
        CHECK(ser.len <= max_len);
        DM_CHECK_OK(dragon_memory_serial_free(&ser));
    }
}

TEST_CASE("get_alloc_memdescr builds a view of an allocation by id") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 256));
    char* p = ptr_of(&mem);
    const std::uint64_t id = mem_id(&mem);

    dragonMemoryDescr_t whole{};
    DM_REQUIRE_OK(dragon_memory_get_alloc_memdescr(&whole, pool.pd(), id, 0, nullptr));
    CHECK(ptr_of(&whole) == p);
    CHECK(mem_size(&whole) == 256);
    CHECK(mem_id(&whole) == id);

    dragonMemoryDescr_t part{};
    const dragonULInt len = 32;
    DM_REQUIRE_OK(dragon_memory_get_alloc_memdescr(&part, pool.pd(), id, 64, &len));
    CHECK(ptr_of(&part) == p + 64);
    CHECK(mem_size(&part) == 32);

    dragonMemoryDescr_t rest{};
    DM_REQUIRE_OK(dragon_memory_get_alloc_memdescr(&rest, pool.pd(), id, 64, nullptr));
    CHECK(mem_size(&rest) == 192);

    dragonMemoryDescr_t bad{};
    DM_CHECK_RC(dragon_memory_get_alloc_memdescr(&bad, pool.pd(), id, 300, nullptr), DRAGON_INVALID_ARGUMENT);
    const dragonULInt too_long = 300;
    DM_CHECK_RC(dragon_memory_get_alloc_memdescr(&bad, pool.pd(), id, 0, &too_long), DRAGON_INVALID_ARGUMENT);

    DM_REQUIRE_OK(dragon_memory_free(&mem));
    CHECK(dragon_memory_get_alloc_memdescr(&bad, pool.pd(), id, 0, nullptr) != DRAGON_SUCCESS);
}

TEST_CASE("get_pool returns a descriptor of the allocation's pool") {
    TestPool pool(65536, nullptr, 555);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 64));
    dragonMemoryPoolDescr_t owner{};
    DM_REQUIRE_OK(dragon_memory_get_pool(&mem, &owner));
    CHECK(dragon_memory_pool_is_local(&owner));
    dragonULInt muid = 0;
    DM_CHECK_OK(dragon_memory_pool_muid(&owner, &muid));
    CHECK(muid == 555);
    void* b1 = nullptr;
    void* b2 = nullptr;
    DM_CHECK_OK(dragon_memory_pool_get_pointer(&owner, &b1));
    DM_CHECK_OK(dragon_memory_pool_get_pointer(pool.pd(), &b2));
    CHECK(b1 == b2);
    CHECK(live_ids(&owner) == std::vector<std::uint64_t>{mem_id(&mem)});
}

TEST_CASE("allocation_exists follows the allocation, not the descriptor") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 64));
    dragonMemoryDescr_t copy{};
    DM_REQUIRE_OK(dragon_memory_from_id(pool.pd(), mem_id(&mem), &copy));
    CHECK(exists_flag(&mem) == 1);
    CHECK(exists_flag(&copy) == 1);
    DM_REQUIRE_OK(dragon_memory_free(&mem));
    CHECK(exists_flag(&copy) == 0);
    // A new allocation in the same block does not make the old one exist again.
    dragonMemoryDescr_t newer{};
    DM_REQUIRE_OK(dragon_memory_alloc(&newer, pool.pd(), 64));
    CHECK(exists_flag(&copy) == 0);
    CHECK(exists_flag(&newer) == 1);
}

TEST_SUITE_END();
