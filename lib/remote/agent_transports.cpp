// The agent's and the client's UCX transports (agent_transports.hpp).
#include "remote/agent_transports.hpp"

#include "os/error.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <string_view>

namespace dragonmem::detail {

namespace {

constexpr std::array<std::string_view, 9> k_shared{"all", "shm", "sm", "mm", "posix", "sysv", "xpmem", "cma", "knem"};

// The comma-separated names of `list`.
std::vector<std::string_view> names_of(std::string_view list) {
    std::vector<std::string_view> names;
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t end = list.find(',', start);
        if (end == std::string_view::npos) end = list.size();
        names.push_back(list.substr(start, end - start));
        start = end + 1;
    }
    return names;
}

constexpr const char* k_tcp_hole =
    "UCX's TCP transport lets any host that connects to this process's UCX ports write anywhere in "
    "its memory (UCX 1.13 copies a peer's PUT request to the address the peer names, unchecked)";

}  // namespace

dragonError_t trusted_tcp_from(const char* value, bool& out) {
    const std::string_view given = value == nullptr ? "" : value;
    if (given.empty() || given == "0") {
        out = false;
        return DRAGON_SUCCESS;
    }
    if (given == "1") {
        out = true;
        return DRAGON_SUCCESS;
    }
    return failf(DRAGON_INVALID_ARGUMENT,
                 "{}='{}': expected 1 (the fabric is trusted: UCX's TCP transport may be used) or 0 (it may not)",
                 k_trusted_tcp_env, given);
}

dragonError_t ucx_transports(const char* tls, bool agent, bool trusted_tcp, const char* who, std::string& out) {
    const std::string given = tls == nullptr ? "" : tls;
    std::string left_out;  // what this process adds to an exclusion list
    if (agent) left_out += ",shm";
    if (!trusted_tcp) left_out += ",tcp";
    if (given.empty()) {
        out = left_out.empty() ? "" : "^" + left_out.substr(1);
        return DRAGON_SUCCESS;
    }
    if (given[0] == '^') {
        out = given + left_out;
        return DRAGON_SUCCESS;
    }
    const std::vector<std::string_view> names = names_of(given);
    for (std::string_view name : names)
        if (agent && std::find(k_shared.begin(), k_shared.end(), name) != k_shared.end())
            return failf(DRAGON_INVALID_ARGUMENT,
                         "{}: UCX_TLS '{}' names '{}': the agent uses no shared-memory transport (a client's key "
                         "over one names local memory of the client's choosing); name network transports (tcp, rc, "
                         "ud, dc, ...) or unset UCX_TLS",
                         who, given, name);
    for (std::string_view name : names) {
        if (!trusted_tcp && (name == "tcp" || name == "all"))
            return failf(DRAGON_INVALID_OPERATION,
                         "{}: UCX_TLS '{}' names '{}', and {}; set {}=1 only where every host that can reach this "
                         "one is trusted, or name verbs transports (rc, ud, dc)",
                         who, given, name, k_tcp_hole, k_trusted_tcp_env);
    }
    out = given;
    return DRAGON_SUCCESS;
}

dragonError_t check_network_transports(const std::vector<std::string>& resources, bool trusted_tcp, const char* who) {
    for (const std::string& resource : resources) {
        const std::string_view transport = std::string_view(resource).substr(0, resource.find('/'));
        if (transport == "tcp" && trusted_tcp) return DRAGON_SUCCESS;
        for (std::string_view verbs : {"rc_", "ud_", "dc_"})
            if (transport.substr(0, verbs.size()) == verbs) return DRAGON_SUCCESS;
    }
    const std::string found = resources.empty() ? "none" : fmt::format("{}", fmt::join(resources, ", "));
    if (trusted_tcp)
        return failf(DRAGON_INVALID_OPERATION,
                     "{}: UCX has no transport here that reaches another node (found: {}); check UCX_TLS and "
                     "UCX_NET_DEVICES",
                     who, found);
    return failf(DRAGON_INVALID_OPERATION,
                 "{}: UCX has no verbs transport (InfiniBand, RoCE) here, only TCP, which is not used: {}; set {}=1 "
                 "only where every host that can reach this one is trusted (found without TCP: {})",
                 who, k_tcp_hole, k_trusted_tcp_env, found);
}

}  // namespace dragonmem::detail
