// Dragon HEAD's operations on allocations' bytes: copy, copy_size, copy_to_pool, clear,
// hash, equal, is, get_ptr_info, and pool_attach_default; in the C and C++ APIs. Every
// bad input is a clear error that leaves both pools as they were.
#include "testing.hpp"

#include <cstring>
#include <numeric>

using namespace dmtest;

namespace {

dragonMemoryDescr_t alloc_filled(dragonMemoryPoolDescr_t* pool, std::size_t bytes, int seed) {
    dragonMemoryDescr_t mem{};
    const dragonError_t rc = dragon_memory_alloc(&mem, pool, bytes);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "alloc: " << last_error());
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(seed + i);
    return mem;
}

std::uint64_t hash_of(dragonMemoryDescr_t* mem) {
    dragonULInt value = 0;
    const dragonError_t rc = dragon_memory_hash(mem, &value);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "hash: " << last_error());
    return value;
}

}  // namespace

TEST_SUITE_BEGIN("copy");

TEST_CASE("copy and copy_size move a view's bytes into another pool's allocation") {
    TestPool a(65536);
    TestPool b(65536);
    dragonMemoryDescr_t src = alloc_filled(a.pd(), 300, 1);
    dragonMemoryDescr_t dst = alloc_filled(b.pd(), 400, 100);
    DM_REQUIRE_OK(dragon_memory_copy(&src, &dst));
    CHECK(std::memcmp(mem_pointer(&src), mem_pointer(&dst), 300) == 0);
    CHECK(static_cast<unsigned char*>(mem_pointer(&dst))[300] == static_cast<unsigned char>(100 + 300));

    dragonMemoryDescr_t other = alloc_filled(b.pd(), 64, 7);
    DM_REQUIRE_OK(dragon_memory_copy_size(&src, &other, 10));
    CHECK(std::memcmp(mem_pointer(&src), mem_pointer(&other), 10) == 0);
    CHECK(static_cast<unsigned char*>(mem_pointer(&other))[10] == static_cast<unsigned char>(7 + 10));
}

TEST_CASE("copy between overlapping views of one allocation is a memmove") {
    TestPool a(65536);
    dragonMemoryDescr_t mem = alloc_filled(a.pd(), 64, 0);
    dragonMemoryDescr_t low{}, high{};
    std::size_t len = 48;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&low, &mem, 0, &len));
    DM_REQUIRE_OK(dragon_memory_descr_clone(&high, &mem, 8, &len));
    DM_REQUIRE_OK(dragon_memory_copy(&low, &high));
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    for (int i = 0; i < 48; ++i) CHECK(p[8 + i] == i);
}

TEST_CASE("copy that does not fit fails naming the sizes and changes nothing") {
    TestPool a(65536);
    dragonMemoryDescr_t src = alloc_filled(a.pd(), 300, 1);
    dragonMemoryDescr_t dst = alloc_filled(a.pd(), 100, 50);
    std::vector<unsigned char> before(static_cast<unsigned char*>(mem_pointer(&dst)),
                                      static_cast<unsigned char*>(mem_pointer(&dst)) + 100);
    const PoolState state = pool_state(a.pd());
    DM_CHECK_RC(dragon_memory_copy(&src, &dst), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "300 B do not fit the destination");
    DM_CHECK_RC(dragon_memory_copy_size(&dst, &src, 101), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "101 B asked, but the source");
    CHECK(std::memcmp(before.data(), mem_pointer(&dst), 100) == 0);
    CHECK(pool_state(a.pd()) == state);

    dragonMemoryDescr_t freed = alloc_filled(a.pd(), 32, 0);
    dragonMemoryDescr_t stale{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&stale, &freed, 0, nullptr));
    DM_REQUIRE_OK(dragon_memory_free(&freed));
    DM_CHECK_RC(dragon_memory_copy(&stale, &dst), DRAGON_KEY_NOT_FOUND);
    DM_CHECK_CONTAINS(last_error(), "copy (source)");
    DM_CHECK_RC(dragon_memory_copy(nullptr, &dst), DRAGON_INVALID_ARGUMENT);
    CHECK(std::memcmp(before.data(), mem_pointer(&dst), 100) == 0);
}

TEST_CASE("copy_to_pool allocates the copy in the target pool") {
    TestPool a(65536);
    TestPool b(65536);
    dragonMemoryDescr_t src = alloc_filled(a.pd(), 1000, 3);
    dragonMemoryDescr_t copy{};
    timespec timeout = ms_timespec(1000);
    DM_REQUIRE_OK(dragon_memory_copy_to_pool(&src, &copy, b.pd(), &timeout));
    CHECK(mem_size(&copy) == 1000);
    CHECK(std::memcmp(mem_pointer(&src), mem_pointer(&copy), 1000) == 0);
    CHECK(live_ids(b.pd()).size() == 1);
    bool equal = false;
    DM_CHECK_OK(dragon_memory_equal(&src, &copy, &equal));
    CHECK(equal);
    bool same = true;
    DM_CHECK_OK(dragon_memory_is(&src, &copy, &same));
    CHECK_FALSE(same);
}

TEST_CASE("copy_to_pool into a full pool times out and allocates nothing") {
    TestPool a(65536);
    TestPool small(4096);
    dragonMemoryDescr_t src = alloc_filled(a.pd(), 8192, 0);
    const PoolState state = pool_state(small.pd());
    dragonMemoryDescr_t copy{};
    timespec timeout = ms_timespec(50);
    const dragonError_t rc = dragon_memory_copy_to_pool(&src, &copy, small.pd(), &timeout);
    CHECK(rc != DRAGON_SUCCESS);
    DM_CHECK_CONTAINS(last_error(), "copy_to_pool: no 8192 B allocation in pool");
    CHECK(pool_state(small.pd()) == state);

    // A pool with room but too little right now: the timeout is honoured.
    dragonMemoryDescr_t hog{};
    DM_REQUIRE_OK(dragon_memory_alloc(&hog, small.pd(), 4096));
    dragonMemoryDescr_t src_small = alloc_filled(a.pd(), 64, 0);
    const PoolState full = pool_state(small.pd());
    DM_CHECK_RC(dragon_memory_copy_to_pool(&src_small, &copy, small.pd(), &timeout), DRAGON_TIMEOUT);
    CHECK(pool_state(small.pd()) == full);
    DM_CHECK_RC(dragon_memory_copy_to_pool(&src_small, nullptr, small.pd(), &timeout), DRAGON_INVALID_ARGUMENT);
    CHECK(pool_state(small.pd()) == full);
}

TEST_CASE("clear zeroes [start, stop), clamps stop, refuses start past the end or stop before start") {
    TestPool a(65536);
    dragonMemoryDescr_t mem = alloc_filled(a.pd(), 100, 1);
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    DM_REQUIRE_OK(dragon_memory_clear(&mem, 10, 20));
    CHECK(p[9] == 10);
    for (int i = 10; i < 20; ++i) CHECK(p[i] == 0);
    CHECK(p[20] == 21);
    DM_REQUIRE_OK(dragon_memory_clear(&mem, 90, SIZE_MAX));  // Dragon's "to the end"
    for (int i = 90; i < 100; ++i) CHECK(p[i] == 0);
    DM_CHECK_RC(dragon_memory_clear(&mem, 101, 200), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "start 101 is beyond the 100 B");
    DM_CHECK_RC(dragon_memory_clear(&mem, 50, 40), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "stop 40 is before start 50");
    CHECK(p[50] == 51);
    DM_CHECK_OK(dragon_memory_clear(&mem, 100, 100));  // empty range at the end

    // A view clears only its own bytes.
    dragonMemoryDescr_t view{};
    std::size_t len = 10;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 30, &len));
    DM_REQUIRE_OK(dragon_memory_clear(&view, 0, SIZE_MAX));
    CHECK(p[29] == 30);
    CHECK(p[30] == 0);
    CHECK(p[39] == 0);
    CHECK(p[40] == 41);
}

TEST_CASE("hash is Dragon's (MurmurHash3 32-bit, its seed) of the view's bytes") {
    TestPool a(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, a.pd(), 1024));
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    for (int i = 0; i < 1024; ++i) p[i] = static_cast<unsigned char>(i);
    // Reference values from an independent implementation checked against the published
    // test vectors ("test"/0 = 0xba6bd213, "Hello, world!"/1234 = 0xfaf6cdb3).
    CHECK(hash_of(&mem) == 0xdc27f179u);
    dragonMemoryDescr_t view{};
    std::size_t len = 7;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 0, &len));
    std::memcpy(p, "abcdefg", 7);
    CHECK(hash_of(&view) == 0x4707d562u);
    len = 1;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 23, &len));
    p[23] = 'x';
    CHECK(hash_of(&view) == 0xc311c55bu);

    dragonMemoryDescr_t zero{};
    DM_REQUIRE_OK(dragon_memory_alloc(&zero, a.pd(), 0));
    dragonULInt value = 0;
    DM_CHECK_RC(dragon_memory_hash(&zero, &value), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "zero bytes");
    DM_CHECK_RC(dragon_memory_hash(&mem, nullptr), DRAGON_INVALID_ARGUMENT);
}

TEST_CASE("equal compares bytes; is compares allocation and view") {
    TestPool a(65536);
    dragonMemoryDescr_t x = alloc_filled(a.pd(), 64, 5);
    dragonMemoryDescr_t y = alloc_filled(a.pd(), 64, 5);
    dragonMemoryDescr_t z = alloc_filled(a.pd(), 63, 5);
    bool r = false;
    DM_CHECK_OK(dragon_memory_equal(&x, &y, &r));
    CHECK(r);
    DM_CHECK_OK(dragon_memory_equal(&x, &z, &r));
    CHECK_FALSE(r);  // sizes differ
    static_cast<unsigned char*>(mem_pointer(&y))[63] ^= 1;
    DM_CHECK_OK(dragon_memory_equal(&x, &y, &r));
    CHECK_FALSE(r);

    DM_CHECK_OK(dragon_memory_is(&x, &y, &r));
    CHECK_FALSE(r);
    dragonMemoryDescr_t x2{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&x2, &x, 0, nullptr));
    DM_CHECK_OK(dragon_memory_is(&x, &x2, &r));
    CHECK(r);
    // Through serialize + attach: the same allocation and view.
    const std::vector<std::uint8_t> ser = serialize_mem(&x);
    dragonMemorySerial_t s{ser.size(), const_cast<std::uint8_t*>(ser.data())};
    dragonMemoryDescr_t x3{};
    DM_REQUIRE_OK(dragon_memory_attach(&x3, &s));
    DM_CHECK_OK(dragon_memory_is(&x, &x3, &r));
    CHECK(r);
    // Another view of the same allocation is not the same.
    std::size_t len = 10;
    dragonMemoryDescr_t part{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&part, &x, 4, &len));
    DM_CHECK_OK(dragon_memory_is(&x, &part, &r));
    CHECK_FALSE(r);

    DM_CHECK_RC(dragon_memory_equal(&x, &y, nullptr), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragon_memory_is(&x, nullptr, &r), DRAGON_INVALID_ARGUMENT);
}

TEST_CASE("get_ptr_info returns the pointer and size of the view") {
    TestPool a(65536);
    dragonMemoryDescr_t mem = alloc_filled(a.pd(), 128, 0);
    void* ptr = nullptr;
    std::size_t size = 0;
    DM_REQUIRE_OK(dragon_memory_get_ptr_info(&mem, &ptr, &size));
    CHECK(ptr == mem_pointer(&mem));
    CHECK(size == 128);
    dragonMemoryDescr_t view{};
    std::size_t len = 8;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 16, &len));
    DM_REQUIRE_OK(dragon_memory_get_ptr_info(&view, &ptr, &size));
    CHECK(ptr == static_cast<char*>(mem_pointer(&mem)) + 16);
    CHECK(size == 8);
    dragonMemoryDescr_t zero{};
    DM_REQUIRE_OK(dragon_memory_alloc(&zero, a.pd(), 0));
    DM_REQUIRE_OK(dragon_memory_get_ptr_info(&zero, &ptr, &size));
    CHECK(ptr == nullptr);
    CHECK(size == 0);
    DM_CHECK_RC(dragon_memory_get_ptr_info(&mem, nullptr, &size), DRAGON_INVALID_ARGUMENT);
    DM_REQUIRE_OK(dragon_memory_free(&mem));
    DM_CHECK_RC(dragon_memory_get_ptr_info(&view, &ptr, &size), DRAGON_KEY_NOT_FOUND);
}

TEST_CASE("pool_attach_default attaches the pool named by DRAGON_DEFAULT_PD") {
    TestPool a(65536);
    ::unsetenv(DRAGON_DEFAULT_PD_VAR);
    dragonMemoryPoolDescr_t pool{};
    DM_CHECK_RC(dragon_memory_pool_attach_default(&pool), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "DRAGON_DEFAULT_PD is not set");
    ::setenv(DRAGON_DEFAULT_PD_VAR, "not base64!", 1);
    DM_CHECK_RC(dragon_memory_pool_attach_default(&pool), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_CONTAINS(last_error(), "attach_default: the default pool");

    dragonmem::Pool cxx = dragonmem::Pool::attach_local(a.name());
    ::setenv(DRAGON_DEFAULT_PD_VAR, cxx.serialize_base64().c_str(), 1);
    DM_REQUIRE_OK(dragon_memory_pool_attach_default(&pool));
    dragonULInt muid = 0;
    DM_CHECK_OK(dragon_memory_pool_muid(&pool, &muid));
    CHECK(muid == 7);
    DM_CHECK_OK(dragon_memory_pool_detach(&pool));
    CHECK(dragonmem::Pool::attach_default().name() == a.name());
    ::unsetenv(DRAGON_DEFAULT_PD_VAR);
    DM_CHECK_RC(dragon_memory_pool_attach_default(nullptr), DRAGON_INVALID_ARGUMENT);
}

TEST_CASE("the C++ API: copy_to, copy_to_pool, clear, hash, bytes_equal, same_as") {
    TestPool a(65536);
    TestPool b(65536);
    dragonmem::Pool pa = dragonmem::Pool::attach_local(a.name());
    dragonmem::Pool pb = dragonmem::Pool::attach_local(b.name());
    dragonmem::Memory m = pa.alloc(256);
    auto bytes = m.bytes();
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte(i);
    dragonmem::Memory copy = m.copy_to_pool(pb);
    CHECK(copy.bytes_equal(m));
    CHECK_FALSE(copy.same_as(m));
    CHECK(m.same_as(m.clone()));
    CHECK(copy.hash() == m.hash());
    dragonmem::Memory small = pb.alloc(16);
    m.copy_to(small, 16);
    CHECK(std::memcmp(small.pointer(), m.pointer(), 16) == 0);
    DM_CHECK_THROWS_CODE(m.copy_to(small), DRAGON_INVALID_ARGUMENT, msg);
    DM_CHECK_CONTAINS(msg, "256 B do not fit");
    copy.clear(0, 128);
    CHECK(copy.bytes()[127] == std::byte(0));
    CHECK(copy.bytes()[128] == std::byte(128));
    CHECK_FALSE(copy.bytes_equal(m));
    DM_CHECK_THROWS_CODE(copy.clear(300), DRAGON_INVALID_ARGUMENT, msg2);
    DM_CHECK_THROWS_CODE(dragonmem::Memory{}.hash(), DRAGON_MAP_KEY_NOT_FOUND, msg3);
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("copy");

TEST_CASE("Memory::read and write move host bytes; a range past the view fails naming it and changes nothing") {
    ScopedPool scoped(MiB);
    dragonmem::Memory m = scoped.pool().alloc(100);
    CHECK_FALSE(m.on_device());
    std::vector<std::byte> in(10, std::byte{7});
    m.write(90, in);
    std::vector<std::byte> out(10);
    m.read(90, out);
    CHECK(out == in);
    std::vector<std::byte> before(100);
    m.read(0, before);
    std::vector<std::byte> too_many(11, std::byte{9});
    count_bad_inputs(3);
    try {
        m.write(90, too_many);
        FAIL("a write past the view");
    } catch (const dragonmem::Error& e) {
        CHECK(e.code() == DRAGON_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("11 B at offset 90") != std::string::npos);
    }
    CHECK_THROWS_AS(m.read(101, std::span<std::byte>(out.data(), 0)), dragonmem::Error);
    CHECK_THROWS_AS(m.read(95, out), dragonmem::Error);
    std::vector<std::byte> after(100);
    m.read(0, after);
    CHECK(after == before);
    m.free();
}

TEST_SUITE_END();
