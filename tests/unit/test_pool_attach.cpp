// Pool descriptors inside one process: serialize/attach (one shared mapping,
// reference-counted detach that never unlinks), attach_from_env, clone, hostid,
// uid/fname, muid, rt_uid, is_local, base pointer, and attaching a destroyed or
// re-created pool.
#include "testing.hpp"

#include <algorithm>
#include <cstdlib>

using namespace dmtest;

namespace {

dragonMemoryPoolSerial_t as_pool_serial(const std::vector<std::uint8_t>& bytes) {
    return dragonMemoryPoolSerial_t{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
}

void* pool_base(const dragonMemoryPoolDescr_t* pool) {
    void* base = nullptr;
    const dragonError_t rc = dragon_memory_pool_get_pointer(pool, &base);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "pool_get_pointer returned " << toString(rc) << ": " << last_error());
    return base;
}

// Sets an environment variable for the scope.
struct EnvScope {
    EnvScope(std::string name, const std::string& value) : name_(std::move(name)) {
        ::setenv(name_.c_str(), value.c_str(), 1);
    }
    ~EnvScope() { ::unsetenv(name_.c_str()); }
    std::string name_;
};

}  // namespace

TEST_SUITE_BEGIN("pool_attach");

TEST_CASE("a serialized pool descriptor is bounded by pool_max_serialized_len") {
    const std::size_t max_len = dragon_memory_pool_max_serialized_len();
    CHECK(max_len > 0);
    for (std::size_t pad : {std::size_t{0}, std::size_t{29}}) {
        TestPool pool(65536, nullptr, ~std::uint64_t{0}, pad);  // the longest name, the largest uid
        const auto serial = serialize_pool(pool.pd());
        CHECK(serial.size() > 0);
        CHECK(serial.size() <= max_len);
    }
    TestPool pool(4096);
    dragonMemoryPoolSerial_t ser{};
    DM_REQUIRE_OK(dragon_memory_pool_serialize(&ser, pool.pd()));
    DM_CHECK_OK(dragon_memory_pool_serial_free(&ser));
}

TEST_CASE("attaching the same pool twice in a process shares one mapping") {
    TestPool pool(65536);
    const auto serial = serialize_pool(pool.pd());
    auto ser = as_pool_serial(serial);
    dragonMemoryPoolDescr_t a1{}, a2{};
    DM_REQUIRE_OK(dragon_memory_pool_attach(&a1, &ser));
    DM_REQUIRE_OK(dragon_memory_pool_attach(&a2, &ser));
    CHECK(dragon_memory_pool_is_local(&a1));
    CHECK(dragon_memory_pool_is_local(&a2));
    void* base = pool_base(pool.pd());
    CHECK(pool_base(&a1) == base);
    CHECK(pool_base(&a2) == base);

    // An allocation made through one descriptor is seen through the others.
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, &a1, 256));
    const std::uint64_t id = mem_id(&mem);
    dragonMemoryDescr_t via_creator{};
    DM_REQUIRE_OK(dragon_memory_from_id(pool.pd(), id, &via_creator));
    CHECK(mem_pointer(&via_creator) == mem_pointer(&mem));
    CHECK(live_ids(&a2) == std::vector<std::uint64_t>{id});

    DM_CHECK_OK(dragon_memory_pool_detach(&a1));
    DM_CHECK_OK(dragon_memory_pool_detach(&a2));
}

TEST_CASE("pool_detach counts references and a detached descriptor is gone") {
    TestPool pool(65536);
    const auto serial = serialize_pool(pool.pd());
    auto ser = as_pool_serial(serial);
    dragonMemoryPoolDescr_t a1{}, a2{};
    DM_REQUIRE_OK(dragon_memory_pool_attach(&a1, &ser));
    DM_REQUIRE_OK(dragon_memory_pool_attach(&a2, &ser));
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 512));
    fill_pattern(mem_pointer(&mem), 512, 7);

    DM_REQUIRE_OK(dragon_memory_pool_detach(&a1));
    // The others still work and still see the same bytes.
    CHECK(free_bytes(&a2) == 65536 - 512);
    dragonMemoryDescr_t via_a2{};
    DM_REQUIRE_OK(dragon_memory_from_id(&a2, mem_id(&mem), &via_a2));
    CHECK(find_pattern_mismatch(mem_pointer(&via_a2), 512, 7) == -1);
    dragonMemoryDescr_t more{};
    DM_CHECK_OK(dragon_memory_alloc(&more, &a2, 64));
    DM_CHECK_OK(dragon_memory_free(&more));

    // The detached descriptor itself is gone.
    std::uint64_t u = 0;
    DM_CHECK_RC(dragon_memory_pool_get_free_size(&a1, &u), DRAGON_MAP_KEY_NOT_FOUND);
    DM_CHECK_RC(dragon_memory_pool_detach(&a1), DRAGON_MAP_KEY_NOT_FOUND);
    CHECK_FALSE(dragon_memory_pool_is_local(&a1));

    DM_REQUIRE_OK(dragon_memory_pool_detach(&a2));
    CHECK(find_pattern_mismatch(mem_pointer(&mem), 512, 7) == -1);
    CHECK(free_bytes(pool.pd()) == 65536 - 512);
    CHECK(shm_exists(pool.name()));
}

TEST_CASE("detaching the last descriptor unmaps but never unlinks; the pool can be attached again") {
    ShmGuard guard(unique_pool_name());
    dragonMemoryPoolDescr_t pool{};
    DM_REQUIRE_OK(dragon_memory_pool_create(&pool, 65536, guard.name().c_str(), 99, nullptr));
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc_type(&mem, &pool, 3000, DRAGON_MEMORY_ALLOC_CHANNEL));
    const std::uint64_t id = mem_id(&mem);
    fill_pattern(mem_pointer(&mem), 3000, 11);
    const auto serial = serialize_pool(&pool);
    DM_REQUIRE_OK(dragon_memory_detach(&mem));
    DM_REQUIRE_OK(dragon_memory_pool_detach(&pool));

    CHECK(shm_exists(guard.name()));  // detach never unlinks
    auto ser = as_pool_serial(serial);
    dragonMemoryPoolDescr_t again{};
    DM_REQUIRE_OK(dragon_memory_pool_attach(&again, &ser));
    CHECK(live_ids(&again) == std::vector<std::uint64_t>{id});
    dragonMemoryDescr_t found{};
    DM_REQUIRE_OK(dragon_memory_from_id(&again, id, &found));
    CHECK(mem_size(&found) == 3000);
    CHECK(find_pattern_mismatch(mem_pointer(&found), 3000, 11) == -1);
    dragonULInt muid = 0;
    DM_CHECK_OK(dragon_memory_pool_muid(&again, &muid));
    CHECK(muid == 99);
    DM_CHECK_OK(dragon_memory_pool_destroy(&again));
    CHECK(shm_objects_of(guard.name()).empty());
}

TEST_CASE("pool_attach_from_env decodes the base64 of a serialized descriptor") {
    TestPool pool(65536);
    const auto serial = serialize_pool(pool.pd());
    const std::string var = "DMTEST_POOL_" + pool.name();

    SUBCASE("a valid variable attaches the same mapping") {
        EnvScope env(var, base64_encode(serial));
        dragonMemoryPoolDescr_t attached{};
        DM_REQUIRE_OK(dragon_memory_pool_attach_from_env(&attached, var.c_str()));
        CHECK(dragon_memory_pool_is_local(&attached));
        CHECK(pool_base(&attached) == pool_base(pool.pd()));
        dragonULInt muid = 0;
        DM_CHECK_OK(dragon_memory_pool_muid(&attached, &muid));
        CHECK(muid == 7);
        DM_CHECK_OK(dragon_memory_pool_detach(&attached));
    }
    SUBCASE("an unset variable is INVALID_ARGUMENT naming it") {
        ::unsetenv(var.c_str());
        dragonMemoryPoolDescr_t attached{};
        DM_CHECK_RC(dragon_memory_pool_attach_from_env(&attached, var.c_str()), DRAGON_INVALID_ARGUMENT);
        DM_CHECK_CONTAINS(last_error(), var);
    }
    SUBCASE("empty, non-base64 and corrupted values are INVALID_ARGUMENT") {
        std::vector<std::uint8_t> flipped = serial;
        flipped[flipped.size() / 2] ^= 0x10;
        std::vector<std::uint8_t> truncated(serial.begin(), serial.end() - 1);
        const std::string values[] = {
            "",
            "!!!!",
            "not base64 at all",
            base64_encode(serial).substr(1),
            base64_encode(flipped),
            base64_encode(truncated),
            hex_encode(serial.data(), serial.size()),
        };
        for (const std::string& value : values) {
            CAPTURE(value);
            EnvScope env(var, value);
            dragonMemoryPoolDescr_t attached{};
            DM_CHECK_RC(dragon_memory_pool_attach_from_env(&attached, var.c_str()), DRAGON_INVALID_ARGUMENT);
        }
    }
}

TEST_CASE("pool_descr_clone gives a working descriptor of the same pool") {
    TestPool pool(65536);
    dragonMemoryPoolDescr_t clone{};
    DM_REQUIRE_OK(dragon_memory_pool_descr_clone(&clone, pool.pd()));
    CHECK(dragon_memory_pool_is_local(&clone));
    CHECK(pool_base(&clone) == pool_base(pool.pd()));
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, &clone, 100));
    CHECK(live_ids(pool.pd()) == std::vector<std::uint64_t>{mem_id(&mem)});
    dragonULInt h1 = 0, h2 = 0;
    DM_CHECK_OK(dragon_memory_pool_get_hostid(pool.pd(), &h1));
    DM_CHECK_OK(dragon_memory_pool_get_hostid(&clone, &h2));
    CHECK(h1 == h2);
}

TEST_CASE("hostid, muid, rt_uid and runtime_is_local of a local pool") {
    TestPool pool(65536, nullptr, 31337);
    dragonULInt hostid = 0;
    DM_REQUIRE_OK(dragon_memory_pool_get_hostid(pool.pd(), &hostid));
    CHECK(hostid != 0);
    dragonULInt muid = 0;
    DM_CHECK_OK(dragon_memory_pool_muid(pool.pd(), &muid));
    CHECK(muid == 31337);
    dragonULInt rt_uid = 12345;
    DM_CHECK_OK(dragon_memory_pool_get_rt_uid(pool.pd(), &rt_uid));
    const char* env_rt = std::getenv("DRAGON_RT_UID");
    CHECK(rt_uid == (env_rt ? std::strtoull(env_rt, nullptr, 10) : 0));
    bool runtime_local = false;
    DM_CHECK_OK(dragon_memory_pool_runtime_is_local(pool.pd(), &runtime_local));
    CHECK(runtime_local);

    // The same hostid after a round trip through a serialized descriptor.
    const auto serial = serialize_pool(pool.pd());
    auto ser = as_pool_serial(serial);
    dragonMemoryPoolDescr_t attached{};
    DM_REQUIRE_OK(dragon_memory_pool_attach(&attached, &ser));
    dragonULInt hostid2 = 0;
    DM_CHECK_OK(dragon_memory_pool_get_hostid(&attached, &hostid2));
    CHECK(hostid2 == hostid);
    // Another pool of this process has the same hostid.
    TestPool other(4096);
    dragonULInt hostid3 = 0;
    DM_CHECK_OK(dragon_memory_pool_get_hostid(other.pd(), &hostid3));
    CHECK(hostid3 == hostid);
    DM_CHECK_OK(dragon_memory_pool_detach(&attached));
}

TEST_CASE("pool_get_uid_fname reads the uid and the shm name from a serialized descriptor") {
    TestPool pool(65536, nullptr, 4242);
    const auto serial = serialize_pool(pool.pd());
    auto ser = as_pool_serial(serial);
    dragonULInt uid = 0;
    char* fname = nullptr;
    DM_REQUIRE_OK(dragon_memory_pool_get_uid_fname(&ser, &uid, &fname));
    CHECK(uid == 4242);
    REQUIRE(fname != nullptr);
    DM_CHECK_CONTAINS(std::string(fname), "dragonmem." + pool.name());
    std::free(fname);

    std::vector<std::uint8_t> bad = serial;
    bad[0] ^= 0xff;
    auto bad_ser = as_pool_serial(bad);
    fname = nullptr;
    DM_CHECK_RC(dragon_memory_pool_get_uid_fname(&bad_ser, &uid, &fname), DRAGON_INVALID_ARGUMENT);
    CHECK(fname == nullptr);
}

TEST_CASE("pool_is_local is false for descriptors that are not valid") {
    dragonMemoryPoolDescr_t zeroed{};
    CHECK_FALSE(dragon_memory_pool_is_local(&zeroed));
    dragonMemoryPoolDescr_t garbage{};
    garbage._original = 1;
    garbage._idx = 0xdeadbeefcafeULL;
    garbage._rt_idx = 77;
    CHECK_FALSE(dragon_memory_pool_is_local(&garbage));
    CHECK_FALSE(dragon_memory_pool_is_local(nullptr));
    std::uint64_t u = 0;
    DM_CHECK_RC(dragon_memory_pool_get_free_size(&garbage, &u), DRAGON_MAP_KEY_NOT_FOUND);
}

TEST_CASE("pool_get_pointer and pool_get_size frame every allocation") {
    TestPool pool(65536);
    auto* base = static_cast<char*>(pool_base(pool.pd()));
    REQUIRE(base != nullptr);
    std::size_t size = 0;
    DM_REQUIRE_OK(dragon_memory_pool_get_size(pool.pd(), &size));
    CHECK(size >= 65536);
    for (std::size_t bytes : {std::size_t{1}, std::size_t{100}, std::size_t{4096}, std::size_t{32768}}) {
        CAPTURE(bytes);
        dragonMemoryDescr_t mem{};
        DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), bytes));
        auto* p = static_cast<char*>(mem_pointer(&mem));
        CHECK(p >= base);
        CHECK(p + bytes <= base + size);
        CHECK(static_cast<std::size_t>(p - base) % alignment_for(block_for(bytes)) == 0);
    }
}

TEST_CASE("attaching a destroyed pool is OBJECT_DESTROYED or MEMORY_ERRNO") {
    TestPool pool(65536);
    const auto serial = serialize_pool(pool.pd());
    DM_REQUIRE_OK(pool.destroy());
    auto ser = as_pool_serial(serial);
    dragonMemoryPoolDescr_t attached{};
    const dragonError_t rc = dragon_memory_pool_attach(&attached, &ser);
    const std::string message = last_error();
    CHECK_MESSAGE((rc == DRAGON_OBJECT_DESTROYED || rc == DRAGON_MEMORY_ERRNO),
                  "attach of a destroyed pool returned " << toString(rc) << ": " << message);
    CHECK_FALSE(message.empty());
    CHECK(shm_objects_of(pool.name()).empty());  // attach must not re-create it
}

TEST_CASE("a descriptor of a destroyed pool does not attach a new pool of the same name") {
    ShmGuard guard(unique_pool_name());
    dragonMemoryPoolDescr_t first{};
    DM_REQUIRE_OK(dragon_memory_pool_create(&first, 65536, guard.name().c_str(), 5, nullptr));
    dragonMemoryDescr_t old_mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&old_mem, &first, 64));
    const auto old_pool_serial = serialize_pool(&first);
    const auto old_mem_serial = serialize_mem(&old_mem);
    DM_REQUIRE_OK(dragon_memory_pool_destroy(&first));

    dragonMemoryPoolDescr_t second{};
    DM_REQUIRE_OK(dragon_memory_pool_create(&second, 65536, guard.name().c_str(), 5, nullptr));
    dragonMemoryDescr_t new_mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&new_mem, &second, 64));
    const PoolState before = pool_state(&second);

    auto ser = as_pool_serial(old_pool_serial);
    dragonMemoryPoolDescr_t attached{};
    const dragonError_t rc = dragon_memory_pool_attach(&attached, &ser);
    CHECK_MESSAGE((rc == DRAGON_OBJECT_DESTROYED || rc == DRAGON_MEMORY_ERRNO),
                  "old descriptor attached to the re-created pool: " << toString(rc));

    // The old allocation's descriptor must not reach the new pool's memory either.
    dragonMemorySerial_t mser{old_mem_serial.size(), const_cast<std::uint8_t*>(old_mem_serial.data())};
    dragonMemoryDescr_t stale{};
    if (dragon_memory_attach(&stale, &mser) == DRAGON_SUCCESS) {
        void* p = nullptr;
        CHECK(dragon_memory_get_pointer(&stale, &p) != DRAGON_SUCCESS);
        CHECK(dragon_memory_free(&stale) != DRAGON_SUCCESS);
    }
    CHECK(pool_state(&second) == before);
    DM_CHECK_OK(dragon_memory_pool_destroy(&second));
}

TEST_SUITE_END();
