// Process-local pools (Dragon's dragon_create_process_local_pool, register, deregister):
// the pool records its owner process, is destroyed at the owner's normal exit, survives
// an owner that deregistered, and after an owner killed it is an orphan (attributes say
// process_local with owner_alive false) that another process may take over. A pool is
// never destroyed, nor taken over, while its owner lives. Owners are dm_child processes.
#include "testing.hpp"

#include <sys/stat.h>

#include <csignal>
#include <string>

using namespace dmtest;

namespace {

constexpr const char* kOwnerPoolVar = "DMTEST_POOL_B64";

bool pool_object_exists(const std::string& name) {
    struct stat st {};
    return ::stat(("/dev/shm/dragonmem." + name).c_str(), &st) == 0;
}

}  // namespace

TEST_SUITE_BEGIN("process_local");

TEST_CASE("a process-local pool is destroyed when its owner exits normally") {
    const std::string child = child_or_fail();
    ShmGuard guard(unique_pool_name());
    Child owner = Child::spawn({child, "process-local", guard.name(), "exit"});
    const ChildResult r = owner.wait(30000);
    REQUIRE_MESSAGE(r.exited_with(0), r.describe());
    CHECK(r.output.find("ready") != std::string::npos);
    CHECK_FALSE(pool_object_exists(guard.name()));
}

TEST_CASE("a deregistered pool outlives its creator") {
    const std::string child = child_or_fail();
    ShmGuard guard(unique_pool_name());
    Child owner = Child::spawn({child, "process-local", guard.name(), "deregister"});
    const ChildResult r = owner.wait(30000);
    REQUIRE_MESSAGE(r.exited_with(0), r.describe());
    REQUIRE(pool_object_exists(guard.name()));
    dragonmem::Pool pool = dragonmem::Pool::attach_local(guard.name());
    CHECK_FALSE(pool.process_local());
    CHECK_FALSE(pool.owner_alive());
    pool.destroy();
}

TEST_CASE("a live owner's pool is neither destroyed nor taken over; a killed owner leaves an orphan") {
    const std::string child = child_or_fail();
    ShmGuard guard(unique_pool_name());
    Child owner = Child::spawn({child, "process-local", guard.name(), "hold"});
    REQUIRE_MESSAGE(owner.wait_for_output("ready", 30000), owner.output());
    dragonmem::Pool pool = dragonmem::Pool::attach_local(guard.name());
    dragonmem::PoolAttributes a = pool.attributes();
    CHECK(a.process_local);
    CHECK(a.owner_alive);
    CHECK(a.owner_pid == static_cast<std::uint32_t>(owner.pid()));

    // Another process cannot take a live owner's pool, nor give it up for it.
    DM_CHECK_THROWS_CODE(pool.register_process_local(), DRAGON_INVALID_OPERATION, msg);
    DM_CHECK_CONTAINS(msg, "process-local to live process " + std::to_string(owner.pid()));
    DM_CHECK_THROWS_CODE(pool.deregister_process_local(), DRAGON_INVALID_OPERATION, msg2);
    DM_CHECK_CONTAINS(msg2, "not to this one");
    CHECK(pool.attributes().owner_pid == static_cast<std::uint32_t>(owner.pid()));

    ::kill(owner.pid(), SIGKILL);
    const ChildResult r = owner.wait(30000);
    CHECK(r.signal == SIGKILL);
    REQUIRE(pool_object_exists(guard.name()));  // no normal exit: nothing destroyed it
    a = pool.attributes();
    CHECK(a.process_local);
    CHECK_FALSE(a.owner_alive);  // an orphan

    // A dead owner's pool may be taken over; then given up.
    pool.register_process_local();
    a = pool.attributes();
    CHECK(a.owner_alive);
    CHECK(a.owner_pid == static_cast<std::uint32_t>(::getpid()));
    pool.register_process_local();  // already ours: fine
    pool.deregister_process_local();
    CHECK_FALSE(pool.process_local());
    DM_CHECK_THROWS_CODE(pool.deregister_process_local(), DRAGON_INVALID_OPERATION, msg3);
    DM_CHECK_CONTAINS(msg3, "is not process-local");
    pool.destroy();
}

TEST_CASE("register_process_local_pool through the C API; the child that registers owns it") {
    const std::string child = child_or_fail();
    TestPool pool(65536);
    const std::string serial = base64_encode(serialize_pool(pool.pd()));
    Child owner = Child::spawn({child, "register-hold", kOwnerPoolVar}, {{kOwnerPoolVar, serial}});
    REQUIRE_MESSAGE(owner.wait_for_output("ready", 30000), owner.output());
    DM_CHECK_RC(dragon_register_process_local_pool(pool.pd(), nullptr), DRAGON_INVALID_OPERATION);
    ::kill(owner.pid(), SIGKILL);
    (void)owner.wait(30000);
    DM_CHECK_OK(dragon_register_process_local_pool(pool.pd(), nullptr));
    DM_CHECK_OK(dragon_deregister_process_local_pool(pool.pd(), nullptr));
}

TEST_CASE("process-local calls: bad input is a clear error and creates nothing") {
    ShmGuard guard(unique_pool_name());
    dragonMemoryPoolDescr_t pool{};
    DM_CHECK_RC(dragon_create_process_local_pool(nullptr, 65536, guard.name().c_str(), nullptr, nullptr),
                DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragon_create_process_local_pool(&pool, 65536, nullptr, nullptr, nullptr), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragon_create_process_local_pool(&pool, 0, guard.name().c_str(), nullptr, nullptr),
                DRAGON_INVALID_ARGUMENT);
    CHECK_FALSE(pool_object_exists(guard.name()));
    dragonMemoryPoolDescr_t never{};
    DM_CHECK_RC(dragon_register_process_local_pool(&never, nullptr), DRAGON_MAP_KEY_NOT_FOUND);
    DM_CHECK_RC(dragon_deregister_process_local_pool(nullptr, nullptr), DRAGON_INVALID_ARGUMENT);
}

TEST_SUITE_END();
