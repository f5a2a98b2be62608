// The agent's transports (agent_transports.hpp).
#include "remote/agent_transports.hpp"

#include "os/error.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace dragonmem::detail {

dragonError_t agent_transports(const char* tls, std::string& out) {
    const std::string given = tls == nullptr ? "" : tls;
    if (given.empty()) {
        out = "^shm";
        return DRAGON_SUCCESS;
    }
    if (given[0] == '^') {
        out = given + ",shm";
        return DRAGON_SUCCESS;
    }
    static constexpr std::array<std::string_view, 9> shared{"all", "shm", "sm", "mm", "posix", "sysv", "xpmem",
                                                            "cma", "knem"};
    std::size_t start = 0;
    while (start <= given.size()) {
        std::size_t end = given.find(',', start);
        if (end == std::string::npos) end = given.size();
        const std::string_view name(given.data() + start, end - start);
        if (std::find(shared.begin(), shared.end(), name) != shared.end())
            return failf(DRAGON_INVALID_ARGUMENT,
                         "serve: UCX_TLS '{}' names '{}': the agent uses no shared-memory transport (a client's key "
                         "over one names local memory of the client's choosing); name network transports (tcp, rc, "
                         "ud, dc, ...) or unset UCX_TLS",
                         given, name);
        start = end + 1;
    }
    out = given;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
