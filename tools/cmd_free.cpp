// dragonmem free: free allocations by id, or by their serialized descriptor.
#include "commands.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <memory>
#include <vector>

namespace dragonmem::cli {

Command add_free(CLI::App& top) {
    auto target = std::make_shared<AllocationTarget>();
    CLI::App* cmd = top.add_subcommand("free", "Free allocations");
    add_allocation_target(*cmd, *target, true);
    cmd->footer("Examples:\n"
                "  dragonmem free p1 3 4 | jq '.freed | length'\n"
                "  dragonmem free --serial \"$(dragonmem alloc p1 --size 64 | jq -r .allocations[0].serialized)\"");

    return {cmd, [=] {
                // Every id is resolved before the first free: an id that is not live fails
                // the command with the pool untouched.
                std::vector<Memory> memories = open_allocations(*target);
                const Pool pool = memories.front().pool();
                const std::string name = pool.name();
                const AllocationIndex index = index_allocations(pool);
                json freed = json::array();
                for (Memory& memory : memories) {
                    // Described before the free: afterwards the block size is gone.
                    json described = allocation_json(info_of(memory, index, name), memory.serialize_base64());
                    memory.free();
                    freed.push_back(std::move(described));
                }
                return Outcome{json{{"pool", name}, {"freed", freed}}, std::nullopt};
            }};
}

}  // namespace dragonmem::cli
