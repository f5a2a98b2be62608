// dragonmem serve: this node's agent for off-node reads and writes (lib/remote/agent.hpp),
// in the foreground until SIGINT or SIGTERM.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <dragonmem/remote.hpp>
#include <fmt/format.h>

#include <malloc.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace dragonmem::cli {
namespace {

std::atomic<bool> stop_requested{false};

// malloc tuning of the agent's process (where serve() runs, below): blocks of 4 MiB or
// more are mapped on their own; up to 64 MiB freed at the heap's top is kept.
constexpr int k_agent_mmap_threshold = 4 << 20;
constexpr int k_agent_trim_threshold = 64 << 20;

extern "C" void request_stop(int /*signal*/) { stop_requested.store(true, std::memory_order_relaxed); }

// One JSON line on stdout, flushed: a supervisor or a test reads them as they come.
void print_line(const json& line) {
    const std::string text = line.dump() + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

}  // namespace

Command add_serve(CLI::App& top) {
    struct Args {
        std::string listen;
        bool quiet = false;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand(
        "serve", "Serve this node's pools to other nodes over UCX (foreground, until SIGINT/SIGTERM)");
    cmd->add_option("--listen", args->listen, "HOST:PORT to listen on (port 0: any free port)")
        ->type_name("HOST:PORT")
        ->required();
    cmd->add_flag("--quiet", args->quiet, "Print only the line saying where it listens, not one per request");
    cmd->footer("Prints {\"listening\": \"HOST:PORT\"} once ready, then one {\"event\": ...} line per request.\n"
                "Descriptors serialized with DRAGONMEM_AGENT=HOST:PORT name this agent.\n"
                "For trusted fabrics only, on every transport: serve (and every client) refuses unless\n"
                "DRAGONMEM_REMOTE_TRUSTED_FABRIC=1. UCX 1.13 executes remote memory writes from any peer\n"
                "on its software transports (TCP: uct_tcp_ep_handle_put_req; UD, also used under rc/dc:\n"
                "uct_ud_ep_rx_put) and its reassembly of large messages trusts the peer's offsets\n"
                "(ucp_am.c): any host that reaches these UCX ports could write anywhere in this process.\n"
                "A descriptor's secret stops honest mistakes, not someone running code on the fabric.\n"
                "Example:\n  DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 dragonmem serve --listen 10.0.0.1:7070 &\n"
                "  DRAGONMEM_AGENT=10.0.0.1:7070 dragonmem alloc p1 --size 1M --serialized");

    return {cmd, [=] {
                struct sigaction action {};
                action.sa_handler = &request_stop;
                sigemptyset(&action.sa_mask);
                sigaction(SIGINT, &action, nullptr);
                sigaction(SIGTERM, &action, nullptr);
                // A restarted agent must get its port back while its previous run's
                // connections linger in TIME_WAIT (SO_REUSEADDR). Set before UCX starts,
                // while this process has one thread; a value in the environment wins.
                ::setenv("UCX_TCP_CM_REUSEADDR", "y", 0);  // NOLINT(concurrency-mt-unsafe)
                // Over TCP, UCX sends in messages of this size: 64 KiB instead of 8 made
                // remote reads of 64 KiB 2 times faster and writes of 64-256 KiB about 4
                // times in bench/remote_bench.sh (active messages, one run at load 5; with
                // the earlier one-sided puts, reads 2-4 times). The receive side's default
                // is 64 KiB already.
                ::setenv("UCX_TCP_TX_SEG_SIZE", "64K", 0);  // NOLINT(concurrency-mt-unsafe)
                // UCX assembles each eager message (a write's piece, up to 1 MiB) in a
                // buffer it mallocs, and the agent holds a turn's pieces at once until it
                // serves them. With glibc's defaults the freed top of the heap went back to
                // the kernel at every turn and was faulted in again at the next: 140,000-
                // 320,000 minor faults per 2 s of 4 MiB writes, against 10-2,100 with these
                // (the agent keeps the pages of its largest turn, up to 64 MiB free).
                ::mallopt(M_MMAP_THRESHOLD, k_agent_mmap_threshold);
                ::mallopt(M_TRIM_THRESHOLD, k_agent_trim_threshold);
                AgentOptions options;
                options.listen = args->listen;
                options.stop = &stop_requested;
                options.on_ready = [](const std::string& address) { print_line(json{{"listening", address}}); };
                if (!args->quiet) options.on_event = [](const std::string& line) { print_line(json{{"event", line}}); };
                serve(options);
                print_line(json{{"stopped", true}});
                return Outcome{std::nullopt, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
