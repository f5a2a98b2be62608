// numa_node: a pool's pages are bound to the node asked for (mbind before any page gets
// memory); -1 is no preference; a node that is not online is a clear error and creates
// nothing. Placement is checked with move_pages(2) (status = the node of each page) and
// /proc/self/numa_maps (the mapping's policy), raw syscalls, no libnuma.
#include "testing.hpp"

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

using namespace dmtest;

namespace {

// The node of each page of [p, p + bytes), by move_pages with no target nodes; a
// negative entry is -errno (e.g. -ENOENT for a page not present).
std::vector<int> page_nodes(void* p, std::size_t bytes) {
    const std::size_t page = 4096;
    std::vector<void*> pages;
    for (std::size_t off = 0; off < bytes; off += page) pages.push_back(static_cast<char*>(p) + off);
    std::vector<int> status(pages.size(), -1);
    const long rc = ::syscall(SYS_move_pages, 0, pages.size(), pages.data(), nullptr, status.data(), 0);
    REQUIRE_MESSAGE(rc == 0, "move_pages failed: errno " << errno);
    return status;
}

// The /proc/self/numa_maps line of the mapping holding `p`.
std::string numa_maps_line(const void* p) {
    std::ifstream in("/proc/self/numa_maps");
    std::string line;
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    std::string best;
    std::uintptr_t best_start = 0;
    while (std::getline(in, line)) {
        const std::uintptr_t start = std::stoull(line.substr(0, line.find(' ')), nullptr, 16);
        if (start <= addr && start >= best_start) {
            best_start = start;
            best = line;
        }
    }
    return best;
}

std::string online_nodes() {
    std::ifstream in("/sys/devices/system/node/online");
    std::string text;
    std::getline(in, text);
    return text;
}

}  // namespace

TEST_SUITE_BEGIN("numa");

TEST_CASE("numa_node 0: every page of the pool's allocations is on node 0, by policy") {
    dragonMemoryPoolAttr_t attr = default_attr();
    attr.numa_node = 0;
    TestPool pool(1 << 20, &attr);
    dragonMemoryPoolAttr_t got{};
    DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
    CHECK(got.numa_node == 0);
    dragon_memory_attr_destroy(&got);

    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 256 * 1024));
    void* p = mem_pointer(&mem);
    std::memset(p, 0x5a, 256 * 1024);  // give the pages memory
    for (int node : page_nodes(p, 256 * 1024)) CHECK(node == 0);
    const std::string line = numa_maps_line(p);
    INFO("numa_maps: " << line);
    CHECK(line.find("bind:0") != std::string::npos);

    dragonmem::Pool cxx = dragonmem::Pool::attach_local(pool.name());
    CHECK(cxx.attributes().numa_node == 0);
}

TEST_CASE("numa_node -1 (attr_init's default) sets no policy") {
    dragonMemoryPoolAttr_t attr = default_attr();
    TestPool pool(1 << 20, &attr);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 8192));
    void* p = mem_pointer(&mem);
    std::memset(p, 1, 8192);
    const std::string line = numa_maps_line(p);
    INFO("numa_maps: " << line);
    CHECK(line.find("bind:") == std::string::npos);
    dragonMemoryPoolAttr_t got{};
    DM_REQUIRE_OK(dragon_memory_get_attr(pool.pd(), &got));
    CHECK(got.numa_node == -1);
    dragon_memory_attr_destroy(&got);
}

TEST_CASE("a node that is not online is a clear error naming it, and nothing is created") {
    const std::string online = online_nodes();
    if (online != "0") {
        MESSAGE("SKIP: this host has NUMA nodes " << online << "; the test needs exactly node 0");
        return;
    }
    for (int node : {1, 7, -2}) {
        ShmGuard guard(unique_pool_name());
        dragonMemoryPoolAttr_t attr = default_attr();
        attr.numa_node = node;
        dragonMemoryPoolDescr_t pool{};
        DM_CHECK_RC(dragon_memory_pool_create(&pool, 1 << 20, guard.name().c_str(), 1, &attr), DRAGON_INVALID_ARGUMENT);
        const std::string msg = last_error();
        DM_CHECK_CONTAINS(msg, "NUMA node " + std::to_string(node) + " is not online");
        DM_CHECK_CONTAINS(msg, "online nodes: 0");
        struct stat st {};
        CHECK(::stat(("/dev/shm/dragonmem." + guard.name()).c_str(), &st) != 0);
    }
    dragonmem::PoolOptions options;
    options.numa_node = 1;
    ShmGuard guard(unique_pool_name());
    DM_CHECK_THROWS_CODE(dragonmem::Pool::create(guard.name(), 1 << 20, 0, options), DRAGON_INVALID_ARGUMENT, msg);
}

TEST_SUITE_END();
