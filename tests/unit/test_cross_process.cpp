// Cross-process scenarios with separate programs (dm_child, started by posix_spawn =
// fork+exec): descriptors travel as base64 in an environment variable or an argument.
// A child writes and the parent reads (and back); a child blocked in alloc_blocking is
// woken by the parent's free; a child with another POD_UID or DRAGON_RT_UID sees the
// pool as remote; a destroyed pool cannot be attached from another process.
#include "testing.hpp"
#include "wait_slice.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

using namespace dmtest;

namespace {

constexpr const char* kPoolVar = "DMTEST_POOL_B64";

std::string pool_b64(const dragonMemoryPoolDescr_t* pool) { return base64_encode(serialize_pool(pool)); }
std::string mem_b64(const dragonMemoryDescr_t* mem) { return base64_encode(serialize_mem(mem)); }

// The environment a child on "this host" gets: the parent's identity variables as-is.
EnvChanges local_env(const std::string& pool_serial_b64) { return {{kPoolVar, pool_serial_b64}}; }

bool wait_for_waiter(dragonMemoryPoolDescr_t* pool, int timeout_ms) {
    const double deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        dragonMemoryPoolAttr_t attr{};
        if (dragon_memory_get_attr(pool, &attr) == DRAGON_SUCCESS) {
            const bool waiting = attr.waiters_for_manifest != 0;
            dragon_memory_attr_destroy(&attr);
            if (waiting) return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

std::string other_pod_uid() { return "dmtest-other-host-" + std::to_string(::getpid()); }

std::string local_pool_size(const dragonMemoryPoolDescr_t* pool) {
    std::size_t size = 0;
    const dragonError_t rc = dragon_memory_pool_get_size(pool, &size);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "pool_get_size returned " << toString(rc) << ": " << last_error());
    return std::to_string(size);
}

}  // namespace

TEST_SUITE_BEGIN("cross_process");

TEST_CASE("a child attaches an allocation by descriptor and writes; the parent reads") {
    const std::string child = child_or_fail();
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 4000));
    std::memset(mem_pointer(&mem), 0, 4000);

    SUBCASE("C API in the child") {
        const auto r = run_child({child, "write-mem", mem_b64(&mem), "77"}, {}, 10000);
        REQUIRE_MESSAGE(r.exited_with(0), r.describe());
        CHECK(find_pattern_mismatch(mem_pointer(&mem), 4000, 77) == -1);
    }
    SUBCASE("C++ API in the child") {
        const auto r = run_child({child, "cxx-write-mem", mem_b64(&mem), "78"}, {}, 10000);
        REQUIRE_MESSAGE(r.exited_with(0), r.describe());
        CHECK(find_pattern_mismatch(mem_pointer(&mem), 4000, 78) == -1);
    }
    SUBCASE("a view at an offset: the child writes only the view") {
        dragonMemoryDescr_t view{};
        std::size_t len = 100;
        DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 1000, &len));
        const auto r = run_child({child, "write-mem", mem_b64(&view), "79"}, {}, 10000);
        REQUIRE_MESSAGE(r.exited_with(0), r.describe());
        DM_CHECK_CONTAINS(r.output, "wrote 100");
        auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
        CHECK(find_pattern_mismatch(p + 1000, 100, 79) == -1);
        bool outside_untouched = true;
        for (std::size_t i = 0; i < 4000; ++i)
            if ((i < 1000 || i >= 1100) && p[i] != 0) outside_untouched = false;
        CHECK(outside_untouched);
    }
}

TEST_CASE("the parent writes and a child reads the same bytes") {
    const std::string child = child_or_fail();
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 3000));
    fill_pattern(mem_pointer(&mem), 3000, 55);
    auto r = run_child({child, "read-mem", mem_b64(&mem), "55"}, {}, 10000);
    CHECK_MESSAGE(r.exited_with(0), r.describe());
    // A wrong seed must be noticed (the check can fail).
    r = run_child({child, "read-mem", mem_b64(&mem), "56"}, {}, 10000);
    CHECK_MESSAGE(r.exited_with(3), r.describe());
}

TEST_CASE("a child allocates in the parent's pool; the parent finds it by id and frees it") {
    const std::string child = child_or_fail();
    TestPool pool(65536);
    const auto r = run_child({child, "alloc-write", kPoolVar, "1500", "31", "2"}, local_env(pool_b64(pool.pd())), 10000);
    REQUIRE_MESSAGE(r.exited_with(0), r.describe());
    const std::uint64_t id = std::strtoull(field(r.output, "id").c_str(), nullptr, 10);
    REQUIRE(id != 0);
    const PoolState state = pool_state(pool.pd());
    CHECK(state.ids == std::vector<std::uint64_t>{id});
    CHECK(state.types == std::vector<std::uint64_t>{2});
    CHECK(state.free_bytes == 65536 - block_for(1500));
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_from_id(pool.pd(), id, &mem));
    CHECK(mem_size(&mem) == 1500);
    CHECK(find_pattern_mismatch(mem_pointer(&mem), 1500, 31) == -1);
    // The child's serialized descriptor attaches here to the same memory.
    const auto bytes = base64_decode(field(r.output, "mem"));
    REQUIRE(bytes.has_value());
    dragonMemorySerial_t ser{bytes->size(), const_cast<std::uint8_t*>(bytes->data())};
    dragonMemoryDescr_t attached{};
    DM_REQUIRE_OK(dragon_memory_attach(&attached, &ser));
    CHECK(mem_pointer(&attached) == mem_pointer(&mem));
    DM_CHECK_OK(dragon_memory_free(&mem));
    CHECK(free_bytes(pool.pd()) == 65536);
}

TEST_CASE("a child frees an allocation the parent made") {
    const std::string child = child_or_fail();
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 5000));
    const std::uint64_t id = mem_id(&mem);
    const auto r = run_child({child, "free-id", kPoolVar, std::to_string(id)}, local_env(pool_b64(pool.pd())), 10000);
    REQUIRE_MESSAGE(r.exited_with(0), r.describe());
    CHECK(live_ids(pool.pd()).empty());
    CHECK(free_bytes(pool.pd()) == 65536);
    CHECK(is_one_maximal_block(pool.pd(), 65536));
    // Our descriptor now refers to a freed allocation: freeing it again is refused.
    CHECK(dragon_memory_free(&mem) != DRAGON_SUCCESS);
    CHECK(free_bytes(pool.pd()) == 65536);
}

TEST_CASE("several children allocate and write concurrently") {
    const std::string child = child_or_fail();
    TestPool pool(1 << 20);
    const std::string serial = pool_b64(pool.pd());
    std::vector<Child> children;
    for (int i = 0; i < 6; ++i)
        children.push_back(
            Child::spawn({child, "alloc-write", kPoolVar, std::to_string(1000 + i * 3000), std::to_string(i + 1), "0"},
                         local_env(serial)));
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 6; ++i) {
        const auto r = children[static_cast<std::size_t>(i)].wait(10000);
        REQUIRE_MESSAGE(r.exited_with(0), r.describe());
        const std::uint64_t id = std::strtoull(field(r.output, "id").c_str(), nullptr, 10);
        dragonMemoryDescr_t mem{};
        DM_REQUIRE_OK(dragon_memory_from_id(pool.pd(), id, &mem));
        const std::size_t bytes = static_cast<std::size_t>(1000 + i * 3000);
        CHECK(mem_size(&mem) == bytes);
        CHECK(find_pattern_mismatch(mem_pointer(&mem), bytes, static_cast<std::uint64_t>(i + 1)) == -1);
        ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    CHECK(live_ids(pool.pd()) == ids);
    DM_CHECK_OK(dragonmem_pool_check(pool.pd()));
}

TEST_CASE("a child blocked in alloc_blocking is woken by the parent's free") {
    const std::string child = child_or_fail();
    TestPool pool(4096);
    dragonMemoryDescr_t a{}, b{};
    DM_REQUIRE_OK(dragon_memory_alloc(&a, pool.pd(), 2048));
    DM_REQUIRE_OK(dragon_memory_alloc(&b, pool.pd(), 2048));

    for (const char* timeout_arg : {"10000", "-1"}) {  // with a timeout, and without (NULL)
        CAPTURE(timeout_arg);
        // The long wait slice (wait_slice.hpp): only the free's wake-up ends its sleep early.
        EnvChanges env = local_env(pool_b64(pool.pd()));
        env.emplace_back(k_wait_slice_env, std::to_string(k_long_wait_slice_ms));
        Child waiter = Child::spawn({child, "alloc-blocking", kPoolVar, "2048", timeout_arg}, env);
        REQUIRE(waiter.started());
        REQUIRE_MESSAGE(waiter.wait_for_output("ready", 10000), "child never got ready: " << waiter.output());
        CHECK_MESSAGE(wait_for_waiter(pool.pd(), 10000), "get_attr never reported the blocked child");
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // blocked time to measure CPU use over
        const double freed_at = now_ms();
        DM_REQUIRE_OK(dragon_memory_free(&a));
        const auto r = waiter.wait(20000);
        const double woke_after = now_ms() - freed_at;
        REQUIRE_MESSAGE(r.exited_with(0), r.describe());
        CHECK_MESSAGE(woke_after < 5000.0, "child returned " << woke_after << " ms after the free");
        // Asleep in the kernel, not spinning: 300+ ms blocked, little CPU (this includes
        // the child's start-up).
        CHECK_MESSAGE(r.cpu_ms < 150.0, "blocked child used " << r.cpu_ms << " ms of CPU: " << r.output);
        const std::uint64_t id = std::strtoull(field(r.output, "id").c_str(), nullptr, 10);
        CHECK(live_ids(pool.pd()) == std::vector<std::uint64_t>{mem_id(&b), id});
        DM_REQUIRE_OK(dragon_memory_from_id(pool.pd(), id, &a));  // the child's block is now `a`
    }
}

TEST_CASE("a child's blocking alloc times out with TIMEOUT") {
    const std::string child = child_or_fail();
    TestPool pool(4096);
    dragonMemoryDescr_t all{};
    DM_REQUIRE_OK(dragon_memory_alloc(&all, pool.pd(), 4096));
    const PoolState before = pool_state(pool.pd());
    const auto r = run_child({child, "alloc-blocking", kPoolVar, "64", "150"}, local_env(pool_b64(pool.pd())), 10000);
    CHECK_MESSAGE(r.exited_with(DRAGON_TIMEOUT), r.describe());
    const double elapsed = std::atof(field(r.output, "elapsed_ms").c_str());
    CHECK_MESSAGE(elapsed >= 145.0, r.output);
    CHECK_MESSAGE(elapsed < 5000.0, r.output);
    CHECK(pool_state(pool.pd()) == before);
}

TEST_CASE("a too-large blocking request without a timeout returns TOO_LARGE at once") {
    const std::string child = child_or_fail();
    TestPool pool(4096);
    const auto r = run_child({child, "alloc-blocking", kPoolVar, "8192", "-1"}, local_env(pool_b64(pool.pd())), 20000);
    CHECK_MESSAGE(r.exited_with(DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE), r.describe());
    CHECK(free_bytes(pool.pd()) == 4096);
}

TEST_CASE("a child on this host sees the pool as local") {
    const std::string child = child_or_fail();
    TestPool pool(4096);
    const auto r = run_child({child, "attach-pool", kPoolVar}, local_env(pool_b64(pool.pd())), 10000);
    CHECK_MESSAGE(r.exited_with(0), r.describe());
    DM_CHECK_CONTAINS(r.output, "local=1");
}

TEST_CASE("a child with another POD_UID sees the pool as remote") {
    const std::string child = child_or_fail();
    TestPool pool(65536, nullptr, 8080);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    fill_pattern(mem_pointer(&mem), 100, 12);
    const PoolState before = pool_state(pool.pd());
    dragonULInt hostid = 0, rt_uid = 0;
    DM_REQUIRE_OK(dragon_memory_pool_get_hostid(pool.pd(), &hostid));
    DM_REQUIRE_OK(dragon_memory_pool_get_rt_uid(pool.pd(), &rt_uid));
    EnvChanges env = local_env(pool_b64(pool.pd()));
    env.emplace_back("POD_UID", other_pod_uid());

    SUBCASE("the pool descriptor") {
        const auto r = run_child({child, "remote-pool", kPoolVar, std::to_string(hostid), "8080", pool.name(),
                                  std::to_string(rt_uid), "1", local_pool_size(pool.pd())},
                                 env, 10000);
        CHECK_MESSAGE(r.exited_with(0), r.describe());
    }
    SUBCASE("an allocation descriptor") {
        const auto r = run_child(
            {child, "remote-mem", mem_b64(&mem), std::to_string(mem_id(&mem)), "100", std::to_string(hostid)}, env,
            10000);
        CHECK_MESSAGE(r.exited_with(0), r.describe());
    }
    // Nothing the remote child tried (alloc, free, destroy...) reached the pool.
    CHECK(shm_exists(pool.name()));
    CHECK(pool_state(pool.pd()) == before);
    CHECK(find_pattern_mismatch(mem_pointer(&mem), 100, 12) == -1);
}

TEST_CASE("a child with another DRAGON_RT_UID sees the pool as remote") {
    const std::string child = child_or_fail();
    TestPool pool(65536, nullptr, 9090);
    const PoolState before = pool_state(pool.pd());
    dragonULInt hostid = 0, rt_uid = 0;
    DM_REQUIRE_OK(dragon_memory_pool_get_hostid(pool.pd(), &hostid));
    DM_REQUIRE_OK(dragon_memory_pool_get_rt_uid(pool.pd(), &rt_uid));
    EnvChanges env = local_env(pool_b64(pool.pd()));
    env.emplace_back("DRAGON_RT_UID", std::to_string(rt_uid + 1000));
    const auto r = run_child({child, "remote-pool", kPoolVar, std::to_string(hostid), "9090", pool.name(),
                              std::to_string(rt_uid), "0", local_pool_size(pool.pd())},
                             env, 10000);
    CHECK_MESSAGE(r.exited_with(0), r.describe());
    CHECK(pool_state(pool.pd()) == before);
}

TEST_CASE("attaching a destroyed pool from another process is OBJECT_DESTROYED or MEMORY_ERRNO") {
    const std::string child = child_or_fail();
    TestPool pool(65536);
    const std::string serial = pool_b64(pool.pd());
    DM_REQUIRE_OK(pool.destroy());
    const auto r = run_child({child, "attach-pool", kPoolVar}, local_env(serial), 10000);
    CHECK_MESSAGE((r.exited_with(DRAGON_OBJECT_DESTROYED) || r.exited_with(DRAGON_MEMORY_ERRNO)), r.describe());
    CHECK(shm_objects_of(pool.name()).empty());
}

TEST_CASE("a pool destroyed by a child's peer: the parent's descriptors of a re-created pool differ") {
    // The parent destroys and re-creates a pool of the same name; a child holding the
    // old descriptor must not attach the new pool.
    const std::string child = child_or_fail();
    ShmGuard guard(unique_pool_name());
    dragonMemoryPoolDescr_t first{};
    DM_REQUIRE_OK(dragon_memory_pool_create(&first, 65536, guard.name().c_str(), 1, nullptr));
    const std::string old_serial = pool_b64(&first);
    DM_REQUIRE_OK(dragon_memory_pool_destroy(&first));
    dragonMemoryPoolDescr_t second{};
    DM_REQUIRE_OK(dragon_memory_pool_create(&second, 65536, guard.name().c_str(), 1, nullptr));
    const auto r = run_child({child, "attach-pool", kPoolVar}, local_env(old_serial), 10000);
    CHECK_MESSAGE((r.exited_with(DRAGON_OBJECT_DESTROYED) || r.exited_with(DRAGON_MEMORY_ERRNO)), r.describe());
    // The new pool's own descriptor works.
    const auto ok = run_child({child, "attach-pool", kPoolVar}, local_env(pool_b64(&second)), 10000);
    CHECK_MESSAGE(ok.exited_with(0), ok.describe());
    DM_CHECK_OK(dragon_memory_pool_destroy(&second));
}

TEST_SUITE_END();
