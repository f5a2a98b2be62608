// dm_child command of tests/robust's crash, blocking and stopped_holder suites: dying
// while holding the pool lock at a chosen point.
// Output: one line per event ("holding", "dying", "FAIL ...").
//
//   crash-point NAME MODE [ID]
//        maps /dev/shm/dragonmem.NAME itself, takes the pool lock with the library's own
//        lock code (lib/pool/robust_lock.hpp) and dies by SIGKILL at a chosen point:
//          hold       right after taking the lock
//          retire ID  after the commit point of a free (record id stored 0), before the
//                     heap, slot stack, counters and wake-up are updated
//          scribble   after writing garbage over the heap's lists and counters
//          take-block after unlinking a free block from its list (a half-done alloc)
//          sleep      prints "holding" and sleeps holding the lock (killed by the test)
//          stop       prints "holding" and stops itself (SIGSTOP) holding the lock: alive,
//                     never taken over; once continued (SIGCONT) it releases the lock,
//                     prints "released" and exits 0
#include "commands.hpp"

#include "shm_names.hpp"

#include "pool/pool_layout.hpp"
#include "pool/robust_lock.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>

namespace dmchild {

int cmd_crash_point(int argc, char** argv) {
    using namespace dragonmem::detail;
    if (argc < 4) return 2;
    const std::string path = dmtest::shm_path(argv[2]);
    std::string mode = argv[3];
    int fd = ::open(path.c_str(), O_RDWR);
    if (fd < 0) {
        say("FAIL open " + path + ": " + std::strerror(errno));
        return 3;
    }
    struct stat st {};
    ::fstat(fd, &st);
    void* base = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) {
        say("FAIL mmap");
        return 3;
    }
    auto* header = static_cast<PoolHeader*>(base);
    auto* records = reinterpret_cast<ManifestRecord*>(static_cast<std::uint8_t*>(base) + header->manifest_offset);
    auto* heap = static_cast<std::uint8_t*>(base) + header->heap_offset;
    owner_lock_acquire(header->lock);
    if (mode == "hold") {
        // nothing more
    } else if (mode == "retire" && argc > 4) {
        std::uint64_t id = std::strtoull(argv[4], nullptr, 10);
        std::uint64_t slot = id & ((std::uint64_t{1} << header->id_slot_bits) - 1);
        if (records[slot].id.load() != id) {
            say("FAIL id " + std::to_string(id) + " is not live");
            owner_lock_release(header->lock);
            return 3;
        }
        records[slot].id.store(0, std::memory_order_release);  // the free's commit point
    } else if (mode == "scribble") {
        std::uint64_t junk = 0x0123456789ABCDEFULL;
        auto* state = reinterpret_cast<std::uint64_t*>(&heap_state_at(base));
        std::size_t words = offsetof(HeapState, tag_secret) / sizeof(std::uint64_t);
        for (std::size_t i = 0; i < words; ++i) {
            junk = junk * 6364136223846793005ULL + 1442695040888963407ULL;
            state[i] = junk;
        }
        header->live_count = 12345;
        header->slot_free_head = 777777;
    } else if (mode == "take-block") {
        // Unlink the head of the largest non-empty free list, as an alloc does before it
        // splits and publishes; die before anything else.
        HeapState& state = heap_state_at(base);
        if (state.fl_mask == 0) {
            say("FAIL no free block to take");
            owner_lock_release(header->lock);
            return 3;
        }
        unsigned fl = 63 - static_cast<unsigned>(__builtin_clzll(state.fl_mask));
        unsigned list = fl * k_heap_sl_count + 31 - static_cast<unsigned>(__builtin_clz(state.sl_mask[fl]));
        std::uint64_t offset = state.free_head[list];
        auto* block = reinterpret_cast<FreeBlockHeader*>(heap + offset);
        state.free_head[list] = block->next;
        block->tag = 0;
    } else if (mode == "stop") {
        say("holding");
        ::raise(SIGSTOP);
        owner_lock_release(header->lock);
        say("released");
        return 0;
    } else if (mode == "sleep") {
        say("holding");
        std::this_thread::sleep_for(std::chrono::seconds(60));
        owner_lock_release(header->lock);
        return 0;
    } else {
        owner_lock_release(header->lock);
        return 2;
    }
    say("dying");
    ::raise(SIGKILL);
    return 0;
}

}  // namespace dmchild
