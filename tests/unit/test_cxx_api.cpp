// The C++ API (dragonmem::Pool, dragonmem::Memory, dragonmem::Error): RAII handles,
// the same capabilities as the C API, and exceptions that carry the C API's code and
// message. Also C/C++ interoperability of descriptors.
#include "testing.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>

using namespace dmtest;
using dragonmem::Error;
using dragonmem::Memory;
using dragonmem::Pool;
using dragonmem::PoolOptions;

static_assert(!std::is_copy_constructible_v<Pool> && std::is_nothrow_move_constructible_v<Pool>);
static_assert(!std::is_copy_constructible_v<Memory> && std::is_nothrow_move_constructible_v<Memory>);
static_assert(std::is_base_of_v<std::runtime_error, Error>);

namespace {

// A pool made with the C++ API; destroyed (if still valid) and unlinked at scope exit.
struct CxxPool {
    explicit CxxPool(std::size_t bytes, std::uint64_t m_uid = 3, const PoolOptions& options = {})
        : guard(unique_pool_name()), pool(Pool::create(guard.name(), bytes, m_uid, options)) {}
    ~CxxPool() {
        try {
            if (pool.valid()) pool.destroy();
        } catch (...) {
        }
    }
    ShmGuard guard;
    Pool pool;
};

}  // namespace

TEST_SUITE_BEGIN("cxx_api");

TEST_CASE("Pool::create, and dropping the handle detaches without destroying") {
    ShmGuard guard(unique_pool_name());
    std::uint64_t id = 0;
    {
        Pool pool = Pool::create(guard.name(), 60000, 9);
        CHECK(pool.valid());
        CHECK(pool.is_local());
        CHECK(pool.name() == guard.name());
        CHECK(pool.m_uid() == 9);
        CHECK(pool.heap_bytes() == 65536);
        CHECK(pool.base_pointer() != nullptr);
        Memory mem = pool.alloc(100);
        id = mem.id();
        fill_pattern(mem.pointer(), 100, 17);
    }
    CHECK(shm_exists(guard.name()));
    Pool again = Pool::attach_local(guard.name());
    CHECK(again.allocation_exists(id));
    Memory found = again.from_id(id);
    CHECK(find_pattern_mismatch(found.pointer(), 100, 17) == -1);
    again.destroy();
    CHECK_FALSE(again.valid());
    CHECK(shm_objects_of(guard.name()).empty());
}

TEST_CASE("Memory: size, pointer, bytes, id, type, offset") {
    CxxPool p(65536);
    Memory mem = p.pool.alloc(1000, DRAGON_MEMORY_ALLOC_CHANNEL);
    CHECK(mem.valid());
    CHECK(mem.is_local());
    CHECK(mem.size() == 1000);
    CHECK(mem.id() != 0);
    CHECK(mem.type() == DRAGON_MEMORY_ALLOC_CHANNEL);
    REQUIRE(mem.pointer() != nullptr);
    CHECK(mem.bytes().size() == 1000);
    CHECK(static_cast<void*>(mem.bytes().data()) == mem.pointer());
    CHECK(mem.block_offset() % 1024 == 0);
    CHECK(static_cast<char*>(mem.pointer()) == static_cast<char*>(p.pool.base_pointer()) + mem.block_offset());
    CHECK(mem.exists());
    CHECK(mem.pool().m_uid() == 3);

    Memory second = p.pool.alloc(10);
    CHECK(second.id() > mem.id());
    CHECK(second.type() == DRAGON_MEMORY_ALLOC_DATA);
}

TEST_CASE("any integer is an allocation type and allocations() filters by it") {
    CxxPool p(65536);
    Memory a = p.pool.alloc(64, 12345);
    Memory b = p.pool.alloc(64, 12345);
    Memory c = p.pool.alloc(64, 7);
    Memory d = p.pool.alloc(64);
    CHECK(a.type() == 12345);
    const auto typed = p.pool.allocations(12345);
    REQUIRE(typed.size() == 2);
    for (const auto& info : typed) {
        CHECK(info.type == 12345);
        CHECK(info.size == 64);
        CHECK(info.block_bytes == 64);
        CHECK((info.id == a.id() || info.id == b.id()));
    }
    const auto all = p.pool.allocations();
    CHECK(all.size() == 4);
    const auto seven = p.pool.allocations(7);
    REQUIRE(seven.size() == 1);
    CHECK(seven[0].id == c.id());
    CHECK(seven[0].offset == c.block_offset());
    CHECK(p.pool.allocations(99).empty());
    // The C API sees the same types.
    dragonMemoryPoolDescr_t cpool{};
    const auto serial = p.pool.serialize();
    dragonMemoryPoolSerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
    DM_REQUIRE_OK(dragon_memory_pool_attach(&cpool, &ser));
    dragonMemoryPoolAllocations_t allocs{};
    DM_REQUIRE_OK(dragon_memory_pool_get_type_allocations(&cpool, DRAGON_MEMORY_ALLOC_DATA, &allocs));
    CHECK(allocs.nallocs == 1);
    if (allocs.nallocs == 1) CHECK(allocs.ids[0] == d.id());
    dragon_memory_pool_allocations_free(&allocs);
    DM_CHECK_OK(dragon_memory_pool_detach(&cpool));
}

TEST_CASE("Memory::clone, serialize and attach keep the view") {
    CxxPool p(65536);
    Memory mem = p.pool.alloc(256);
    fill_pattern(mem.pointer(), 256, 4);
    Memory view = mem.clone(10, 20);
    CHECK(static_cast<char*>(view.pointer()) == static_cast<char*>(mem.pointer()) + 10);
    CHECK(view.size() == 20);
    CHECK(view.id() == mem.id());
    Memory rest = mem.clone(100);
    CHECK(rest.size() == 156);

    Memory attached = Memory::attach(view.serialize());
    CHECK(attached.pointer() == view.pointer());
    CHECK(attached.size() == 20);
    Memory from_b64 = Memory::attach_base64(view.serialize_base64());
    CHECK(from_b64.pointer() == view.pointer());
    CHECK(from_b64.size() == 20);
    CHECK(view.serialize().size() <= dragon_memory_max_serialized_len());

    DM_CHECK_THROWS_CODE(mem.clone(257), DRAGON_INVALID_ARGUMENT, m1);
    DM_CHECK_THROWS_CODE(mem.clone(0, 257), DRAGON_INVALID_ARGUMENT, m2);
    DM_CHECK_THROWS_CODE(view.clone(0, 21), DRAGON_INVALID_ARGUMENT, m3);
    DM_CHECK_THROWS_CODE(mem.clone(-1), DRAGON_INVALID_ARGUMENT, m4);
}

TEST_CASE("Memory::free frees for every view and empties the handle") {
    CxxPool p(65536);
    Memory mem = p.pool.alloc(256);
    Memory view = mem.clone(8);
    const std::uint64_t id = mem.id();
    view.free();
    CHECK_FALSE(view.valid());
    CHECK_FALSE(mem.exists());
    CHECK_FALSE(p.pool.allocation_exists(id));
    CHECK(p.pool.attributes().free_bytes == 65536);
    DM_CHECK_THROWS_CODE(view.free(), DRAGON_MAP_KEY_NOT_FOUND, m1);
    CHECK_THROWS_AS(mem.free(), Error);  // the allocation is gone
    CHECK(p.pool.attributes().free_bytes == 65536);
}

TEST_CASE("Memory::modify_size within the requested size, and on a zero-byte allocation") {
    CxxPool p(65536);
    Memory mem = p.pool.alloc(100);
    mem.modify_size(40);
    CHECK(mem.size() == 40);
    mem.modify_size(100);
    CHECK(mem.size() == 100);
    DM_CHECK_THROWS_CODE(mem.modify_size(101), DRAGON_INVALID_ARGUMENT, msg);
    DM_CHECK_CONTAINS(msg, "101");
    CHECK(mem.size() == 100);

    Memory zero = p.pool.alloc(0);
    CHECK(zero.id() == 0);
    CHECK(zero.size() == 0);
    CHECK(zero.pointer() == nullptr);
    CHECK(zero.bytes().empty());
    const timespec timeout = ms_timespec(100);
    zero.modify_size(64, &timeout);
    CHECK(zero.size() == 64);
    CHECK(zero.id() != 0);
    CHECK(zero.pointer() != nullptr);
    CHECK(p.pool.allocation_exists(zero.id()));
}

TEST_CASE("zero-byte Memory: free is a no-op") {
    CxxPool p(4096);
    Memory zero = p.pool.alloc(0);
    CHECK(p.pool.allocations().empty());
    CHECK_NOTHROW(zero.free());
    CHECK(p.pool.attributes().free_bytes == 4096);
}

TEST_CASE("Pool::from_id with offset and length; a stale id throws") {
    CxxPool p(65536);
    Memory mem = p.pool.alloc(512);
    Memory part = p.pool.from_id(mem.id(), 100, 50);
    CHECK(static_cast<char*>(part.pointer()) == static_cast<char*>(mem.pointer()) + 100);
    CHECK(part.size() == 50);
    Memory rest = p.pool.from_id(mem.id(), 100);
    CHECK(rest.size() == 412);
    DM_CHECK_THROWS_CODE(p.pool.from_id(mem.id(), 513), DRAGON_INVALID_ARGUMENT, m1);
    const std::uint64_t id = mem.id();
    mem.free();
    CHECK_THROWS_AS(p.pool.from_id(id), Error);
    CHECK_FALSE(p.pool.allocation_exists(id));
}

TEST_CASE("mode 0 means the default 0600, in the C++ API as in the C API") {
    PoolOptions options;
    options.mode = 0;
    CxxPool cxx(4096, 3, options);
    CHECK(cxx.pool.attributes().mode == 0600);
    struct stat st {};
    REQUIRE(::stat(("/dev/shm/dragonmem." + cxx.guard.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);

    // The C API: a zero-filled attr (attr_init skipped) the same.
    ShmGuard guard(unique_pool_name());
    dragonMemoryPoolAttr_t attr;
    std::memset(&attr, 0, sizeof attr);
    dragonMemoryPoolDescr_t c_pool;
    DM_REQUIRE_OK(dragon_memory_pool_create(&c_pool, 4096, guard.name().c_str(), 1, &attr));
    REQUIRE(::stat(("/dev/shm/dragonmem." + guard.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    DM_CHECK_OK(dragon_memory_pool_destroy(&c_pool));
}

TEST_CASE("attributes, free_blocks and check describe the pool") {
    PoolOptions options;
    options.min_block_bytes = 64;
    options.max_allocations = 50;
    options.mode = 0640;
    options.lock_type = DRAGON_LOCK_GREEDY;
    options.growth_type = DRAGON_MEMORY_GROWTH_UNLIMITED;
    options.segment_size = 111;
    options.max_size = 222;
    CxxPool p(100000, 77, options);
    auto attrs = p.pool.attributes();
    CHECK(attrs.name == p.guard.name());
    CHECK(attrs.shm_name == "dragonmem." + p.guard.name());
    CHECK(attrs.m_uid == 77);
    CHECK(attrs.hostid == p.pool.hostid());
    CHECK(attrs.rt_uid == p.pool.rt_uid());
    CHECK(attrs.mode == 0640);
    CHECK(attrs.lock_type == DRAGON_LOCK_GREEDY);
    CHECK(attrs.mem_type == DRAGON_MEMORY_TYPE_SHM);
    CHECK(attrs.growth_type == DRAGON_MEMORY_GROWTH_UNLIMITED);
    CHECK(attrs.segment_size == 111);
    CHECK(attrs.max_size == 222);
    CHECK(attrs.min_block_bytes == 64);
    CHECK(attrs.heap_bytes == 131072);
    CHECK(attrs.max_block_bytes == 131072);
    CHECK(attrs.total_bytes >= attrs.heap_bytes);
    CHECK(attrs.max_allocations == 50);
    CHECK(attrs.free_bytes == 131072);
    CHECK(attrs.utilization_pct == 0.0);
    CHECK(attrs.live_allocations == 0);
    CHECK_FALSE(attrs.waiters);

    auto blocks = p.pool.free_blocks();
    REQUIRE(blocks.size() == 12);  // 64 B .. 128 KiB
    CHECK(blocks.front().block_bytes == 64);
    CHECK(blocks.back().block_bytes == 131072);
    CHECK(blocks.back().count == 1);

    Memory a = p.pool.alloc(1);
    Memory b = p.pool.alloc(5000);
    attrs = p.pool.attributes();
    CHECK(attrs.live_allocations == 2);
    CHECK(attrs.max_live_allocations == 2);
    CHECK(attrs.free_bytes == 131072 - 64 - 5120);  // 5000 B: 79 granules, rounded up to 80
    CHECK(attrs.utilization_pct == doctest::Approx(100.0 * (64 + 5120) / 131072));
    CHECK(attrs.largest_free_block == 131072 - 64 - 5120);
    CHECK(attrs.largest_request == 122880);  // the largest class bound in 125888 B: 15 * 2^13

    const auto report = p.pool.check();
    CHECK(report.ok);
    CHECK(report.problems.empty());
    CHECK(report.heap_bytes == 131072);
    CHECK(report.free_bytes + report.used_bytes == 131072);
    CHECK(report.used_bytes == 64 + 5120);
    CHECK(report.live_allocations == 2);
}

TEST_CASE("Pool::list_local finds this process's pools") {
    CxxPool p(4096);
    const auto names = Pool::list_local();
    CHECK(std::find(names.begin(), names.end(), p.guard.name()) != names.end());
}

TEST_CASE("Pool::local_shm_name names the pool's shm object, as attributes() and /dev/shm do") {
    CxxPool p(4096);
    const std::string shm_name = Pool::local_shm_name(p.guard.name());
    CHECK(shm_name == p.pool.attributes().shm_name);
    CHECK(shm_exists(p.guard.name()));
    CHECK(shm_path(p.guard.name()) == "/dev/shm/" + shm_name);
}

TEST_CASE("attach, attach_base64, attach_from_env and clone share the mapping") {
    CxxPool p(65536);
    Pool a = Pool::attach(p.pool.serialize());
    Pool b = Pool::attach_base64(p.pool.serialize_base64());
    CHECK(p.pool.serialize_base64() == base64_encode(p.pool.serialize()));
    const std::string var = "DMTEST_CXX_" + p.guard.name();
    ::setenv(var.c_str(), p.pool.serialize_base64().c_str(), 1);
    Pool c = Pool::attach_from_env(var.c_str());
    ::unsetenv(var.c_str());
    Pool d = p.pool.clone();
    for (Pool* q : {&a, &b, &c, &d}) {
        CHECK(q->is_local());
        CHECK(q->base_pointer() == p.pool.base_pointer());
        CHECK(q->name() == p.guard.name());
    }
    DM_CHECK_THROWS_CODE(Pool::attach_from_env(var.c_str()), DRAGON_INVALID_ARGUMENT, m1);
    DM_CHECK_THROWS_CODE(Pool::attach_base64("@@@@"), DRAGON_INVALID_ARGUMENT, m2);
    DM_CHECK_THROWS_CODE(Pool::attach(std::vector<std::uint8_t>(10, 0)), DRAGON_INVALID_ARGUMENT, m3);
    a.detach();
    CHECK_FALSE(a.valid());
    CHECK(b.attributes().free_bytes == 65536);
}

TEST_CASE("a pool reference assigned to itself keeps its pool (MappingRef self-assignment)") {
    CxxPool p(65536);
    dragonmem::detail::MappingRef ref = p.pool.ref().mapping;  // a second count on the mapping
    const dragonmem::detail::MappingRef& same = ref;
    ref = same;
    CHECK(ref.get() == p.pool.ref().mapping.get());
    ref.reset();
    CHECK(p.pool.attributes().heap_bytes == 65536);  // the pool's own reference is intact
}

TEST_CASE("moved-from and empty handles throw MAP_KEY_NOT_FOUND") {
    CxxPool p(4096);
    Pool empty;
    CHECK_FALSE(empty.valid());
    DM_CHECK_THROWS_CODE(empty.alloc(10), DRAGON_MAP_KEY_NOT_FOUND, m1);
    DM_CHECK_THROWS_CODE(empty.attributes(), DRAGON_MAP_KEY_NOT_FOUND, m2);
    DM_CHECK_THROWS_CODE(empty.serialize(), DRAGON_MAP_KEY_NOT_FOUND, m3);

    Pool moved = std::move(p.pool);
    CHECK(moved.valid());
    CHECK_FALSE(p.pool.valid());  // NOLINT(bugprone-use-after-move): that is the point
    DM_CHECK_THROWS_CODE(p.pool.alloc(10), DRAGON_MAP_KEY_NOT_FOUND, m4);
    Pool target = Pool::attach_local(p.guard.name());
    target = std::move(moved);  // the old target is detached, not leaked
    CHECK(target.valid());
    CHECK(target.name() == p.guard.name());
    target.destroy();

    Memory none;
    CHECK_FALSE(none.valid());
}

TEST_CASE("after Pool::destroy the other handles throw MAP_KEY_NOT_FOUND") {
    CxxPool p(65536);
    Pool other = p.pool.clone();
    Memory mem = other.alloc(64);
    p.pool.destroy();
    CHECK(shm_objects_of(p.guard.name()).empty());
    DM_CHECK_THROWS_CODE(other.alloc(10), DRAGON_MAP_KEY_NOT_FOUND, m1);
    DM_CHECK_THROWS_CODE(other.attributes(), DRAGON_MAP_KEY_NOT_FOUND, m2);
    DM_CHECK_THROWS_CODE(mem.pointer(), DRAGON_MAP_KEY_NOT_FOUND, m3);
    DM_CHECK_THROWS_CODE(mem.free(), DRAGON_MAP_KEY_NOT_FOUND, m4);
}

TEST_CASE("alloc_blocking honours its timeout; too large throws at once") {
    CxxPool p(4096);
    Memory all = p.pool.alloc(4096);
    const timespec timeout = ms_timespec(50);
    const double t0 = now_ms();
    DM_CHECK_THROWS_CODE(p.pool.alloc_blocking(32, DRAGON_MEMORY_ALLOC_DATA, &timeout), DRAGON_TIMEOUT, m1);
    const double elapsed = now_ms() - t0;
    CHECK(elapsed >= 45.0);
    CHECK(elapsed < 5000.0);  // a failure bound (it fires), not a figure
    const double t1 = now_ms();
    const timespec long_timeout = ms_timespec(2000);  // NULL (forever) is tried in a child process
    DM_CHECK_THROWS_CODE(p.pool.alloc_blocking(8192, DRAGON_MEMORY_ALLOC_DATA, &long_timeout),
                         DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE, m2);
    CHECK(now_ms() - t1 < 1500.0);  // waiting would take the whole 2 s
    DM_CHECK_THROWS_CODE(p.pool.alloc(32), DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE, m3);
}

TEST_CASE("exceptions carry the same code and message as the C API") {
    SUBCASE("bad name") {
        const std::string bad = unique_pool_name() + "/bad";
        dragonMemoryPoolDescr_t cpool{};
        const dragonError_t rc = dragon_memory_pool_create(&cpool, 4096, bad.c_str(), 1, nullptr);
        const std::string c_message = last_error();
        CHECK(rc == DRAGON_INVALID_ARGUMENT);
        DM_CHECK_THROWS_CODE(Pool::create(bad, 4096, 1), rc, cxx_message);
        CHECK(cxx_message == c_message);
        CHECK(last_error() == cxx_message);  // the C++ failure is also the thread's last error
    }
    SUBCASE("too large") {
        CxxPool p(4096);
        const auto serial = p.pool.serialize();
        dragonMemoryPoolSerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
        dragonMemoryPoolDescr_t cpool{};
        DM_REQUIRE_OK(dragon_memory_pool_attach(&cpool, &ser));
        dragonMemoryDescr_t mem{};
        const dragonError_t rc = dragon_memory_alloc(&mem, &cpool, 5000);
        const std::string c_message = last_error();
        CHECK(rc == DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE);
        DM_CHECK_THROWS_CODE(p.pool.alloc(5000), rc, cxx_message);
        CHECK(cxx_message == c_message);
        DM_CHECK_OK(dragon_memory_pool_detach(&cpool));
    }
    SUBCASE("name in use") {
        CxxPool p(4096);
        DM_CHECK_THROWS_CODE(Pool::create(p.guard.name(), 4096), DRAGON_MEMORY_ERRNO, msg);
        DM_CHECK_CONTAINS(msg, p.guard.name());
    }
    SUBCASE("bad options") {
        ShmGuard guard(unique_pool_name());
        PoolOptions options;
        options.max_allocations = 4;
        DM_CHECK_THROWS_CODE(Pool::create(guard.name(), 4096, 0, options), DRAGON_INVALID_ARGUMENT, m1);
        DM_CHECK_THROWS_CODE(Pool::create(guard.name(), 64), DRAGON_INVALID_ARGUMENT, m2);
        CHECK(shm_objects_of(guard.name()).empty());
    }
    SUBCASE("code_name") {
        const Error e(DRAGON_OUT_OF_SPACE, "x");
        CHECK(std::string(e.code_name()) == "DRAGON_OUT_OF_SPACE");
        CHECK(std::string(e.what()) == "x");
    }
}

TEST_CASE("C and C++ descriptors interoperate") {
    CxxPool p(65536);
    Memory mem = p.pool.alloc(300);
    fill_pattern(mem.pointer(), 300, 8);
    // C++ -> C
    const auto bytes = mem.clone(50, 100).serialize();
    dragonMemorySerial_t ser{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
    dragonMemoryDescr_t cmem{};
    DM_REQUIRE_OK(dragon_memory_attach(&cmem, &ser));
    CHECK(mem_pointer(&cmem) == static_cast<char*>(mem.pointer()) + 50);
    CHECK(mem_size(&cmem) == 100);
    CHECK(mem_id(&cmem) == mem.id());
    // C -> C++
    const auto cbytes = serialize_mem(&cmem);
    Memory back = Memory::attach(cbytes);
    CHECK(back.pointer() == mem_pointer(&cmem));
    CHECK(back.size() == 100);
    DM_CHECK_OK(dragon_memory_detach(&cmem));
    CHECK(find_pattern_mismatch(mem.pointer(), 300, 8) == -1);
}

TEST_SUITE_END();
