// GPU pools (DRAGON_MEMORY_TYPE_GPU) end to end: dm_gpu. On a machine without a usable
// GPU only the first case runs (a clear error, nothing created); each GPU case prints
// "SKIP: <why>" and passes. With a GPU: create, alloc, device pointers, a second process
// (this program again, exec'd: CUDA cannot be used in a forked child of a process that
// initialised it) writing and reading device memory, copies between host and GPU pools,
// clear/hash/equal/read/write, host registration, crash repair of a GPU pool's
// metadata, the device memory given back at destroy, and bad input.
//
//   dm_gpu [doctest options]         the tests
//   dm_gpu --child MODE ARGS...      the second process (see child_main)
#define DOCTEST_CONFIG_IMPLEMENT
#include "testing.hpp"

#include <dragonmem/dragonmem.hpp>

#if DMTEST_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace dragonmem;
using dmtest::Child;
using dmtest::MiB;

namespace {

// Why GPU cases cannot run here ("" when they can), found once by creating a GPU pool.
std::string g_no_gpu;
dragonError_t g_no_gpu_code = DRAGON_SUCCESS;

[[maybe_unused]] std::string self_path() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

void probe_gpu() {
    const std::string name = dmtest::unique_pool_name("probe");
    PoolOptions options;
    options.mem_type = DRAGON_MEMORY_TYPE_GPU;
    try {
        Pool pool = Pool::create(name, MiB, 0, options);
        pool.destroy();
    } catch (const Error& e) {
        g_no_gpu = e.what();
        g_no_gpu_code = e.code();
    }
}

#define REQUIRE_GPU()                                     \
    do {                                                  \
        if (!g_no_gpu.empty()) {                          \
            MESSAGE("SKIP: no usable GPU: " << g_no_gpu); \
            return;                                       \
        }                                                 \
    } while (0)

[[maybe_unused]] Pool make_gpu_pool(const std::string& name, std::size_t bytes, std::uint64_t device = 0) {
    PoolOptions options;
    options.mem_type = DRAGON_MEMORY_TYPE_GPU;
    options.gpu_device_id = device;
    return Pool::create(name, bytes, 0, options);
}

[[maybe_unused]] std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
    return out;
}

#if DMTEST_HAVE_CUDA
bool is_device_pointer(const void* p) {
    cudaPointerAttributes attributes{};
    return cudaPointerGetAttributes(&attributes, p) == cudaSuccess && attributes.type == cudaMemoryTypeDevice;
}
std::size_t device_free_bytes() {
    std::size_t free_bytes = 0, total = 0;
    (void)cudaMemGetInfo(&free_bytes, &total);
    return free_bytes;
}
int device_count() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}
#endif

// The second process. Modes:
//   check-write SERIAL SEED NEWSEED: attaches the base64 allocation descriptor, checks
//     that its bytes are pattern(SEED) (cudaMemcpy from its device pointer), writes
//     pattern(NEWSEED) through the pointer, prints "ok"; exit 3 with "FAIL ..." otherwise.
int child_main(int argc, char** argv) {
    if (argc < 3) return 2;
    const std::string mode = argv[2];
#if DMTEST_HAVE_CUDA
    if (mode == "check-write" && argc == 6) {
        try {
            Memory memory = Memory::attach_base64(argv[3]);
            void* device = memory.pointer();
            if (!is_device_pointer(device)) {
                std::printf("FAIL not a device pointer\n");
                return 3;
            }
            const auto expected = pattern(memory.size(), static_cast<unsigned>(std::stoul(argv[4])));
            std::vector<std::byte> got(memory.size());
            if (cudaMemcpy(got.data(), device, got.size(), cudaMemcpyDeviceToHost) != cudaSuccess || got != expected) {
                std::printf("FAIL bytes differ\n");
                return 3;
            }
            const auto fresh = pattern(memory.size(), static_cast<unsigned>(std::stoul(argv[5])));
            if (cudaMemcpy(device, fresh.data(), fresh.size(), cudaMemcpyHostToDevice) != cudaSuccess) {
                std::printf("FAIL write\n");
                return 3;
            }
            std::printf("ok\n");
            return 0;
        } catch (const Error& e) {
            std::printf("FAIL %s\n", e.what());
            return 3;
        }
    }
#endif
    //   no-device SERIAL: run with no device visible (CUDA_VISIBLE_DEVICES=""): attaching
    //     works, the pointer is refused naming the pool's GPU by its UUID; prints "ok".
    if (mode == "no-device" && argc == 4) {
        try {
            Memory memory = Memory::attach_base64(argv[3]);
            (void)memory.pointer();
            std::printf("FAIL a pointer without a visible device\n");
            return 3;
        } catch (const Error& e) {
            const std::string why = e.what();
            if (e.code() != DRAGON_MEMORY_ERRNO || why.find("GPU-") == std::string::npos) {
                std::printf("FAIL %s\n", why.c_str());
                return 3;
            }
            std::printf("ok %s\n", why.c_str());
            return 0;
        }
    }
    //   hold-open SERIAL MS: attaches the pool descriptor, opens its region (a pointer
    //     request), prints "ready", keeps it MS milliseconds, exits 0.
    if (mode == "hold-open" && argc == 5) {
        try {
            Pool pool = Pool::attach_base64(argv[3]);
            (void)pool.base_pointer();
            std::printf("ready\n");
            std::fflush(stdout);
            ::usleep(static_cast<useconds_t>(std::stoul(argv[4]) * 1000));
            return 0;
        } catch (const Error& e) {
            std::printf("FAIL %s\n", e.what());
            return 3;
        }
    }
    std::printf("FAIL unknown child mode %s\n", mode.c_str());
    return 2;
}

}  // namespace

TEST_SUITE_BEGIN("gpu");

TEST_CASE("without a usable GPU, a GPU pool is a clear error and nothing is created") {
    if (g_no_gpu.empty()) {
        MESSAGE("SKIP: this machine has a usable GPU (the other cases test it)");
        return;
    }
    const std::string name = dmtest::unique_pool_name("nogpu");
    dmtest::ShmGuard guard(name);
    PoolOptions options;
    options.mem_type = DRAGON_MEMORY_TYPE_GPU;
    try {
        (void)Pool::create(name, MiB, 0, options);
        FAIL("a GPU pool was created without a usable GPU");
    } catch (const Error& e) {
        const std::string why = e.what();
        CHECK(why.find("pool '" + name + "'") != std::string::npos);
#if DMTEST_LIB_CUDA
        // Built with CUDA: the message names what is missing (driver or device).
        CHECK(e.code() == DRAGON_MEMORY_ERRNO);
        CHECK((why.find("no CUDA driver") != std::string::npos || why.find("no CUDA device") != std::string::npos ||
               why.find("CUDA driver") != std::string::npos));
#else
        CHECK(e.code() == DRAGON_MEMORY_ILLEGAL_MEMTYPE);
        CHECK(why.find("built without CUDA") != std::string::npos);
#endif
    }
    CHECK_FALSE(dmtest::shm_exists(name));
    // The C API says the same.
    dragonMemoryPoolAttr_t attr;
    REQUIRE(dragon_memory_attr_init(&attr) == DRAGON_SUCCESS);
    attr.mem_type = DRAGON_MEMORY_TYPE_GPU;
    dragonMemoryPoolDescr_t pool;
    CHECK(dragon_memory_pool_create(&pool, MiB, name.c_str(), 1, &attr) == g_no_gpu_code);
    CHECK_FALSE(dmtest::shm_exists(name));
    // register_with_gpu on a host pool: refused the same way, the pool unchanged.
    REQUIRE(dragon_memory_pool_create(&pool, MiB, name.c_str(), 1, nullptr) == DRAGON_SUCCESS);
    CHECK(dragon_memory_pool_process_local_register_with_gpu(&pool) != DRAGON_SUCCESS);
    CHECK(dmtest::last_error().find("GPU") != std::string::npos);
    CHECK(dragon_memory_pool_destroy(&pool) == DRAGON_SUCCESS);
}

#if DMTEST_HAVE_CUDA

TEST_CASE("a GPU pool: allocations are device memory, metadata stays in host shared memory") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("gpu");
    dmtest::ShmGuard guard(name);
    Pool pool = make_gpu_pool(name, 64 * MiB);
    const PoolAttributes a = pool.attributes();
    CHECK(a.mem_type == DRAGON_MEMORY_TYPE_GPU);
    CHECK(a.gpu_device_id == 0);
    CHECK(a.ipc_handle_bytes == 64);
    CHECK(a.heap_bytes == 64 * MiB);
    CHECK(dmtest::shm_exists(name));
    CHECK(is_device_pointer(pool.base_pointer()));

    std::vector<Memory> blocks;
    for (std::size_t bytes : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, MiB, 8 * MiB})
        blocks.push_back(pool.alloc(bytes));
    for (const Memory& m : blocks) {
        void* p = m.pointer();
        CHECK(is_device_pointer(p));
        CHECK(m.on_device());
        const auto bytes = pattern(m.size(), static_cast<unsigned>(m.size()));
        m.write(0, bytes);
        std::vector<std::byte> back(m.size());
        m.read(0, back);
        CHECK(back == bytes);
        // Raw CUDA on the pointer agrees with the API.
        std::vector<std::byte> raw(m.size());
        REQUIRE(cudaMemcpy(raw.data(), p, raw.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK(raw == bytes);
        CHECK_THROWS_AS((void)m.bytes(), Error);  // never a host span over device memory
    }
    const CheckReport report = pool.check();
    CHECK(report.ok);
    // C API: get_attr and get_pointer.
    dragonMemoryPoolDescr_t c_pool;
    const auto serial = pool.serialize();
    dragonMemoryPoolSerial_t ser{serial.size(), const_cast<std::uint8_t*>(serial.data())};
    REQUIRE(dragon_memory_pool_attach(&c_pool, &ser) == DRAGON_SUCCESS);
    dragonMemoryPoolAttr_t attr;
    REQUIRE(dragon_memory_get_attr(&c_pool, &attr) == DRAGON_SUCCESS);
    CHECK(attr.mem_type == DRAGON_MEMORY_TYPE_GPU);
    CHECK(attr.ipc_handle_size == 64);
    CHECK(dragon_memory_attr_destroy(&attr) == DRAGON_SUCCESS);
    void* base = nullptr;
    REQUIRE(dragon_memory_pool_get_pointer(&c_pool, &base) == DRAGON_SUCCESS);
    CHECK(base == pool.base_pointer());
    CHECK(dragon_memory_pool_detach(&c_pool) == DRAGON_SUCCESS);
    for (Memory& m : blocks) m.free();
    pool.destroy();
}

TEST_CASE("a second process attaches, reads what this one wrote on the device, and writes back") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("gpu2p");
    dmtest::ShmGuard guard(name);
    Pool pool = make_gpu_pool(name, 16 * MiB);
    Memory m = pool.alloc(MiB + 17);
    m.write(0, pattern(m.size(), 5));
    Child child = Child::spawn({self_path(), "--child", "check-write", m.serialize_base64(), "5", "9"});
    const auto result = child.wait(120000);
    REQUIRE_MESSAGE(result.exited_with(0), result.describe());
    std::vector<std::byte> back(m.size());
    m.read(0, back);
    CHECK(back == pattern(m.size(), 9));
    // A process that cannot see the pool's GPU: refused, naming the GPU (by UUID).
    Child blind = Child::spawn({self_path(), "--child", "no-device", m.serialize_base64()},
                               {{"CUDA_VISIBLE_DEVICES", std::string()}});
    const auto blind_result = blind.wait(120000);
    CHECK_MESSAGE(blind_result.exited_with(0), blind_result.describe());
    m.free();
    pool.destroy();
}

TEST_CASE("copies between host and GPU pools, clear, hash and equal") {
    REQUIRE_GPU();
    const std::string host_name = dmtest::unique_pool_name("host");
    const std::string gpu_name = dmtest::unique_pool_name("dev");
    dmtest::ShmGuard host_guard(host_name), gpu_guard(gpu_name);
    Pool host = Pool::create(host_name, 16 * MiB);
    Pool gpu = make_gpu_pool(gpu_name, 16 * MiB);
    const std::size_t n = 300000;
    Memory h1 = host.alloc(n), h2 = host.alloc(n), d1 = gpu.alloc(n), d2 = gpu.alloc(n);
    const auto bytes = pattern(n, 3);
    std::memcpy(h1.pointer(), bytes.data(), n);

    h1.copy_to(d1);  // host to device
    d1.copy_to(d2);  // device to device
    d2.copy_to(h2);  // device to host
    CHECK(std::memcmp(h2.pointer(), bytes.data(), n) == 0);
    CHECK(d1.bytes_equal(h1));
    CHECK(d2.hash() == h1.hash());

    // Overlapping views of one device allocation: memmove's result.
    Memory low = d1.clone(0, n - 1000), high = d1.clone(1000, n - 1000);
    low.copy_to(high);
    std::vector<std::byte> got(n);
    d1.read(0, got);
    std::vector<std::byte> expected = bytes;
    std::memmove(expected.data() + 1000, expected.data(), n - 1000);
    CHECK(got == expected);

    // clear on the device.
    d2.clear(10, 5000);
    d2.read(0, got);
    expected = bytes;
    std::fill(expected.begin() + 10, expected.begin() + 5000, std::byte{0});
    CHECK(got == expected);

    // copy_to_pool: a new device allocation from host bytes.
    Memory d3 = h1.copy_to_pool(gpu);
    CHECK(d3.on_device());
    CHECK(d3.bytes_equal(h1));

    // Bad input: too many bytes, a range outside the view; nothing changes.
    std::vector<std::byte> d1_before(n);
    d1.read(0, d1_before);
    CHECK_THROWS_AS(h1.copy_to(d1.clone(0, 10), std::size_t{11}), Error);
    std::vector<std::byte> big(n + 1);
    CHECK_THROWS_AS(d1.write(0, big), Error);
    CHECK_THROWS_AS(d1.read(1, std::span<std::byte>(big.data(), n)), Error);
    d1.read(0, got);
    CHECK(got == d1_before);

    // Another device, where there is one.
    if (device_count() > 1) {
        const std::string other_name = dmtest::unique_pool_name("dev1");
        dmtest::ShmGuard other_guard(other_name);
        Pool other = make_gpu_pool(other_name, 16 * MiB, 1);
        Memory e1 = other.alloc(n);
        h1.copy_to(d2);
        d2.copy_to(e1);  // peer copy
        CHECK(e1.bytes_equal(h1));
        e1.free();
        other.destroy();
    } else {
        MESSAGE("one GPU: the copy between two devices was not run");
    }
    for (Memory* m : {&h1, &h2, &d1, &d2, &d3}) m->free();
    host.destroy();
    gpu.destroy();
}

TEST_CASE("register_with_gpu pins a host pool for the GPU; a GPU pool and double calls are refused") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("pin");
    const std::string gpu_name = dmtest::unique_pool_name("pingpu");
    dmtest::ShmGuard guard(name), gpu_guard(gpu_name);
    dragonMemoryPoolDescr_t pool;
    REQUIRE(dragon_memory_pool_create(&pool, 4 * MiB, name.c_str(), 1, nullptr) == DRAGON_SUCCESS);
    CHECK(dragon_memory_pool_process_local_unregister_with_gpu(&pool) == DRAGON_INVALID_OPERATION);
    REQUIRE(dragon_memory_pool_process_local_register_with_gpu(&pool) == DRAGON_SUCCESS);
    void* base = nullptr;
    REQUIRE(dragon_memory_pool_get_pointer(&pool, &base) == DRAGON_SUCCESS);
    cudaPointerAttributes attributes{};
    REQUIRE(cudaPointerGetAttributes(&attributes, base) == cudaSuccess);
    CHECK(attributes.type == cudaMemoryTypeHost);  // page-locked, known to CUDA
    CHECK(dragon_memory_pool_process_local_register_with_gpu(&pool) == DRAGON_INVALID_OPERATION);
    CHECK(dmtest::last_error().find("already") != std::string::npos);
    CHECK(dragon_memory_pool_process_local_unregister_with_gpu(&pool) == DRAGON_SUCCESS);
    CHECK(dragon_memory_pool_destroy(&pool) == DRAGON_SUCCESS);

    dragonMemoryPoolAttr_t attr;
    REQUIRE(dragon_memory_attr_init(&attr) == DRAGON_SUCCESS);
    attr.mem_type = DRAGON_MEMORY_TYPE_GPU;
    REQUIRE(dragon_memory_pool_create(&pool, 4 * MiB, gpu_name.c_str(), 2, &attr) == DRAGON_SUCCESS);
    CHECK(dragon_memory_pool_process_local_register_with_gpu(&pool) == DRAGON_INVALID_OPERATION);
    CHECK(dmtest::last_error().find("GPU pool") != std::string::npos);
    CHECK(dragon_memory_pool_destroy(&pool) == DRAGON_SUCCESS);
}

TEST_CASE("a process killed holding a GPU pool's lock: the survivor repairs, the device bytes stay") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("crash");
    dmtest::ShmGuard guard(name);
    Pool pool = make_gpu_pool(name, 16 * MiB);
    Memory keep = pool.alloc(4096), doomed = pool.alloc(8192);
    keep.write(0, pattern(4096, 7));
    // Killed after the commit point of doomed's free, before the heap was updated.
    Child dying = Child::spawn({dmtest::child_or_fail(), "crash-point", name, "retire", std::to_string(doomed.id())});
    const auto died = dying.wait(60000);
    REQUIRE_MESSAGE((died.started && died.signal == SIGKILL), died.describe());
    CHECK(pool.attributes().recoveries >= 1);  // takes the lock: repairs first
    CHECK(pool.check().ok);
    Memory fresh = pool.alloc(8192);
    std::vector<std::byte> back(4096);
    keep.read(0, back);
    CHECK(back == pattern(4096, 7));
    CHECK(fresh.on_device());
    fresh.free();
    keep.free();
    pool.destroy();
}

TEST_CASE("a child forked after CUDA was used gets a clear error, not the parent's device pointer") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("fork");
    dmtest::ShmGuard guard(name);
    Pool pool = make_gpu_pool(name, 4 * MiB);
    Memory m = pool.alloc(4096);
    (void)m.pointer();  // opened (created) here
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Metadata operations need no CUDA and work; pointers are refused with the reason.
        int code = 0;
        try {
            Memory other = pool.alloc(64);
            other.free();
        } catch (const Error&) {
            code |= 1;
        }
        try {
            (void)m.pointer();
            code |= 2;
        } catch (const Error& e) {
            if (e.code() != DRAGON_INVALID_OPERATION || std::string(e.what()).find("forked") == std::string::npos)
                code |= 4;
        }
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    m.free();
    pool.destroy();
}

TEST_CASE("destroy gives the device memory back") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("free");
    dmtest::ShmGuard guard(name);
    const std::size_t bytes = 1024 * MiB;
    const std::size_t before = device_free_bytes();
    {
        Pool pool = make_gpu_pool(name, bytes);
        CHECK(device_free_bytes() + bytes <= before + 64 * MiB);  // allocated at creation
        pool.destroy();
    }
    CHECK(device_free_bytes() + 64 * MiB >= before);  // and given back
    CHECK_FALSE(dmtest::shm_exists(name));
}

TEST_CASE("destroyed while another process has it open: the region is freed once that process is gone") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("held");
    const std::string next = dmtest::unique_pool_name("next");
    dmtest::ShmGuard guard(name), next_guard(next);
    const std::size_t bytes = 1024 * MiB;
    const std::size_t before = device_free_bytes();
    Child holder;
    {
        Pool pool = make_gpu_pool(name, bytes);
        holder = Child::spawn({self_path(), "--child", "hold-open", pool.serialize_base64(), "3000"});
        REQUIRE_MESSAGE(holder.wait_for_output("ready", 60000), holder.output());
        pool.destroy();
    }  // this process's last mapping goes while the holder has the region open: kept
    CHECK(device_free_bytes() + bytes <= before + 64 * MiB);
    const auto held = holder.wait(60000);
    REQUIRE_MESSAGE(held.exited_with(0), held.describe());
    // The next GPU call here sweeps: the holder is gone, the region is freed.
    Pool other = make_gpu_pool(next, MiB);
    CHECK(device_free_bytes() + 64 * MiB >= before);
    other.destroy();
}

TEST_CASE("bad input: a device that does not exist, reserve; nothing is created") {
    REQUIRE_GPU();
    const std::string name = dmtest::unique_pool_name("bad");
    dmtest::ShmGuard guard(name);
    try {
        (void)make_gpu_pool(name, MiB, 99);
        FAIL("device 99 accepted");
    } catch (const Error& e) {
        CHECK(e.code() == DRAGON_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("GPU device 99") != std::string::npos);
    }
    CHECK_FALSE(dmtest::shm_exists(name));
    PoolOptions options;
    options.mem_type = DRAGON_MEMORY_TYPE_GPU;
    options.reserve = true;
    CHECK_THROWS_AS((void)Pool::create(name, MiB, 0, options), Error);
    CHECK_FALSE(dmtest::shm_exists(name));
}

#endif  // DMTEST_HAVE_CUDA

TEST_SUITE_END();

int main(int argc, char** argv) {
    if (argc >= 2 && std::strcmp(argv[1], "--child") == 0) return child_main(argc, argv);
    probe_gpu();
    if (!g_no_gpu.empty()) std::printf("no usable GPU here: %s\n", g_no_gpu.c_str());
    doctest::Context context;
    context.applyCommandLine(argc, argv);
    const int result = context.run();
    for (const std::string& leftover : dmtest::sweep_my_shm())
        std::fprintf(stderr, "note: removed leftover /dev/shm/%s (a test did not clean up)\n", leftover.c_str());
    return result;
}
