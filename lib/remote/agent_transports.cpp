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

// UCX_TLS names (transports and aliases) of shared-memory transports.
constexpr std::array<std::string_view, 9> k_shared{"all", "shm", "sm", "mm", "posix", "sysv", "xpmem", "cma", "knem"};
// Transports a context lists that move bytes between processes of one node by address.
constexpr std::array<std::string_view, 7> k_shared_opened{"posix", "sysv", "xpmem", "cma", "knem", "cuda_ipc", "rocm_ipc"};

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

// "tcp" of "tcp/eth0".
std::string_view transport_of(const std::string& resource) {
    return std::string_view(resource).substr(0, resource.find('/'));
}

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

dragonError_t trusted_fabric_from(const char* value, bool& out) {
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
                 "{}='{}': expected 1 (every host on the fabric is trusted: remote access over UCX may be used) or 0 "
                 "(it may not)",
                 k_trusted_fabric_env, given);
}

dragonError_t refuse_untrusted_fabric(const char* who) {
    return failf(DRAGON_INVALID_OPERATION,
                 "{}: remote access over UCX is for trusted fabrics only, and {} is not 1: UCX executes remote memory "
                 "writes from any peer on its software transports (TCP, UD: uct_tcp_ep_handle_put_req, "
                 "uct_ud_ep_rx_put) and its message reassembly trusts peers (ucp_am.c), so any host that reaches this "
                 "one's UCX ports could write anywhere in this process; set {}=1 only on a fabric where every host "
                 "is trusted",
                 who, k_trusted_fabric_env, k_trusted_fabric_env);
}

dragonError_t ucx_transports(const char* tls, bool agent, const char* who, std::string& out) {
    const std::string given = tls == nullptr ? "" : tls;
    if (!agent) {
        out = given;
        return DRAGON_SUCCESS;
    }
    if (given.empty()) {
        out = "^shm";
        return DRAGON_SUCCESS;
    }
    if (given[0] == '^') {
        out = given + ",shm";
        return DRAGON_SUCCESS;
    }
    for (std::string_view name : names_of(given))
        if (std::find(k_shared.begin(), k_shared.end(), name) != k_shared.end())
            return failf(DRAGON_INVALID_ARGUMENT,
                         "{}: UCX_TLS '{}' names '{}': the agent uses no shared-memory transport (a client's key "
                         "over one names local memory of the client's choosing); name network transports (tcp, rc, "
                         "ud, dc, ...) or unset UCX_TLS",
                         who, given, name);
    out = given;
    return DRAGON_SUCCESS;
}

dragonError_t check_opened_transports(const std::vector<std::string>& resources, bool agent, const char* who) {
    const std::string found = resources.empty() ? "none" : fmt::format("{}", fmt::join(resources, ", "));
    if (agent) {
        for (const std::string& resource : resources)
            if (std::find(k_shared_opened.begin(), k_shared_opened.end(), transport_of(resource)) != k_shared_opened.end())
                return failf(DRAGON_INVALID_OPERATION,
                             "{}: UCX opened the shared-memory transport '{}' (opened: {}); the agent uses none "
                             "(a local peer would name memory for it to read or write): check UCX_TLS",
                             who, resource, found);
    }
    for (const std::string& resource : resources) {
        const std::string_view transport = transport_of(resource);
        if (transport == "tcp") return DRAGON_SUCCESS;
        for (std::string_view verbs : {"rc_", "ud_", "dc_"})
            if (starts_with(transport, verbs)) return DRAGON_SUCCESS;
    }
    return failf(DRAGON_INVALID_OPERATION,
                 "{}: UCX has no transport here that reaches another node (opened: {}); check UCX_TLS and "
                 "UCX_NET_DEVICES",
                 who, found);
}

}  // namespace dragonmem::detail
