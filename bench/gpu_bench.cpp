// dragonmem-gpu-bench: a GPU pool's alloc+free pair against CUDA's own allocators on the
// same sizes, in one run, and what a second process pays for its first pointer into a
// GPU pool. Built with CUDA only (-Dcuda). Prints one JSON document.
//
//   pair/SIZE            dragonmem: Pool::alloc then Memory::free in a GPU pool (ns/pair)
//   cudaMalloc/SIZE      cudaMalloc then cudaFree (ns/pair)
//   cudaMallocAsync/SIZE cudaMallocAsync then cudaFreeAsync on a stream, synchronised
//                        once per pair (ns/pair), and enqueued only, one sync per batch
//   second process       a new process (exec'd): attach by descriptor, first pointer (its
//                        CUDA context start and the IPC handle's opening), next pointer;
//                        and the same with the context started before (the opening alone)
//
//   dragonmem-gpu-bench [--quick] [--device N]
#include <dragonmem/dragonmem.hpp>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

using namespace dragonmem;
using Clock = std::chrono::steady_clock;

namespace {

double ns_since(Clock::time_point start) {
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
}

void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(err));
        std::exit(1);
    }
}

// Median of `runs` timings of `pairs` pairs, ns per pair.
template <typename F>
double median_ns_per_pair(int runs, int pairs, F&& pair) {
    std::vector<double> t;
    for (int r = 0; r < runs; ++r) {
        auto start = Clock::now();
        for (int i = 0; i < pairs; ++i) pair();
        t.push_back(ns_since(start) / pairs);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

// The second process: attach, first pointer, second pointer (ns each), printed as one line.
int child(const std::string& serialized, bool start_context_first) {
    if (start_context_first) check(cudaFree(nullptr), "cudaFree(0)");
    auto start = Clock::now();
    Memory m = Memory::attach_base64(serialized);
    const double attach_ns = ns_since(start);
    start = Clock::now();
    void* p = m.pointer();
    const double first_ns = ns_since(start);
    start = Clock::now();
    void* q = m.pointer();
    const double next_ns = ns_since(start);
    if (p != q || p == nullptr) return 3;
    std::printf("%.0f %.0f %.0f\n", attach_ns, first_ns, next_ns);
    return 0;
}

// Runs this program as the second process; returns its line and the wall time of the whole child.
std::string run_child(const std::string& self, const std::string& serialized, bool context_first, double& wall_ms) {
    int fds[2];
    if (::pipe(fds) != 0) return "";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<std::string> args{self, "--child", serialized, context_first ? "1" : "0"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    auto start = Clock::now();
    if (posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ) != 0) return "";
    ::close(fds[1]);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    wall_ms = ns_since(start) / 1e6;
    posix_spawn_file_actions_destroy(&actions);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "";
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 4 && std::strcmp(argv[1], "--child") == 0) return child(argv[2], std::strcmp(argv[3], "1") == 0);
    bool quick = false;
    int device = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        if (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = std::atoi(argv[++i]);
    }
    char self_buf[4096];
    const ssize_t self_len = ::readlink("/proc/self/exe", self_buf, sizeof self_buf - 1);
    const std::string self(self_buf, self_len > 0 ? static_cast<std::size_t>(self_len) : 0);
    const int runs = quick ? 3 : 7;
    const int pool_pairs = quick ? 20000 : 200000;
    const int cuda_pairs = quick ? 200 : 2000;

    cudaDeviceProp prop{};
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    cudaStream_t stream;
    check(cudaStreamCreate(&stream), "cudaStreamCreate");

    const std::string name = fmt::format("gpubench{}", ::getpid());
    PoolOptions options;
    options.mem_type = DRAGON_MEMORY_TYPE_GPU;
    options.gpu_device_id = static_cast<std::uint64_t>(device);
    auto create_start = Clock::now();
    Pool pool = Pool::create(name, std::size_t{1} << 30, 0, options);
    const double create_ms = ns_since(create_start) / 1e6;

    std::string figures;
    for (std::size_t size : {std::size_t{64}, std::size_t{4096}, std::size_t{1} << 20}) {
        const double dm = median_ns_per_pair(runs, pool_pairs, [&] {
            Memory m = pool.alloc(size);
            m.free();
        });
        const double cm = median_ns_per_pair(runs, cuda_pairs, [&] {
            void* p = nullptr;
            check(cudaMalloc(&p, size), "cudaMalloc");
            check(cudaFree(p), "cudaFree");
        });
        const double ca_sync = median_ns_per_pair(runs, cuda_pairs, [&] {
            void* p = nullptr;
            check(cudaMallocAsync(&p, size, stream), "cudaMallocAsync");
            check(cudaFreeAsync(p, stream), "cudaFreeAsync");
            check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        });
        const double ca_enqueue = median_ns_per_pair(runs, 1, [&] {
            for (int i = 0; i < cuda_pairs; ++i) {
                void* p = nullptr;
                check(cudaMallocAsync(&p, size, stream), "cudaMallocAsync");
                check(cudaFreeAsync(p, stream), "cudaFreeAsync");
            }
            check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        }) / cuda_pairs;
        figures += fmt::format(
            "{}    {{\"size\": {}, \"dragonmem_pair_ns\": {:.1f}, \"cudaMalloc_cudaFree_ns\": {:.1f}, "
            "\"cudaMallocAsync_pair_synced_ns\": {:.1f}, \"cudaMallocAsync_pair_enqueued_ns\": {:.1f}, "
            "\"vs_cudaMalloc\": {:.0f}, \"vs_cudaMallocAsync_synced\": {:.0f}}}",
            figures.empty() ? "" : ",\n", size, dm, cm, ca_sync, ca_enqueue, cm / dm, ca_sync / dm);
    }

    // The second process's first pointer, cold (its CUDA context starts) and warm.
    Memory shared = pool.alloc(4096);
    (void)shared.pointer();
    const std::string serialized = shared.serialize_base64();
    std::string second;
    for (bool context_first : {false, true}) {
        std::vector<double> attach, first, next, wall;
        for (int r = 0; r < (quick ? 2 : 5); ++r) {
            double wall_ms = 0;
            const std::string line = run_child(self, serialized, context_first, wall_ms);
            double a = 0, f = 0, n = 0;
            if (line.empty() || std::sscanf(line.c_str(), "%lf %lf %lf", &a, &f, &n) != 3) {
                std::fprintf(stderr, "the second process failed\n");
                return 1;
            }
            attach.push_back(a);
            first.push_back(f);
            next.push_back(n);
            wall.push_back(wall_ms);
        }
        auto med = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        second += fmt::format(
            "{}    {{\"context_started_before\": {}, \"attach_us\": {:.1f}, \"first_pointer_ms\": {:.2f}, "
            "\"next_pointer_ns\": {:.0f}, \"process_wall_ms\": {:.1f}}}",
            second.empty() ? "" : ",\n", context_first, med(attach) / 1e3, med(first) / 1e6, med(next), med(wall));
    }
    shared.free();
    pool.destroy();
    check(cudaStreamDestroy(stream), "cudaStreamDestroy");

    std::printf("{\n  \"device\": \"%s\", \"gpu\": %d, \"pool_bytes\": %zu, \"create_ms\": %.1f, \"runs\": %d,\n"
                "  \"pairs\": [\n%s\n  ],\n  \"second_process\": [\n%s\n  ]\n}\n",
                prop.name, device, std::size_t{1} << 30, create_ms, runs, figures.c_str(), second.c_str());
    return 0;
}
