// The C API's descriptor table (lib/api/handle_table.hpp) on its own: keys found only
// while published, stale and forged keys refused, entries built in place and handed back,
// what erase releases, and a thread's free entries given back when it exits. Tables are
// function-local statics, as the library's are globals: constant-initialised, never
// destroyed (their chunks stay reachable, so leak checkers stay quiet). Each test has
// its own value type: a table's per-thread stash is per type (handle_table.hpp).
#include <doctest/doctest.h>

#include "api/c_api_handles.hpp"
#include "api/handle_table.hpp"

#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using namespace dragonmem::detail;

namespace {

// One value type per table (see above).
template <int N>
struct TableValue {
    int v = 0;
};

std::uint32_t handle_index_of(std::uint64_t key) { return static_cast<std::uint32_t>((key & 0xFFFFFFFFu) - 1); }
std::uint32_t handle_generation_of(std::uint64_t key) { return static_cast<std::uint32_t>(key >> 32); }

}  // namespace

TEST_SUITE_BEGIN("handle_table");

TEST_CASE("a key is found only between publish and erase; a reserved entry handed back is never seen") {
    using Table = HandleTable<TableValue<1>>;
    static constinit Table table;
    Table::Slot slot;
    REQUIRE(table.reserve(slot));
    slot.value().v = 41;
    // Not published: nothing can name it yet, not even the key it is about to get.
    const std::uint64_t key = table.publish(slot);
    CHECK(key != 0);
    REQUIRE(table.find(key) != nullptr);
    CHECK(table.find(key)->v == 41);
    Table::Found found = table.lookup(key);
    REQUIRE(found);
    CHECK(found.value() == table.find(key));
    table.erase(found);
    CHECK(table.find(key) == nullptr);
    CHECK_FALSE(table.erase(key));  // a second erase of the same key

    // unreserve: the entry goes back to this thread's stash and is the next one reserved.
    Table::Slot taken;
    REQUIRE(table.reserve(taken));
    table.unreserve(taken);
    Table::Slot again;
    REQUIRE(table.reserve(again));
    CHECK(&again.value() == &taken.value());
    again.value().v = 7;
    const std::uint64_t next = table.publish(again);
    CHECK(table.find(next)->v == 7);
    CHECK(table.erase(next));
}

TEST_CASE("stale, zero and forged keys are refused, never dereferenced") {
    static constinit HandleTable<TableValue<2>> table;
    const std::uint64_t key = table.insert(TableValue<2>{5});
    REQUIRE(key != 0);
    CHECK(table.erase(key));
    // The entry is reused with the next generation: the old key stays refused.
    const std::uint64_t reused = table.insert(TableValue<2>{6});
    CHECK(handle_index_of(reused) == handle_index_of(key));
    CHECK(handle_generation_of(reused) == handle_generation_of(key) + 1);
    CHECK(table.find(key) == nullptr);
    CHECK(table.find(reused)->v == 6);
    CHECK(table.find(0) == nullptr);                                  // a zeroed descriptor
    CHECK(table.find(reused & 0xFFFFFFFFu) == nullptr);               // generation 0: never issued
    CHECK(table.find(reused + (std::uint64_t{7} << 32)) == nullptr);  // a future generation
    CHECK(table.find(reused + 1) == nullptr);                         // a neighbour never inserted
    CHECK(table.find((std::uint64_t{1} << 32) | 3000) == nullptr);    // a chunk never allocated
    CHECK(table.find(0xFFFFFFFFull) == nullptr);                      // past the last chunk
    CHECK(table.find(~0ull) == nullptr);
    CHECK_FALSE(table.erase(~0ull));
    CHECK(table.erase(reused));
}

TEST_CASE("erase releases what the value holds; a memory descriptor's pool reference is dropped") {
    static constinit HandleTable<std::shared_ptr<int>> table;
    auto held = std::make_shared<int>(3);
    const std::uint64_t key = table.insert(std::shared_ptr<int>(held));
    CHECK(held.use_count() == 2);
    CHECK(table.erase(key));
    CHECK(held.use_count() == 1);

    // MemoryRef: only its pool reference holds anything (drop_value, c_api_handles.hpp).
    // The library's own table: the only one of its type.
    HandleTable<MemoryRef>& memory = g_memory_table;
    MemoryRef ref;
    ref.pool.identity = std::make_shared<const PoolIdentity>();
    ref.id = 9;
    std::weak_ptr<const PoolIdentity> watch = ref.pool.identity;
    const std::uint64_t mkey = memory.insert(std::move(ref));
    CHECK_FALSE(watch.expired());
    HandleTable<MemoryRef>::Found found = memory.lookup(mkey);
    REQUIRE(found);
    MemoryRef* value = found.value();
    memory.erase(found);
    CHECK(watch.expired());
    CHECK_FALSE(value->pool.valid());  // what the next insert relies on (fill_allocated)
}

TEST_CASE("many keys at once are distinct, found, and erased in any order") {
    static constinit HandleTable<std::uint64_t> table;
    std::vector<std::uint64_t> keys;
    std::set<std::uint64_t> seen;
    for (std::uint64_t i = 0; i < 5000; ++i) {  // several chunks
        keys.push_back(table.insert(std::uint64_t{i}));
        REQUIRE(keys.back() != 0);
        CHECK(seen.insert(keys.back()).second);
    }
    for (std::size_t i = 0; i < keys.size(); ++i) CHECK(*table.find(keys[i]) == i);
    for (std::size_t i = 0; i < keys.size(); i += 2) CHECK(table.erase(keys[i]));
    for (std::size_t i = 0; i < keys.size(); ++i) CHECK((table.find(keys[i]) != nullptr) == (i % 2 == 1));
    for (std::size_t i = 1; i < keys.size(); i += 2) CHECK(table.erase(keys[i]));
}

TEST_CASE("a thread's free entries go back to the table when it exits") {
    static constinit HandleTable<TableValue<5>> table;
    // The thread takes two stash refills' worth of entries, uses some, frees them all and
    // exits. Without the exit hook its stash would be lost, and the entries reserved
    // below would be new ones (indices past those the thread took).
    std::uint32_t highest = 0;
    std::thread worker([&] {
        std::vector<std::uint64_t> keys;
        for (int i = 0; i < 20; ++i) keys.push_back(table.insert(TableValue<5>{i}));
        for (std::uint64_t key : keys) {
            highest = std::max(highest, handle_index_of(key));
            REQUIRE(table.erase(key));
        }
    });
    worker.join();
    std::vector<std::uint64_t> keys;
    for (std::uint32_t i = 0; i <= highest; ++i) {
        keys.push_back(table.insert(TableValue<5>{1}));
        const std::uint32_t index = handle_index_of(keys.back());
        CHECK_MESSAGE(index <= highest, "entry " << index << " is new: the exited thread's were lost");
    }
    for (std::uint64_t key : keys) CHECK(table.erase(key));
}

TEST_SUITE_END();
