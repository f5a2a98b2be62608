// A library user the CLI tests talk to: shows that pools and allocations made through
// libdragonmem are seen by the dragonmem command, and the reverse.
//   cli_peer create NAME BYTES          create a pool (left for the CLI to find)
//   cli_peer alloc POOL BYTES TEXT      allocate, store TEXT at the start, print the id
//   cli_peer expect POOL ID TEXT        exit 0 when allocation ID is live and starts with TEXT
//   cli_peer churn POOL N               allocate and free N times (ids grow by one counter step
//                                       each), then leave one allocation and print its id
//   cli_peer hold POOL                  attach, print "ready", wait to be killed (an attached user)
//   cli_peer hold-local NAME BYTES      create a process-local pool, print "ready", wait to be killed
#include <dragonmem/dragonmem.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

int usage() {
    std::fputs("usage: cli_peer create NAME BYTES | alloc POOL BYTES TEXT | expect POOL ID TEXT | churn POOL N | "
               "hold POOL | hold-local NAME BYTES\n",
               stderr);
    return 2;
}

int run(int argc, char** argv) {
    const std::string_view verb = argv[1];
    if (verb == "create" && argc == 4) {
        dragonmem::Pool::create(argv[2], std::stoull(argv[3]));
        return 0;
    }
    if (verb == "alloc" && argc == 5) {
        const auto pool = dragonmem::Pool::attach_local(argv[2]);
        const std::string_view text = argv[4];
        const auto memory = pool.alloc(std::stoull(argv[3]));
        if (memory.size() < text.size()) return usage();
        std::memcpy(memory.pointer(), text.data(), text.size());
        std::printf("%llu\n", static_cast<unsigned long long>(memory.id()));
        return 0;
    }
    if (verb == "expect" && argc == 5) {
        const auto pool = dragonmem::Pool::attach_local(argv[2]);
        const std::uint64_t id = std::stoull(argv[3]);
        const std::string_view text = argv[4];
        if (!pool.allocation_exists(id)) {
            std::fprintf(stderr, "cli_peer: allocation %llu is not live\n", static_cast<unsigned long long>(id));
            return 1;
        }
        const auto memory = pool.from_id(id);
        const bool same = memory.size() >= text.size() && std::memcmp(memory.pointer(), text.data(), text.size()) == 0;
        if (!same) std::fprintf(stderr, "cli_peer: allocation %llu does not start with '%s'\n",
                                static_cast<unsigned long long>(id), argv[4]);
        return same ? 0 : 1;
    }
    if (verb == "churn" && argc == 4) {
        const auto pool = dragonmem::Pool::attach_local(argv[2]);
        const std::uint64_t rounds = std::stoull(argv[3]);
        for (std::uint64_t i = 0; i < rounds; ++i) pool.alloc(64).free();
        std::printf("%llu\n", static_cast<unsigned long long>(pool.alloc(64).id()));
        return 0;
    }
    if ((verb == "hold" && argc == 3) || (verb == "hold-local" && argc == 4)) {
        const auto pool = verb == "hold" ? dragonmem::Pool::attach_local(argv[2])
                                         : dragonmem::Pool::create_process_local(argv[2], std::stoull(argv[3]));
        std::puts("ready");
        std::fflush(stdout);
        for (;;) ::pause();  // until killed: the test decides how this user goes
    }
    return usage();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    try {
        return run(argc, argv);
    } catch (const dragonmem::Error& e) {
        std::fprintf(stderr, "cli_peer: %s: %s\n", e.code_name(), e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cli_peer: %s\n", e.what());
        return 2;
    }
}
