// libFuzzer target: attach, check and allocate on a pool whose header page was
// overwritten by the fuzz input. A real pool is created once; for each input its shm
// object is restored to the pristine bytes, the input is written over the header page
// (the first min(size, 4096) bytes), and then, in this order:
//   1. Pool::attach(descriptor): a refusal must be INVALID_ARGUMENT / OBJECT_DESTROYED /
//      MEMORY_ERRNO with a message;
//   2. an accepted header must describe a heap that lies inside the object (the contract
//      of PoolMapping::open's validation; checked here from the bytes written, with no
//      arithmetic that can wrap);
//   3. check() must not crash; when it passes, alloc + free must work and check() must
//      still pass afterwards.
// A few header fields are not taken from the input, because explicit bad-input rows
// (tests/robust/BAD_INPUTS.md) walk them instead: the pool name and instance number
// (rows F4: the object would just be "another pool"); the creator's PID namespace (row
// F4 "another PID namespace": refused as INVALID_OPERATION; and the corpus was made on
// another machine, whose namespace would refuse every seed); and two KNOWN BUGS, masked so the
// fuzzer keeps looking for new ones (remove the masks once they are fixed): a lock owner
// word with a zero start stamp, a zero tid or a tid >= 2^31 (row F7: the first caller
// then waits forever for an owner it believes alive), and a `ready`
// word that is not READY under a valid magic (row F4 "ready flag": attach reports
// success with an empty descriptor and the next attach crashes). A zero magic is made
// non-zero too: attach waits up to 1 s for a creator to finish such a header (row F2), which
// would make each of those inputs 10000 times slower than the rest. Everything else is
// fuzzed.
#include <dragon/managed_memory.h>
#include <dragonmem/dragonmem.hpp>

#include "pool/pool_backing.hpp"
#include "pool/pool_layout.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace dragonmem::detail;

namespace {

std::string g_name;
std::string g_path;
std::vector<std::uint8_t> g_pristine;
std::vector<std::uint8_t> g_serial;

void remove_pool() {
    if (!g_path.empty()) ::unlink(g_path.c_str());
}

void write_object(const std::vector<std::uint8_t>& bytes) {
    int fd = ::open(g_path.c_str(), O_RDWR);
    if (fd < 0) __builtin_trap();
    if (::pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) __builtin_trap();
    ::close(fd);
}

// The header rules attach must enforce, from the bytes we wrote (no wrapping sums).
bool header_describes_a_heap_inside_the_object(const PoolHeader& h, std::uint64_t object_bytes) {
    if (h.heap_offset > object_bytes || h.heap_bytes > object_bytes) return false;
    if (object_bytes - h.heap_offset != h.heap_bytes) return false;
    if (h.manifest_offset > h.heap_offset) return false;
    if (h.manifest_capacity > (h.heap_offset - h.manifest_offset) / sizeof(ManifestRecord)) return false;
    if (h.max_block_order >= 64 || (std::uint64_t{1} << h.max_block_order) != h.heap_bytes) return false;
    // The free map lies between the manifest and the heap, one bit per heap granule (64 B,
    // or the minimum block when that is larger).
    if (h.free_map_offset < h.manifest_offset || h.free_map_offset > h.heap_offset) return false;
    if (h.heap_offset - h.free_map_offset != h.free_map_bytes) return false;
    if (h.manifest_capacity > (h.free_map_offset - h.manifest_offset) / sizeof(ManifestRecord)) return false;
    if (h.min_block_order >= 64 ||
        h.free_map_bytes < ((h.heap_bytes >> granule_order_of(h.min_block_order)) + 7) / 8)
        return false;
    return true;
}

}  // namespace

// Removes the pools of earlier runs that died (a crash or a timeout skips atexit).
static void remove_stale_pools() {
    DIR* dir = ::opendir("/dev/shm");
    if (dir == nullptr) return;
    const std::string prefix = "dragonmem.dmfuzz";
    while (dirent* entry = ::readdir(dir)) {
        std::string file = entry->d_name;
        if (file.rfind(prefix, 0) != 0) continue;
        long pid = std::strtol(file.c_str() + prefix.size(), nullptr, 10);
        if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) ::unlink(("/dev/shm/" + file).c_str());
    }
    ::closedir(dir);
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    remove_stale_pools();
    g_name = "dmfuzz" + std::to_string(::getpid());
    g_path = "/dev/shm/dragonmem." + g_name;
    remove_pool();
    std::atexit(remove_pool);
    {
        // Same shape as the corpus's header seeds (make_corpus.cpp): 64 KiB, defaults.
        dragonmem::Pool pool = dragonmem::Pool::create(g_name, 64 * 1024, 3);
        dragonmem::Memory a = pool.alloc(1000, 1);
        dragonmem::Memory b = pool.alloc(5000, 2);
        dragonmem::Memory c = pool.alloc(64, 3);
        b.free();
        g_serial = pool.serialize();
    }  // handles dropped: the pool stays, unmapped by this process
    int fd = ::open(g_path.c_str(), O_RDONLY);
    struct stat st {};
    ::fstat(fd, &st);
    g_pristine.resize(static_cast<std::size_t>(st.st_size));
    if (::pread(fd, g_pristine.data(), g_pristine.size(), 0) != static_cast<ssize_t>(g_pristine.size())) __builtin_trap();
    ::close(fd);
    if (const char* dir = std::getenv("DMFUZZ_WRITE_SEED")) {
        // Writes the pristine header page as a seed (tests/fuzz/corpus/attach_header).
        std::string path = std::string(dir) + "/pristine_header";
        FILE* f = std::fopen(path.c_str(), "wb");
        if (f != nullptr) {
            std::fwrite(g_pristine.data(), 1, k_page_bytes, f);
            std::fclose(f);
        }
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::uint8_t> object = g_pristine;
    std::size_t n = size < k_page_bytes ? size : k_page_bytes;
    std::memcpy(object.data(), data, n);
    auto* h = reinterpret_cast<PoolHeader*>(object.data());
    const auto* pristine = reinterpret_cast<const PoolHeader*>(g_pristine.data());
    std::memcpy(h->name, pristine->name, sizeof h->name);
    h->nonce = pristine->nonce;
    h->creator.pid_ns = pristine->creator.pid_ns;
    std::uint64_t word = h->lock.word.load();
    std::uint32_t owner_tid = static_cast<std::uint32_t>(word), owner_stamp = static_cast<std::uint32_t>(word >> 32);
    if (word != 0 && (owner_stamp == 0 || owner_tid == 0 || owner_tid >= 0x80000000u)) h->lock.word.store(0);  // row F7
    if (h->magic.load() == k_pool_magic) h->ready.store(k_pool_ready);          // row F4 "ready flag"
    if (h->magic.load() == 0) h->magic.store(1);                                // row F2
    write_object(object);

    dragonmem::Pool pool;
    try {
        pool = dragonmem::Pool::attach(g_serial);
    } catch (const dragonmem::Error& e) {
        dragonError_t code = e.code();
        if (code != DRAGON_INVALID_ARGUMENT && code != DRAGON_OBJECT_DESTROYED && code != DRAGON_MEMORY_ERRNO)
            __builtin_trap();
        if (std::strlen(e.what()) == 0) __builtin_trap();
        return 0;
    }
    if (!header_describes_a_heap_inside_the_object(*h, object.size())) {
        std::fprintf(stderr, "attach accepted a header whose heap is not inside the object: heap_offset %llu, "
                             "heap_bytes %llu, max order %u, manifest offset %llu x %llu, object %zu B\n",
                     static_cast<unsigned long long>(h->heap_offset), static_cast<unsigned long long>(h->heap_bytes),
                     h->max_block_order, static_cast<unsigned long long>(h->manifest_offset),
                     static_cast<unsigned long long>(h->manifest_capacity), object.size());
        __builtin_trap();
    }
    try {
        dragonmem::CheckReport report = pool.check();
        if (report.ok) {
            dragonmem::Memory m = pool.alloc(64, 9);
            std::memset(m.pointer(), 0xAB, 64);
            m.free();
            if (!pool.check().ok) __builtin_trap();
            for (const auto& info : pool.allocations()) pool.from_id(info.id).free();
            if (!pool.check().ok) __builtin_trap();
        }
    } catch (const dragonmem::Error& e) {
        // A refusal on a sound-looking pool (full, destroyed) is fine; a crash is not.
        if (std::strlen(e.what()) == 0) __builtin_trap();
    }
    return 0;
}
