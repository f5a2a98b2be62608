// Who is alive (issue 14 item 3) and the pool's allocation/free totals (item 8), through
// the C++ API: the creator and the processes attached are recorded in the pool's
// process table (lib/pool/process_table.hpp); a detach takes its entry back, a killed
// process's entry counts as dead (judged like a dead lock owner), a full table counts
// the overflow instead of failing the attach, and `orphaned` says no other live process
// uses the pool. Other processes are dm_child processes.
#include "testing.hpp"

#include "pool/process_table.hpp"
#include "pool/robust_lock.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>

using namespace dmtest;

namespace {

constexpr const char* kPoolVar = "DMTEST_POOL_B64";

bool has_pid(const dragonmem::PoolAttributes& a, pid_t pid) {
    return std::find(a.attached_pids.begin(), a.attached_pids.end(), static_cast<std::uint32_t>(pid)) !=
           a.attached_pids.end();
}

}  // namespace

TEST_SUITE_BEGIN("who_is_alive");

TEST_CASE("the creator is recorded, and a pool nobody else attached is orphaned") {
    ShmGuard guard(unique_pool_name());
    dragonmem::Pool pool = dragonmem::Pool::create(guard.name(), 65536);
    const dragonmem::PoolAttributes a = pool.attributes();
    CHECK(a.creator_pid == static_cast<std::uint32_t>(::getpid()));
    CHECK(a.creator_uid == static_cast<std::uint32_t>(::geteuid()));
    CHECK(a.creator_alive);
    CHECK(a.creator_start_ticks > 0);
    CHECK(a.created_ns > 1'600'000'000'000'000'000ULL);  // after 2020
    REQUIRE(a.attached_pids.size() == 1);
    CHECK(a.attached_pids[0] == static_cast<std::uint32_t>(::getpid()));
    CHECK(a.untracked_attached == 0);
    CHECK(a.dead_attached == 0);
    CHECK(a.orphaned);  // nobody but the caller
    pool.destroy();
}

TEST_CASE("an attached process is listed while it lives; killed, its entry counts dead") {
    const std::string child = child_or_fail();
    ShmGuard guard(unique_pool_name());
    dragonmem::Pool pool = dragonmem::Pool::create(guard.name(), 65536);
    Child holder = Child::spawn({child, "register-hold", kPoolVar}, {{kPoolVar, pool.serialize_base64()}});
    REQUIRE_MESSAGE(holder.wait_for_output("ready", 30000), holder.output());
    dragonmem::PoolAttributes a = pool.attributes();
    CHECK(has_pid(a, holder.pid()));
    CHECK(has_pid(a, ::getpid()));
    CHECK_FALSE(a.orphaned);

    ::kill(holder.pid(), SIGKILL);
    (void)holder.wait(30000);
    a = pool.attributes();
    CHECK_FALSE(has_pid(a, holder.pid()));
    CHECK(a.dead_attached == 1);
    CHECK(a.orphaned);  // and process-local with a dead owner
    pool.destroy();
}

TEST_CASE("a process that detaches takes its entry back") {
    const std::string child = child_or_fail();
    ShmGuard guard(unique_pool_name());
    dragonmem::Pool pool = dragonmem::Pool::create(guard.name(), 65536);
    Child visitor = Child::spawn({child, "attach-pool", kPoolVar}, {{kPoolVar, pool.serialize_base64()}});
    const ChildResult r = visitor.wait(30000);
    REQUIRE_MESSAGE(r.exited_with(0), r.describe());
    const dragonmem::PoolAttributes a = pool.attributes();
    CHECK(a.dead_attached == 0);  // released, not merely dead
    CHECK(a.attached_pids == std::vector<std::uint32_t>{static_cast<std::uint32_t>(::getpid())});
    pool.destroy();
}

TEST_CASE("a forked child that attaches the inherited pool records itself, and its exit leaves it dead") {
    ShmGuard guard(unique_pool_name());
    dragonmem::Pool pool = dragonmem::Pool::create(guard.name(), 65536);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(ready[0]);
        int status = 1;
        try {
            dragonmem::Pool again = dragonmem::Pool::attach_local(guard.name());  // shares the inherited mapping
            status = has_pid(again.attributes(), ::getpid()) ? 0 : 3;
            (void)!::write(ready[1], "r", 1);
            ::pause();
        } catch (...) {
        }
        ::_exit(status);
    }
    ::close(ready[1]);
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    ::close(ready[0]);
    dragonmem::PoolAttributes a = pool.attributes();
    CHECK(has_pid(a, pid));
    CHECK(has_pid(a, ::getpid()));  // the child's entry is its own, not ours taken over
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    a = pool.attributes();
    CHECK_FALSE(has_pid(a, pid));
    CHECK(has_pid(a, ::getpid()));
    CHECK(a.dead_attached == 1);
    pool.destroy();
}

TEST_CASE("a full process table counts the overflow instead of failing, and dead entries are reused") {
    using namespace dragonmem::detail;
    auto table = std::make_unique<ProcessTable>();
    std::memset(static_cast<void*>(table.get()), 0, sizeof(ProcessTable));
    const std::uint64_t me = current_process_word();
    for (auto& entry : table->entries) entry.store(me);
    CHECK(process_table_claim(*table, me) == -1);
    CHECK(table->untracked.load() == 1);
    ProcessCensus census = process_table_census(*table);
    CHECK(census.untracked == 1);
    CHECK(census.live_pids == std::vector<std::uint32_t>{static_cast<std::uint32_t>(::getpid())});
    process_table_release(*table, -1, me);
    CHECK(table->untracked.load() == 0);
    process_table_release(*table, -1, me);  // never below 0
    CHECK(table->untracked.load() == 0);

    // A process that no longer exists (pid beyond pid_max): its entry is taken over.
    const std::uint64_t dead = (std::uint64_t{12345} << 32) | 0x7FFFFFF0u;
    table->entries[7].store(dead);
    CHECK(process_table_census(*table).dead_entries == 1);
    CHECK(process_table_claim(*table, me) == 7);
    CHECK(table->entries[7].load() == me);
    process_table_release(*table, 7, me);
    CHECK(table->entries[7].load() == 0);
    // Another process's word is never released by us.
    table->entries[8].store(dead);
    process_table_release(*table, 8, me);
    CHECK(table->entries[8].load() == dead);
}

TEST_CASE("allocation and free totals count the locked and the lock-free paths") {
    ShmGuard guard(unique_pool_name());
    dragonmem::Pool pool = dragonmem::Pool::create(guard.name(), 1 << 20);
    dragonmem::PoolAttributes a = pool.attributes();
    CHECK(a.allocations_total == 0);
    CHECK(a.frees_total == 0);
    // The first allocations take the lock; from the second on this thread caches, and
    // most pairs are lock-free.
    for (int i = 0; i < 1000; ++i) pool.alloc(64).free();
    auto kept = pool.alloc(128);
    (void)pool.alloc(0);  // the zero-byte allocation owns no block: not counted
    a = pool.attributes();
    CHECK(a.allocations_total == 1001);
    CHECK(a.frees_total == 1000);
    CHECK(a.live_allocations == 1);

    // Another process's counts add up with ours (its thread caches in an entry of its own).
    const std::string child = child_or_fail();
    Child worker = Child::spawn({child, "alloc-write", kPoolVar, "64", "1", "0"}, {{kPoolVar, pool.serialize_base64()}});
    const ChildResult r = worker.wait(30000);
    REQUIRE_MESSAGE(r.exited_with(0), r.describe());
    a = pool.attributes();
    CHECK(a.allocations_total == 1002);
    kept.free();
    CHECK(pool.attributes().frees_total == 1001);
    pool.destroy();
}

TEST_SUITE_END();
