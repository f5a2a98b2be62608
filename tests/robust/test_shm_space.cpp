// A /dev/shm too small for the pool (issue 9 item 4; BAD_INPUTS.md rows S*). tmpfs gives
// a page its memory on first touch and a touch it cannot back is a SIGBUS: the library
// must back what it touches first and turn "no space" into errors, `create` must refuse
// what cannot fit and leave nothing behind, and a reserved pool must have all its memory.
//
// Each case runs in a forked child that has its own mount namespace with a small tmpfs
// mounted over /dev/shm (root only; elsewhere the case prints SKIP with the reason). The
// child makes the checks and reports one "ok ..."/"FAIL ..." line each; a SIGBUS kills
// it and fails the case. Objects in that tmpfs vanish with the namespace.
#include "shm_view.hpp"
#include "testing.hpp"

#include <dragonmem/c_extensions.h>

#include "os/shm_segment.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

using dragonmem::Memory;
using dragonmem::Pool;
using dragonmem::PoolOptions;
using namespace dmtest;

TEST_SUITE_BEGIN("shm_space");

namespace {

// The checks a child makes, one line each.
struct Verdict {
    std::string text;
    void check(bool ok, std::string what) {
        std::replace(what.begin(), what.end(), '\n', ' ');
        text += (ok ? "ok " : "FAIL ") + what + "\n";
    }
};

// Runs `fn` in a child with a tmpfs of `mib` MiB over /dev/shm, in a mount namespace of
// its own. Returns its verdict lines, "SKIP: why", or how it died.
Isolated in_small_shm(unsigned mib, const std::function<std::string()>& fn, int timeout_ms = 60000) {
    return run_isolated(
        [&]() -> std::string {
            auto skip = [](const char* what) { return std::string("SKIP: ") + what + ": " + std::strerror(errno); };
            if (::unshare(CLONE_NEWNS) != 0) return skip("unshare(CLONE_NEWNS) (needs root)");
            if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return skip("making / private");
            std::string options = "size=" + std::to_string(mib) + "m,mode=1777";
            if (::mount("dmtest", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
                return skip("mounting a tmpfs over /dev/shm");
            return fn();
        },
        timeout_ms);
}

// Walks the child's verdict in the parent: every line must be "ok ...".
void expect_verdict(const Isolated& run, const std::string& row) {
    count_bad_inputs();
    if (run.completed && run.text.rfind("SKIP", 0) == 0) {
        MESSAGE(row << ": SKIP (" << run.text << ")");
        return;
    }
    REQUIRE_MESSAGE(run.completed, row << ": the child died (a SIGBUS is signal 7): " << run.text);
    std::istringstream lines(run.text);
    std::string line;
    int checks = 0;
    while (std::getline(lines, line)) {
        ++checks;
        CHECK_MESSAGE(line.rfind("ok ", 0) == 0, row << ": " << line);
    }
    CHECK_MESSAGE(checks > 0, row << ": no checks reported: " << run.text);
    MESSAGE(row << ", what the child saw:\n" << run.text);
}

std::uint64_t shm_free_bytes() {
    struct statvfs vfs {};
    return ::statvfs("/dev/shm", &vfs) == 0 ? static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize : 0;
}

// Takes /dev/shm's free space down to `leave` bytes with a file of our own.
bool fill_shm(std::uint64_t leave = 0, const char* path = "/dev/shm/filler") {
    std::uint64_t free_bytes = shm_free_bytes();
    if (free_bytes <= leave) return true;
    int fd = ::open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return false;
    int err = ::posix_fallocate(fd, 0, static_cast<off_t>(free_bytes - leave));
    ::close(fd);
    return err == 0;
}

// Names of the dragonmem objects in /dev/shm.
std::vector<std::string> pool_objects() {
    std::vector<std::string> names;
    if (DIR* dir = ::opendir("/dev/shm")) {
        while (dirent* entry = ::readdir(dir))
            if (std::strncmp(entry->d_name, "dragonmem.", 10) == 0) names.emplace_back(entry->d_name);
        ::closedir(dir);
    }
    return names;
}

// The call must throw dragonmem::Error with `code`; returns its message ("" if not).
template <typename Fn>
std::string expect_error(Verdict& v, dragonError_t code, const std::string& what, Fn&& fn) {
    try {
        fn();
        v.check(false, what + ": succeeded, expected " + dragon_getrcstr(code));
    } catch (const dragonmem::Error& e) {
        v.check(e.code() == code, what + ": " + dragon_getrcstr(e.code()) + ": " + e.what());
        return e.what();
    }
    return "";
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// Runs the CLI (DRAGONMEM_CLI, set by meson); exit code and output, or nullopt if unknown.
std::optional<std::pair<int, std::string>> run_cli(const std::vector<std::string>& args) {
    const char* cli = std::getenv("DRAGONMEM_CLI");
    if (cli == nullptr || *cli == '\0') return std::nullopt;
    std::vector<std::string> argv{cli};
    argv.insert(argv.end(), args.begin(), args.end());
    Child child = Child::spawn(argv);
    ChildResult exit = child.wait(30000);
    int code = exit.exited ? exit.code : 128 + exit.signal;
    return std::make_pair(code, child.output());
}

}  // namespace

TEST_CASE("S1: a pool larger than /dev/shm is refused with the sizes, and nothing is left") {
    const std::string name = unique_pool_name("big");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        std::string msg = expect_error(v, DRAGON_OUT_OF_SPACE, "create 64 MiB on 16 MiB", [&] { Pool::create(name, 64 * MiB); });
        v.check(contains(msg, "/dev/shm") && contains(msg, "67108864") && contains(msg, "16777216"),
                "the message names /dev/shm, the heap and the free bytes: " + msg);
        v.check(pool_objects().empty(), "nothing left in /dev/shm");
        // Through the C API too.
        dragonMemoryPoolDescr_t pool;
        dragonError_t rc = dragon_memory_pool_create(&pool, 64 * MiB, name.c_str(), 0, nullptr);
        v.check(rc == DRAGON_OUT_OF_SPACE, std::string("C pool_create: ") + dragon_getrcstr(rc));
        // Reserving needs the whole object: an 8 MiB heap of 32 B blocks has a 16 MiB manifest.
        PoolOptions reserve;
        reserve.reserve = true;
        msg = expect_error(v, DRAGON_OUT_OF_SPACE, "reserve 8 MiB + 16 MiB manifest on 16 MiB",
                           [&] { Pool::create(name, 8 * MiB, 0, reserve); });
        v.check(contains(msg, "reserved"), "the message says reserved: " + msg);
        v.check(pool_objects().empty(), "nothing left after the reserve");
        return v.text;
    }), "S1");
}

TEST_CASE("S2: create on a full /dev/shm is refused and leaves nothing (it used to die of SIGBUS)") {
    const std::string name = unique_pool_name("full");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        v.check(fill_shm(0), "filled /dev/shm");
        std::string msg = expect_error(v, DRAGON_OUT_OF_SPACE, "create 64 KiB on a full /dev/shm",
                                       [&] { Pool::create(name, 64 * 1024); });
        v.check(contains(msg, "/dev/shm"), "the message names /dev/shm: " + msg);
        v.check(pool_objects().empty(), "nothing left in /dev/shm");
        // A few pages free: not enough for the header, backing map, first records and heap chunk.
        ::unlink("/dev/shm/filler");
        v.check(fill_shm(2 * 4096), "left two pages");
        PoolOptions small;
        small.min_block_bytes = 128;
        msg = expect_error(v, DRAGON_OUT_OF_SPACE, "create 4 KiB with two pages free",
                           [&] { Pool::create(name, 4096, 0, small); });
        v.check(pool_objects().empty(), "nothing left in /dev/shm: " + msg);
        return v.text;
    }), "S2");
}

TEST_CASE("S3: allocations when /dev/shm fills up fail with OUT_OF_SPACE, never SIGBUS; the pool stays usable") {
    const std::string name = unique_pool_name("fill");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        Pool pool = Pool::create(name, 8 * MiB);
        v.check(fill_shm(128 * 1024), "left 128 KiB free");
        const std::size_t sizes[] = {64, 32, 4096, 20000};
        std::vector<Memory> held;
        int failures = 0, successes = 0;
        std::string out_of_space;  // the first OUT_OF_SPACE message
        for (int i = 0; i < 20000 && failures < 50; ++i) {
            std::size_t bytes = sizes[i % 4];
            PoolSnapshot before = snapshot(pool);
            try {
                held.push_back(pool.alloc(bytes));
                ++successes;
            } catch (const dragonmem::Error& e) {
                ++failures;
                if (out_of_space.empty() && e.code() == DRAGON_OUT_OF_SPACE) out_of_space = e.what();
                if (e.code() != DRAGON_OUT_OF_SPACE && e.code() != DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE)
                    v.check(false, std::string("alloc failed with ") + dragon_getrcstr(e.code()) + ": " + e.what());
                PoolSnapshot after = snapshot(pool);
                if (!(before == after)) v.check(false, "a failed alloc changed the pool: " + after.describe());
            }
        }
        v.check(successes > 0 && failures > 0,
                "allocations: " + std::to_string(successes) + " ok, " + std::to_string(failures) + " refused");
        v.check(contains(out_of_space, "/dev/shm") && contains(out_of_space, name),
                "an OUT_OF_SPACE refusal names /dev/shm and the pool: " + out_of_space);
        dragonMemoryPoolDescr_t c_pool;
        std::vector<std::uint8_t> serial = pool.serialize();
        dragonMemoryPoolSerial_t ser{serial.size(), serial.data()};
        v.check(dragon_memory_pool_attach(&c_pool, &ser) == DRAGON_SUCCESS, "C attach");
        dragonMemoryDescr_t c_mem;
        dragonError_t rc = DRAGON_SUCCESS;
        for (int i = 0; i < 100000 && rc == DRAGON_SUCCESS; ++i) rc = dragon_memory_alloc(&c_mem, &c_pool, 64);
        v.check(rc == DRAGON_OUT_OF_SPACE, std::string("C alloc until refused: ") + dragon_getrcstr(rc) + ": " +
                                              dragon_getlasterrstr());
        dragonmem::CheckReport report = pool.check();
        v.check(report.ok, "check() passes on the full /dev/shm");
        // check, ls and dump of the CLI read the pool without faulting.
        if (auto r = run_cli({"check", name})) v.check(r->first == 0 && contains(r->second, "\"ok\":true"), "dragonmem check: " + r->second);
        if (auto r = run_cli({"ls"})) v.check(r->first == 0 && contains(r->second, name), "dragonmem ls: " + r->second.substr(0, 300));
        if (auto r = run_cli({"dump", name})) v.check(r->first == 0, "dragonmem dump exit " + std::to_string(r->first));
        // Freed blocks are reused without new memory; with space back, everything works.
        free_all(pool);
        held.clear();
        try {
            held.push_back(pool.alloc(64));
            v.check(true, "a 64 B alloc after freeing reuses a block");
        } catch (const dragonmem::Error& e) {
            v.check(false, std::string("a 64 B alloc after freeing: ") + e.what());
        }
        ::unlink("/dev/shm/filler");
        try {
            for (int i = 0; i < 2000; ++i) held.push_back(pool.alloc(64));
            held.push_back(pool.alloc(MiB));
            v.check(true, "2000 allocations of 64 B and one of 1 MiB once /dev/shm has room again");
        } catch (const dragonmem::Error& e) {
            v.check(false, std::string("allocating with room again: ") + e.what());
        }
        held.clear();
        v.check(pool.check().ok, "check() at the end");
        free_all(pool);
        pool.destroy();
        return v.text;
    }), "S3");
}

TEST_CASE("S4: a manifest step /dev/shm cannot back fails the allocation that needs it") {
    const std::string name = unique_pool_name("man");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        // Preallocated blocks: allocations pop them without splitting, so the heap needs
        // no new memory and the manifest is the one thing that grows.
        PoolOptions options;
        options.preallocs = {8192};
        Pool pool = Pool::create(name, 4 * MiB, 0, options);
        ShmView view(name, false);
        v.check(view.ok(), "mapped the header");
        const auto* h = view.header();
        const std::uint64_t first_step = h->manifest_backed.load();
        v.check(first_step == 64, "creation backs one page of records: " + std::to_string(first_step));
        std::vector<Memory> held;
        // Up to a few records short of the backed extent (refills take several at once).
        while (h->manifest_backed.load() - h->slot_hwm > 64 && held.size() < 4096) held.push_back(pool.alloc(32));
        const std::uint64_t backed_at_fill = h->manifest_backed.load();
        v.check(fill_shm(0), "filled /dev/shm " + std::to_string(backed_at_fill - h->slot_hwm) +
                                 " records short of the backed extent (" + std::to_string(held.size()) +
                                 " allocations)");
        std::string msg;
        PoolSnapshot before = snapshot(pool);
        for (int i = 0; i < 100000 && msg.empty(); ++i) {
            before = snapshot(pool);
            try {
                held.push_back(pool.alloc(32));
            } catch (const dragonmem::Error& e) {
                v.check(e.code() == DRAGON_OUT_OF_SPACE, std::string("refused with ") + dragon_getrcstr(e.code()));
                msg = e.what();
            }
        }
        v.check(contains(msg, "manifest records") && contains(msg, "/dev/shm"), "the refusal names the manifest: " + msg);
        v.check(snapshot(pool) == before, "the refused allocation left the pool as it was");
        v.check(h->manifest_backed.load() == backed_at_fill, "the backed extent did not move");
        v.check(pool.check().ok, "check() passes");
        ::unlink("/dev/shm/filler");
        try {
            held.push_back(pool.alloc(32));
            v.check(h->manifest_backed.load() == (backed_at_fill / 1024 + 1) * 1024,
                    "with room again the next step (to a multiple of 1024) is backed: " +
                        std::to_string(h->manifest_backed.load()));
        } catch (const dragonmem::Error& e) {
            v.check(false, std::string("with room again: ") + e.what());
        }
        held.clear();
        free_all(pool);
        pool.destroy();
        return v.text;
    }), "S4");
}

TEST_CASE("S5: reserve backs the whole pool: refused cleanly when it cannot fit, and nothing in it can fault") {
    const std::string name = unique_pool_name("res");
    const std::string name2 = unique_pool_name("res2");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        PoolOptions options;
        options.min_block_bytes = 4096;
        options.reserve = true;
        const std::uint64_t free_before = shm_free_bytes();
        Pool pool = Pool::create(name, 8 * MiB, 0, options);
        const std::uint64_t used = free_before - shm_free_bytes();
        const std::size_t total = pool.attributes().total_bytes;
        v.check(used >= total, "reserving took " + std::to_string(used) + " B of /dev/shm for a " +
                                   std::to_string(total) + " B object");
        v.check(pool.attributes().reserved, "attributes say reserved");
        // Another reserved 8 MiB cannot fit in what is left.
        std::string msg = expect_error(v, DRAGON_OUT_OF_SPACE, "a second reserved 8 MiB",
                                       [&] { Pool::create(name2, 8 * MiB, 0, options); });
        v.check(pool_objects().size() == 1, "only the first pool exists: " + msg);
        // With /dev/shm full, the reserved pool still serves its whole heap and every
        // byte of it can be written.
        v.check(fill_shm(0), "filled /dev/shm");
        {
            Memory whole = pool.alloc(8 * MiB);
            std::memset(whole.pointer(), 0x5A, 8 * MiB);
            v.check(static_cast<unsigned char*>(whole.pointer())[8 * MiB - 1] == 0x5A, "wrote the whole heap");
            whole.free();
        }
        std::vector<Memory> held;
        for (int i = 0; i < 2048; ++i) held.push_back(pool.alloc(4096));
        v.check(true, "2048 blocks of 4 KiB on a full /dev/shm");
        held.clear();
        free_all(pool);
        // The C extension: the same refusal, and unknown flags.
        dragonMemoryPoolDescr_t c_pool;
        dragonMemoryPoolAttr_t attr;
        dragon_memory_attr_init(&attr);
        attr.data_min_block_size = 4096;
        dragonError_t rc = dragonmem_memory_pool_create_ext(&c_pool, MiB, name2.c_str(), 0, &attr,
                                                            DRAGONMEM_POOL_CREATE_RESERVE);
        v.check(rc == DRAGON_OUT_OF_SPACE, std::string("C create_ext RESERVE on a full /dev/shm: ") + dragon_getrcstr(rc));
        rc = dragonmem_memory_pool_create_ext(&c_pool, MiB, name2.c_str(), 0, &attr, 0x2);
        v.check(rc == DRAGON_INVALID_ARGUMENT, std::string("C create_ext unknown flag: ") + dragon_getrcstr(rc) +
                                                   ": " + dragon_getlasterrstr());
        v.check(pool_objects().size() == 1, "nothing more was created");
        // The CLI's --reserve: refused while full, made once there is room.
        if (auto r = run_cli({"create", name2, "--size", "1M", "--min-block", "4096", "--reserve"}))
            v.check(r->first == 1 && contains(r->second, "DRAGON_OUT_OF_SPACE"), "create --reserve on a full /dev/shm: " + r->second);
        ::unlink("/dev/shm/filler");
        if (auto r = run_cli({"create", name2, "--size", "1M", "--min-block", "4096", "--reserve"}))
            v.check(r->first == 0, "create --reserve with room: " + r->second);
        v.check(fill_shm(0), "filled /dev/shm again");
        if (auto r = run_cli({"alloc", name2, "--size", "1M"}))
            v.check(r->first == 0, "the reserved CLI pool serves its whole heap on a full /dev/shm: " + r->second);
        pool.destroy();
        return v.text;
    }), "S5");
}

TEST_CASE("S6: backing through a reopened descriptor (kernels before 5.14) checks it is still the pool's object") {
    const std::string name = unique_pool_name("old");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        Pool pool = Pool::create(name, 4 * MiB);
        const std::string shm_name = "dragonmem." + name;
        struct stat st {};
        v.check(::stat(("/dev/shm/" + shm_name).c_str(), &st) == 0, "stat the object");
        dragonmem::detail::ShmObjectId id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
        const std::uint64_t heap_offset = ShmView(name, false).header()->heap_offset;
        int err = dragonmem::detail::shm_back_by_name(shm_name, id, heap_offset, MiB);
        v.check(err == 0, std::string("backs 1 MiB of the heap: ") + std::strerror(err));
        v.check(fill_shm(0), "filled /dev/shm");
        err = dragonmem::detail::shm_back_by_name(shm_name, id, heap_offset + 2 * MiB, MiB);
        v.check(err == ENOSPC, std::string("full: ") + std::strerror(err));
        dragonmem::detail::ShmObjectId other{id.dev, id.ino + 1};
        err = dragonmem::detail::shm_back_by_name(shm_name, other, heap_offset, 4096);
        v.check(err == ESTALE, std::string("another object under the name: ") + std::strerror(err));
        ::unlink("/dev/shm/filler");
        pool.destroy();
        err = dragonmem::detail::shm_back_by_name(shm_name, id, heap_offset, 4096);
        v.check(err == ESTALE, std::string("the name removed: ") + std::strerror(err));
        return v.text;
    }), "S6");
}

TEST_CASE("S7: a split whose heap pages have memory but whose free-map page has none fails cleanly") {
    // The free map (one bit per 64 B granule: a page of it per 2 MiB of heap) is written
    // under the lock where a split writes a free block's header. Here the heap pages have
    // memory (the program wrote them) but the backing map does not know it, and the free
    // map's page for them was never touched: the split must back that page first, and on
    // a full /dev/shm fail, not fault.
    const std::string name = unique_pool_name("fmap");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        Pool pool = Pool::create(name, 8 * MiB);
        Memory a = pool.alloc(6 * MiB);  // [0, 6 MiB): the library backed its first and last pages
        Memory b = pool.alloc(2 * MiB);  // [6, 8 MiB): a stays whole when freed
        v.check(a.block_offset() == 0 && b.block_offset() == 6 * MiB,
                "blocks at " + std::to_string(a.block_offset()) + " and " + std::to_string(b.block_offset()));
        std::memset(a.pointer(), 0x3C, 6 * MiB);  // memory for a's pages, behind the library's back
        v.check(fill_shm(0), "filled /dev/shm");
        a.free();  // a free 6 MiB block at 0: its header and footer in pages backed at its allocation
        PoolSnapshot before = snapshot(pool);
        // 3 MiB from it: the rest's header goes at 3 MiB, whose free-map page (2-4 MiB) was
        // never backed.
        std::string msg = expect_error(v, DRAGON_OUT_OF_SPACE, "3 MiB from the freed 6 MiB block",
                                       [&] { pool.alloc(3 * MiB); });
        v.check(contains(msg, "free map") && contains(msg, "/dev/shm"), "the refusal names the free map: " + msg);
        v.check(snapshot(pool) == before, "the refused allocation left the pool as it was");
        v.check(pool.check().ok, "check() passes");
        ::unlink("/dev/shm/filler");
        try {
            Memory m = pool.alloc(3 * MiB);
            v.check(m.block_offset() == 0, "with room again the split is made: " + std::to_string(m.block_offset()));
            m.free();
        } catch (const dragonmem::Error& e) {
            v.check(false, std::string("with room again: ") + e.what());
        }
        b.free();
        dragonmem::CheckReport report = pool.check();
        v.check(report.ok, "check() at the end");
        Memory whole = pool.alloc(8 * MiB);
        v.check(true, "the whole heap allocates again");
        whole.free();
        pool.destroy();
        return v.text;
    }), "S7");
}

TEST_CASE("S8: a heap page is backed alone where /dev/shm has less than the 64 KiB one call backs") {
    // A split backs the heap page it writes a header in together with the 15 after it
    // (pool_backing.hpp). With 12 KiB left that call fails; the page alone must then be
    // backed (the kernel gave the pages memory in order, so it has it), or the pool would
    // refuse allocations a page-at-a-time backing served.
    const std::string name = unique_pool_name("win");
    expect_verdict(in_small_shm(16, [&]() -> std::string {
        Verdict v;
        Pool pool = Pool::create(name, 8 * MiB);
        v.check(fill_shm(12 * 1024), "left 12 KiB free");
        // 1 KiB blocks side by side from offset 0: every fourth split writes the rest's
        // header in a page not backed yet. The first page of manifest records (64) holds
        // them all.
        std::vector<Memory> held;
        std::string refusal;
        for (int i = 0; i < 60; ++i) {
            PoolSnapshot before = snapshot(pool);
            try {
                held.push_back(pool.alloc(1024));
            } catch (const dragonmem::Error& e) {
                v.check(e.code() == DRAGON_OUT_OF_SPACE, std::string("refused with ") + dragon_getrcstr(e.code()) +
                                                              ": " + e.what());
                refusal = e.what();
                v.check(snapshot(pool) == before, "the refused allocation left the pool as it was");
                break;
            }
        }
        // Page 0 holds 4 blocks' splits; each of the 3 pages left to /dev/shm 4 more.
        v.check(held.size() >= 12, "1 KiB allocations before the refusal: " + std::to_string(held.size()));
        v.check(contains(refusal, "/dev/shm") && contains(refusal, "heap") && contains(refusal, name),
                "the refusal names /dev/shm, the heap and the pool: " + refusal);
        v.check(pool.check().ok, "check() passes");
        held.clear();
        free_all(pool);
        pool.destroy();
        return v.text;
    }), "S8");
}

TEST_SUITE_END();
