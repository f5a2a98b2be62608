// dragonmem attach: what a serialized pool descriptor holds, and the pool when it is local.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <memory>

namespace dragonmem::cli {

Command add_attach(CLI::App& top) {
    struct Args {
        std::string serial, env;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = top.add_subcommand("attach", "Attach a serialized pool descriptor and describe it");
    auto* serial = cmd->add_option("SERIAL", args->serial, "Base64 pool descriptor (create's \"serialized\")")
                       ->type_name("");
    cmd->add_option("--env", args->env, "Read the descriptor from this environment variable")
        ->type_name("VAR")
        ->excludes(serial);
    cmd->footer("Examples:\n"
                "  dragonmem attach \"$serial\" | jq .pool.local\n"
                "  POOL=$serial dragonmem attach --env POOL | jq .pool.free_bytes\n"
                "  POD_UID=elsewhere dragonmem attach \"$serial\" | jq .pool.local   # false: remote");

    return {cmd, [=] {
                if (args->serial.empty() && args->env.empty())
                    throw UsageError("give the descriptor: SERIAL or --env VAR");
                const Pool pool = args->env.empty() ? Pool::attach_base64(args->serial)
                                                    : Pool::attach_from_env(args->env.c_str());
                // A remote descriptor's pool object holds what the descriptor says only.
                json document{{"pool", pool_json(pool)}};
                return Outcome{document, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
