// dragonmem create: make a pool and print it, serialized descriptor included.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <climits>
#include <fmt/format.h>

#include <functional>
#include <memory>

namespace dragonmem::cli {

namespace {

// create --hold: this process keeps the pool (a gpu pool's device memory with it) until
// another process destroys the pool, or a SIGINT/SIGTERM/SIGHUP here destroys it. The
// signals are blocked before the pool is created (hold_signals), so one sent as soon as
// the pool is printed waits for sigtimedwait instead of killing the process.
sigset_t hold_signals() {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    return stop;
}

int hold_until_destroyed(Pool& pool) {
    const sigset_t stop = hold_signals();
    const timespec slice{0, 200 * 1000 * 1000};
    for (;;) {
        const int sig = sigtimedwait(&stop, nullptr, &slice);
        if (sig > 0) {
            try {
                pool.destroy();
            } catch (const Error&) {
                // Destroyed by another process meanwhile: nothing left to do.
            }
            return 0;
        }
        try {
            (void)pool.allocation_exists(0);  // fails once the pool was destroyed
        } catch (const Error&) {
            return 0;
        }
    }
}

}  // namespace

Command add_create(CLI::App& top) {
    struct Args {
        std::string name, size, uid, min_block, max_allocations, mode, prealloc, numa_node, mem_type, gpu;
        bool reserve = false;
        bool hold = false;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("create", "Create a pool");
    cmd->add_option("NAME", args->name, "Base name: 1-29 chars of [A-Za-z0-9._-]")->type_name("")->required();
    cmd->add_option("--size", args->size, "Allocatable bytes (4096, 64K, 1M, 2G), rounded up to a power of 2")
        ->type_name("SIZE")
        ->required();
    auto* uid = cmd->add_option("--uid", args->uid, "The pool's m_uid (default 0)")->type_name("N");
    auto* min_block = cmd->add_option("--min-block", args->min_block, "Smallest block (default 32), a size")->type_name("SIZE");
    auto* max_allocations =
        cmd->add_option("--max-allocations", args->max_allocations, "Manifest capacity (default: number of min blocks)")
                                 ->type_name("N");
    auto* mode = cmd->add_option("--mode", args->mode, "Octal permission bits (default and 0: 0600; umask ignored)")
                     ->type_name("OCTAL");
    auto* prealloc =
        cmd->add_option("--prealloc", args->prealloc, "N,N,...: blocks of min-block << i to cache at creation")
                         ->type_name("N,N,...");
    cmd->add_flag("--reserve", args->reserve,
                  "Give the whole pool memory now (posix_fallocate, ~0.2 s/GiB): fails if /dev/shm cannot hold it, "
                  "and no page of it can fault later");
    auto* numa_node = cmd->add_option("--numa-node", args->numa_node,
                                      "Bind the pool's pages to NUMA node N (mbind); -1, the default: no preference")
                          ->type_name("N");
    auto* mem_type = cmd->add_option("--mem-type", args->mem_type,
                                     "shm (default), hugepage (a hugetlbfs mount) or gpu (CUDA device memory)")
                         ->type_name("TYPE");
    auto* gpu = cmd->add_option("--gpu", args->gpu, "The CUDA device of a gpu pool (default 0)")->type_name("N");
    cmd->add_flag("--hold", args->hold,
                  "After printing the pool, stay until it is destroyed (by any process), or until SIGINT or "
                  "SIGTERM, which destroy it. A gpu pool needs it: its device memory lives as long as the process "
                  "that created it");
    cmd->footer("Examples:\n  dragonmem create p1 --size 1M --min-block 64 | jq -r .pool.serialized\n"
                "  dragonmem create g1 --size 1G --mem-type gpu --gpu 0 --hold &");

    return {cmd, [=] {
                const std::size_t bytes = parse_size(args->size, "--size");
                PoolOptions options;
                std::uint64_t m_uid = 0;
                if (uid->count() != 0) m_uid = parse_uint(args->uid, "--uid");
                if (min_block->count() != 0) options.min_block_bytes = parse_size(args->min_block, "--min-block");
                if (max_allocations->count() != 0)
                    options.max_allocations = parse_uint(args->max_allocations, "--max-allocations");
                if (mode->count() != 0) options.mode = parse_mode(args->mode, "--mode");
                if (prealloc->count() != 0) options.preallocs = parse_uint_list(args->prealloc, "--prealloc");
                options.reserve = args->reserve;
                if (numa_node->count() != 0)
                    options.numa_node = args->numa_node == "-1"
                                            ? -1
                                            : static_cast<int>(std::min<std::uint64_t>(
                                                  parse_uint(args->numa_node, "--numa-node"), INT_MAX));
                if (mem_type->count() != 0) {
                    if (args->mem_type == "shm")
                        options.mem_type = DRAGON_MEMORY_TYPE_SHM;
                    else if (args->mem_type == "hugepage")
                        options.mem_type = DRAGON_MEMORY_TYPE_HUGEPAGE;
                    else if (args->mem_type == "gpu")
                        options.mem_type = DRAGON_MEMORY_TYPE_GPU;
                    else
                        throw UsageError(fmt::format("--mem-type: '{}' is not shm, hugepage or gpu", args->mem_type));
                }
                if (gpu->count() != 0) {
                    if (options.mem_type != DRAGON_MEMORY_TYPE_GPU)
                        throw UsageError("--gpu: only a --mem-type gpu pool has a device");
                    options.gpu_device_id = parse_uint(args->gpu, "--gpu");
                }
                if (args->hold) {
                    const sigset_t stop = hold_signals();
                    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
                }
                auto pool = std::make_shared<Pool>(Pool::create(args->name, bytes, m_uid, options));
                // Exit 1 must mean no pool: if describing or printing it fails, it goes again.
                std::function<std::string()> undo = [pool, name = args->name] {
                    try {
                        pool->destroy();
                        return fmt::format("pool '{}' was destroyed again: nothing changed", name);
                    } catch (const Error& e) {
                        return fmt::format("pool '{}' could not be destroyed again: {}", name, e.what());
                    }
                };
                try {
                    Outcome outcome{json{{"pool", pool_json(*pool)}}, std::nullopt, undo};
                    if (args->hold) outcome.after = [pool] { return hold_until_destroyed(*pool); };
                    return outcome;
                } catch (const Error& e) {
                    throw Error(e.code(), fmt::format("{}; {}", e.what(), undo()));
                }
            }};
}

}  // namespace dragonmem::cli
