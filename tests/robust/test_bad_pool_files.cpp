// Bad-input matrix, pool-file rows (BAD_INPUTS.md, rows F*): what attach does with a
// /dev/shm/dragonmem.NAME that is not a sound pool — wrong size, zeroed or garbage
// header, a foreign file with a dragonmem-like name, an inconsistent header, a directory
// or symlink in its place, a destroyed pool, a lock word naming a live stranger, garbage
// in the heap state. Each attempt runs in a forked child, so a crash or a hang is
// reported as a failed row instead of ending the run. (No-permission rows are in
// test_permissions.cpp: they need another user.)
#include "shm_view.hpp"
#include "testing.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;
using namespace dragonmem::detail;

TEST_SUITE_BEGIN("bad_pool_files");

namespace {

// A pool that exists in /dev/shm but is not mapped by this process (so attach really
// opens and validates the object), with a live allocation; removed at scope exit.
struct DetachedPool {
    ShmGuard guard;
    std::vector<std::uint8_t> serial;
    std::vector<std::uint8_t> pristine;  // the whole object as created
    explicit DetachedPool(std::size_t bytes = 64 * 1024) : guard(unique_pool_name("pf")) {
        Pool p = Pool::create(guard.name(), bytes);
        Memory m = p.alloc(1000, 5);
        std::memset(m.pointer(), 0x77, 1000);
        serial = p.serialize();
        ShmView view(guard.name(), false);
        pristine.assign(view.base(), view.base() + view.bytes());
    }  // the handle is dropped: detached, the object stays
    const std::string& name() const { return guard.name(); }
};

struct AttachOutcome {
    Isolated run;
    int rc = -1;
    int rc2 = -1;
    std::string msg;
};

// Attaches (by descriptor when given, else by name) in a forked child, twice (a first
// attempt must not poison the second); after a success, check()s and allocates and frees
// 64 B when `use` is set. Reports "rc=N rc2=N valid=0|1 check=ok|problems alloc=N msg=...".
AttachOutcome attach_isolated(const std::string& name, const std::vector<std::uint8_t>* serial, bool use,
                              int timeout_ms = 10000) {
    AttachOutcome out;
    out.run = run_isolated(
        [&]() -> std::string {
            auto attempt = [&](Pool& pool, std::string& msg) {
                try {
                    pool = serial != nullptr ? Pool::attach(*serial) : Pool::attach_local(name);
                    return DRAGON_SUCCESS;
                } catch (const dragonmem::Error& e) {
                    msg = e.what();
                    return e.code();
                }
            };
            std::string msg, msg2;
            Pool pool;
            dragonError_t rc = attempt(pool, msg);
            std::string verdict = "rc=" + std::to_string(static_cast<int>(rc));
            bool valid = rc == DRAGON_SUCCESS && pool.valid();
            if (rc == DRAGON_SUCCESS) verdict += std::string(" valid=") + (valid ? "1" : "0");
            if (valid && use) {
                try {
                    auto report = pool.check();
                    verdict += std::string(" check=") + (report.ok ? "ok" : "problems");
                    if (!report.ok) msg = report.problems.front();
                    Memory m = pool.alloc(64);
                    m.free();
                    verdict += " alloc=0";
                } catch (const dragonmem::Error& e) {
                    verdict += " alloc=" + std::to_string(static_cast<int>(e.code()));
                }
            }
            Pool second;
            dragonError_t rc2 = attempt(second, msg2);
            verdict += " rc2=" + std::to_string(static_cast<int>(rc2));
            return verdict + " msg=" + msg;
        },
        timeout_ms);
    if (out.run.completed) {
        out.rc = std::stoi(field(out.run.text, "rc"));
        out.rc2 = std::stoi(field(out.run.text, "rc2"));
        out.msg = field(out.run.text, "msg");
    }
    return out;
}

void expect_refused(const AttachOutcome& o, dragonError_t expected, const std::string& row,
                    const std::string& needle = "") {
    count_bad_inputs();
    CHECK_MESSAGE(o.run.completed, row << ": " << o.run.text);
    if (!o.run.completed) return;
    CHECK_MESSAGE(o.rc == expected, row << ": attach returned " << toString(static_cast<dragonError_t>(o.rc))
                                        << " (expected " << toString(expected) << "): " << o.msg);
    CHECK_MESSAGE(o.rc2 == expected, row << ": a second attach returned "
                                         << toString(static_cast<dragonError_t>(o.rc2)) << " (" << o.run.text << ")");
    if (o.rc == DRAGON_SUCCESS)
        CHECK_MESSAGE(field(o.run.text, "valid") == "1", row << ": attach succeeded with an empty descriptor");
    CHECK_MESSAGE(!o.msg.empty(), row << ": no message");
    if (!needle.empty())
        CHECK_MESSAGE(o.msg.find(needle) != std::string::npos, row << ": message lacks '" << needle << "': " << o.msg);
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes, mode_t mode = 0600) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, mode);
    REQUIRE(fd >= 0);
    if (!bytes.empty()) REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

}  // namespace

TEST_CASE("F1: shm object of the wrong size (grown, shrunk, shorter than a header, empty)") {
    for (long delta : {4096L, 1L, -4096L, -60000L}) {
        DetachedPool dp;
        REQUIRE(::truncate(shm_path(dp.name()).c_str(), static_cast<off_t>(dp.pristine.size()) + delta) == 0);
        const std::string row = "F1 object resized by " + std::to_string(delta) + " B";
        expect_refused(attach_isolated(dp.name(), &dp.serial, true), DRAGON_INVALID_ARGUMENT, row + " (descriptor)");
        expect_refused(attach_isolated(dp.name(), nullptr, true), DRAGON_INVALID_ARGUMENT, row + " (by name)");
    }
    for (off_t size : {0L, 100L, 4095L}) {
        DetachedPool dp;
        REQUIRE(::truncate(shm_path(dp.name()).c_str(), size) == 0);
        expect_refused(attach_isolated(dp.name(), &dp.serial, true), DRAGON_INVALID_ARGUMENT,
                       "F1 object truncated to " + std::to_string(size) + " B");
    }
}

TEST_CASE("F2: zeroed header (a creator killed before it wrote the header)") {
    DetachedPool dp;
    {
        ShmView view(dp.name(), true);
        REQUIRE(view.ok());
        std::memset(view.base(), 0, k_page_bytes);
    }
    double t0 = now_ms();
    expect_refused(attach_isolated(dp.name(), &dp.serial, true), DRAGON_INVALID_ARGUMENT, "F2 zeroed header",
                   "not an initialised");
    MESSAGE("attach of a zeroed header gave up after " << now_ms() - t0 << " ms");
    expect_refused(attach_isolated(dp.name(), nullptr, true), DRAGON_INVALID_ARGUMENT, "F2 zeroed header (by name)");
}

TEST_CASE("F3: a foreign file with a dragonmem-like name holding garbage") {
    const std::string name = unique_pool_name("foo");
    ShmGuard guard(name);
    std::vector<std::uint8_t> garbage(64 * 1024);
    std::uint64_t x = 0x2545F4914F6CDD1DULL;
    for (auto& b : garbage) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b = static_cast<std::uint8_t>(x);
    }
    write_file(shm_path(name), garbage);
    expect_refused(attach_isolated(name, nullptr, true), DRAGON_INVALID_ARGUMENT, "F3 64 KiB of garbage", "magic");
    // A descriptor that names it (as if forged for this host).
    {
        DetachedPool dp;  // borrow a real descriptor and point it at the foreign file
        std::vector<std::uint8_t> forged(dp.serial.begin(), dp.serial.begin() + 58);
        forged[57] = static_cast<std::uint8_t>(name.size());
        for (char c : name) forged.push_back(static_cast<std::uint8_t>(c));  // (insert: a GCC 12 -Warray-bounds false positive)
        reseal(forged);
        expect_refused(attach_isolated(name, &forged, true), DRAGON_INVALID_ARGUMENT, "F3 garbage, by descriptor");
    }
    // Small garbage, text, and a file of the right size whose magic alone is right.
    write_file(shm_path(name), std::vector<std::uint8_t>(100, 0xAB));
    expect_refused(attach_isolated(name, nullptr, true), DRAGON_INVALID_ARGUMENT, "F3 100 B of garbage");
    std::string text = "this is not a pool\n";
    write_file(shm_path(name), std::vector<std::uint8_t>(text.begin(), text.end()));
    expect_refused(attach_isolated(name, nullptr, true), DRAGON_INVALID_ARGUMENT, "F3 a text file");
    std::vector<std::uint8_t> magic_only(64 * 1024, 0);
    std::memcpy(magic_only.data(), &k_pool_magic, 8);
    write_file(shm_path(name), magic_only);
    expect_refused(attach_isolated(name, nullptr, true), DRAGON_INVALID_ARGUMENT, "F3 right magic, zeros after it");
}

TEST_CASE("F4: a valid header with one field wrong") {
    struct Edit {
        const char* row;
        void (*apply)(PoolHeader&);
        dragonError_t expected;
    };
    const std::vector<Edit> edits = {
        {"F4 wrong magic", [](PoolHeader& h) { h.magic.store(0x1122334455667788ULL); }, DRAGON_INVALID_ARGUMENT},
        {"F4 layout version + 1", [](PoolHeader& h) { h.layout_version = k_layout_version + 1; }, DRAGON_INVALID_ARGUMENT},
        {"F4 layout version 0", [](PoolHeader& h) { h.layout_version = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 layout version 1 (before thread caches)", [](PoolHeader& h) { h.layout_version = 1; }, DRAGON_INVALID_ARGUMENT},
        {"F4 layout version 2 (32 B records, record size not recorded, lock with a separate sleepers flag)",
         [](PoolHeader& h) { h.layout_version = 2; }, DRAGON_INVALID_ARGUMENT},
        {"F4 layout version 3 (development only: the free map and waiters bit without the backing map, or the reverse)",
         [](PoolHeader& h) { h.layout_version = 3; }, DRAGON_INVALID_ARGUMENT},
        {"F4 layout version 4 (before per-thread id blocks)", [](PoolHeader& h) { h.layout_version = 4; },
         DRAGON_INVALID_ARGUMENT},
        {"F4 layout version 5 (before the NUMA node, hugepage heap files and process-local owners)",
         [](PoolHeader& h) { h.layout_version = 5; }, DRAGON_INVALID_ARGUMENT},
        {"F4 mem_type HUGEPAGE on a shm pool (its heap is in the object, not in a file)",
         [](PoolHeader& h) { h.mem_type = DRAGON_MEMORY_TYPE_HUGEPAGE; }, DRAGON_INVALID_ARGUMENT},
        {"F4 free map offset 0", [](PoolHeader& h) { h.free_map_offset = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 free map offset inside the manifest", [](PoolHeader& h) { h.free_map_offset -= k_page_bytes; },
         DRAGON_INVALID_ARGUMENT},
        {"F4 free map size - 4096", [](PoolHeader& h) { h.free_map_bytes -= k_page_bytes; }, DRAGON_INVALID_ARGUMENT},
        {"F4 free map size 0", [](PoolHeader& h) { h.free_map_bytes = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 free map and heap offset moved together into the manifest",
         [](PoolHeader& h) {
             h.free_map_offset -= k_page_bytes;
             h.heap_offset -= k_page_bytes;
         },
         DRAGON_INVALID_ARGUMENT},
        {"F4 heap offset at the free map (no room for it)", [](PoolHeader& h) { h.heap_offset = h.free_map_offset; },
         DRAGON_INVALID_ARGUMENT},
        {"F4 manifest record size 32", [](PoolHeader& h) { h.record_bytes = 32; }, DRAGON_INVALID_ARGUMENT},
        {"F4 manifest record size 0", [](PoolHeader& h) { h.record_bytes = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 backing directory offset 0", [](PoolHeader& h) { h.backing_dir_offset = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 backing map offset 0", [](PoolHeader& h) { h.backing_map_offset = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 backing map size", [](PoolHeader& h) { h.backing_map_bytes += k_page_bytes; }, DRAGON_INVALID_ARGUMENT},
        {"F4 process table offset", [](PoolHeader& h) { h.procs_offset += k_page_bytes; }, DRAGON_INVALID_ARGUMENT},
        {"F4 process table size", [](PoolHeader& h) { h.procs_bytes = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 heap chunk shift", [](PoolHeader& h) { h.heap_chunk_shift += 1; }, DRAGON_INVALID_ARGUMENT},
        {"F4 heap offset 0 (before the manifest)", [](PoolHeader& h) { h.heap_offset = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 creator in another PID namespace", [](PoolHeader& h) { h.creator.pid_ns += 1; }, DRAGON_INVALID_OPERATION},
        {"F4 id counter 2^64-1 (the next id would wrap to 0, the zero-byte id)",
         [](PoolHeader& h) { h.id_counter.store(~std::uint64_t{0}); }, DRAGON_INVALID_ARGUMENT},
        {"F4 id counter 2^63", [](PoolHeader& h) { h.id_counter.store(std::uint64_t{1} << 63); },
         DRAGON_INVALID_ARGUMENT},
        {"F4 header size", [](PoolHeader& h) { h.header_bytes += 8; }, DRAGON_INVALID_ARGUMENT},
        {"F4 total size", [](PoolHeader& h) { h.total_bytes += 4096; }, DRAGON_INVALID_ARGUMENT},
        {"F4 min block order 0", [](PoolHeader& h) { h.min_block_order = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 min > max block order", [](PoolHeader& h) { h.min_block_order = h.max_block_order + 1; },
         DRAGON_INVALID_ARGUMENT},
        {"F4 max block order 63", [](PoolHeader& h) { h.max_block_order = 63; }, DRAGON_INVALID_ARGUMENT},
        {"F4 heap size not 2^max", [](PoolHeader& h) { h.heap_bytes += 1; }, DRAGON_INVALID_ARGUMENT},
        {"F4 manifest capacity 0", [](PoolHeader& h) { h.manifest_capacity = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 manifest capacity huge", [](PoolHeader& h) { h.manifest_capacity = 1ULL << 40; }, DRAGON_INVALID_ARGUMENT},
        {"F4 slot bits", [](PoolHeader& h) { h.id_slot_bits += 1; }, DRAGON_INVALID_ARGUMENT},
        {"F4 manifest offset", [](PoolHeader& h) { h.manifest_offset = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 heap offset inside the manifest", [](PoolHeader& h) { h.heap_offset = h.manifest_offset; },
         DRAGON_INVALID_ARGUMENT},
        {"F4 heap offset misaligned", [](PoolHeader& h) { h.heap_offset += 8; }, DRAGON_INVALID_ARGUMENT},
        {"F4 heap alignment 0", [](PoolHeader& h) { h.heap_alignment = 0; }, DRAGON_INVALID_ARGUMENT},
        {"F4 heap alignment 3", [](PoolHeader& h) { h.heap_alignment = 3; }, DRAGON_INVALID_ARGUMENT},
        {"F4 heap alignment 2^40", [](PoolHeader& h) { h.heap_alignment = 1ULL << 40; }, DRAGON_INVALID_ARGUMENT},
        {"F4 name of another pool", [](PoolHeader& h) { h.name[0] = h.name[0] == 'x' ? 'y' : 'x'; },
         DRAGON_INVALID_ARGUMENT},
        {"F4 name not terminated", [](PoolHeader& h) { std::memset(h.name, 'a', sizeof h.name); },
         DRAGON_INVALID_ARGUMENT},
        {"F4 instance number (nonce) changed", [](PoolHeader& h) { h.nonce ^= 1; }, DRAGON_OBJECT_DESTROYED},
        {"F4 destroyed flag set", [](PoolHeader& h) { h.destroyed.store(1); }, DRAGON_OBJECT_DESTROYED},
        {"F4 ready flag cleared under a valid magic", [](PoolHeader& h) { h.ready.store(0); }, DRAGON_INVALID_ARGUMENT},
        {"F4 ready flag garbage under a valid magic", [](PoolHeader& h) { h.ready.store(0xDEADBEEF); },
         DRAGON_INVALID_ARGUMENT},
    };
    for (const Edit& e : edits) {
        DetachedPool dp;
        {
            ShmView view(dp.name(), true);
            REQUIRE(view.ok());
            e.apply(*view.header());
        }
        expect_refused(attach_isolated(dp.name(), &dp.serial, true), e.expected, e.row);
    }
}

TEST_CASE("F5: a header consistent only modulo 2^64 (heap offset wraps around)") {
    // total = heap_offset + heap_bytes holds in 64-bit arithmetic with a heap far larger
    // than the object: attach must refuse it, not map a heap that is not there.
    DetachedPool dp;
    {
        ShmView view(dp.name(), true);
        REQUIRE(view.ok());
        PoolHeader& h = *view.header();
        h.max_block_order = 20;
        h.heap_bytes = 1ULL << 20;
        h.heap_offset = h.total_bytes - h.heap_bytes;  // wraps: ~2^64 - 1 MiB + total
    }
    AttachOutcome o = attach_isolated(dp.name(), &dp.serial, true);
    count_bad_inputs();
    CHECK_MESSAGE(o.run.completed, "F5: attach + check + alloc on a wrapped heap offset: " << o.run.text);
    if (o.run.completed)
        CHECK_MESSAGE(o.rc == DRAGON_INVALID_ARGUMENT, "F5: attach returned " << o.rc << " (" << o.run.text << ")");
}

TEST_CASE("F6: a directory, a symlink and a FIFO in the pool's place") {
    {
        const std::string name = unique_pool_name("dir");
        REQUIRE(::mkdir(shm_path(name).c_str(), 0700) == 0);
        AttachOutcome o = attach_isolated(name, nullptr, true);
        ::rmdir(shm_path(name).c_str());
        expect_refused(o, DRAGON_MEMORY_ERRNO, "F6 a directory");
    }
    {
        const std::string name = unique_pool_name("lnk");
        REQUIRE(::symlink("/etc/hostname", shm_path(name).c_str()) == 0);
        AttachOutcome o = attach_isolated(name, nullptr, true);
        ::unlink(shm_path(name).c_str());
        CHECK_MESSAGE((o.rc == DRAGON_MEMORY_ERRNO || o.rc == DRAGON_INVALID_ARGUMENT), o.run.text);
        expect_refused(o, static_cast<dragonError_t>(o.rc), "F6 a symlink to /etc/hostname");
    }
    {
        const std::string name = unique_pool_name("fifo");
        REQUIRE(::mkfifo(shm_path(name).c_str(), 0600) == 0);
        AttachOutcome o = attach_isolated(name, nullptr, true, 5000);
        ::unlink(shm_path(name).c_str());
        REQUIRE_MESSAGE(o.run.completed, "F6 a FIFO: " << o.run.text);
        CHECK_MESSAGE((o.rc == DRAGON_MEMORY_ERRNO || o.rc == DRAGON_INVALID_ARGUMENT), o.run.text);
        expect_refused(o, static_cast<dragonError_t>(o.rc), "F6 a FIFO");
    }
}

TEST_CASE("F7: the lock word names a live process that does not hold it (garbage owner word)") {
    // Corrupt lock words the dead-owner test cannot see through: tid 1 (alive) with a
    // zero stamp ("unknown", trusted), tid 0 and tids >= 2^31 (kill(2) on pid 0 or a
    // negative pid asks about process groups, which exist). Attach + check + alloc must
    // finish; a word naming a live task with the wrong stamp is already recognised as dead.
    for (std::uint64_t word : {std::uint64_t{1}, (std::uint64_t{12345} << 32) | 1u, std::uint64_t{1} << 32,
                               ~std::uint64_t{0}, (std::uint64_t{5} << 32) | 0x80000001u}) {
        DetachedPool dp;
        {
            ShmView view(dp.name(), true);
            REQUIRE(view.ok());
            view.header()->lock.word.store(word);
        }
        AttachOutcome o = attach_isolated(dp.name(), &dp.serial, true, 3000);
        count_bad_inputs();
        char hex[32];
        std::snprintf(hex, sizeof hex, "%#018llx", static_cast<unsigned long long>(word));
        CHECK_MESSAGE(o.run.completed, "F7 lock word " << hex << ": " << o.run.text);
        if (o.run.completed) CHECK_MESSAGE(field(o.run.text, "alloc") == "0", o.run.text);
    }
}

TEST_CASE("F8: garbage in the heap's lists and counters: check() reports it and nothing crashes") {
    int reported = 0, allocs_ok = 0, allocs_refused = 0, crashed = 0;
    const int trials = 40;
    for (int trial = 0; trial < trials; ++trial) {
        DetachedPool dp;
        {
            ShmView view(dp.name(), true);
            auto* words = reinterpret_cast<std::uint64_t*>(&heap_state_at(view.base()));
            std::uint64_t x = 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(trial + 1);
            for (int k = 0; k < 3; ++k) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                words[x % (offsetof(HeapState, tag_secret) / 8)] = trial % 2 ? x : (x % 65536) & ~63ULL;
            }
        }
        count_bad_inputs();
        // check() alone must not crash.
        Isolated c = run_isolated([&]() -> std::string {
            Pool p = Pool::attach(dp.serial);
            return p.check().ok ? "ok" : "problems";
        });
        REQUIRE_MESSAGE(c.completed, "F8 trial " << trial << ": check() on garbage heap state: " << c.text);
        if (c.text == "problems") ++reported;
        // What alloc does on a corrupt heap is reported, not required.
        AttachOutcome o = attach_isolated(dp.name(), &dp.serial, true);
        if (!o.run.completed)
            ++crashed;
        else if (field(o.run.text, "alloc") == "0")
            ++allocs_ok;
        else
            ++allocs_refused;
    }
    MESSAGE("F8: check() reported " << reported << "/" << trials << " corrupt heaps; alloc afterwards: " << allocs_ok
                                    << " ok, " << allocs_refused << " refused, " << crashed << " crashed or hung");
    CHECK(reported > trials / 2);
}

TEST_CASE("F10: backing state that is wrong but cannot fault: attach, check and alloc still work") {
    struct Edit {
        const char* row;
        void (*apply)(ShmView&);
        bool check_reports;  // check() must report a problem before the alloc repairs it
    };
    const std::vector<Edit> edits = {
        // Clamped to the manifest's capacity: nothing past the table is ever touched.
        {"F10 manifest backed extent 2^40",
         [](ShmView& v) { v.header()->manifest_backed.store(std::uint64_t{1} << 40); }, false},
        // Below the used extent: the records above it are not looked at (the allocation
        // there reads as gone) until the extent is backed again.
        {"F10 manifest backed extent 0", [](ShmView& v) { v.header()->manifest_backed.store(0); }, true},
        // No page marked backed: the free lists' headers are not read (a corrupt heap),
        // and the next allocation repairs it, backing what it writes.
        {"F10 backing directory cleared",
         [](ShmView& v) {
             auto* dir = reinterpret_cast<BitPage*>(v.base() + v.header()->backing_dir_offset);
             for (auto& word : dir->words) word.store(0);
         },
         true},
        {"F10 backing map cleared",
         [](ShmView& v) {
             auto* map = reinterpret_cast<BitPage*>(v.base() + v.header()->backing_map_offset);
             for (auto& word : map->words) word.store(0);
         },
         true},
    };
    for (const Edit& e : edits) {
        DetachedPool dp;
        {
            ShmView view(dp.name(), true);
            REQUIRE(view.ok());
            e.apply(view);
        }
        count_bad_inputs();
        AttachOutcome o = attach_isolated(dp.name(), &dp.serial, true);
        REQUIRE_MESSAGE(o.run.completed, e.row << ": " << o.run.text);
        CHECK_MESSAGE(o.rc == DRAGON_SUCCESS, e.row << ": " << o.run.text);
        CHECK_MESSAGE(field(o.run.text, "alloc") == "0", e.row << ": " << o.run.text);
        if (e.check_reports)
            CHECK_MESSAGE(field(o.run.text, "check") == "problems", e.row << ": " << o.run.text);
        else
            CHECK_MESSAGE(field(o.run.text, "check") == "ok", e.row << ": " << o.run.text);
    }
}

TEST_CASE("F11: an id counter damaged to 2^64-1 after attach: allocations are refused, never given id 0") {
    // Found by fuzz_attach_header: the counter's next value wrapped to 0, so an allocation
    // in slot 0 got id 0, which means "zero-byte allocation" (NULL pointer) everywhere.
    count_bad_inputs();
    ShmGuard guard(unique_pool_name("idc"));
    Pool pool = Pool::create(guard.name(), 64 * 1024);
    {
        ShmView view(guard.name(), true);
        REQUIRE(view.ok());
        view.header()->id_counter.store(~std::uint64_t{0});
    }
    for (int i = 0; i < 3; ++i) {  // the locked path, then (once a thread caches) the cached one
        try {
            Memory m = pool.alloc(64);
            CHECK_MESSAGE(m.id() != 0, "F11: allocation " << i << " got id 0");
            m.free();
        } catch (const dragonmem::Error& e) {
            CHECK_MESSAGE(e.code() == DRAGON_OUT_OF_SPACE, "F11: " << e.what());
            CHECK_MESSAGE(std::string(e.what()).find("id space") != std::string::npos, "F11: " << e.what());
        }
    }
    CHECK(pool.check().ok);
    pool.destroy();
}

TEST_SUITE_END();
