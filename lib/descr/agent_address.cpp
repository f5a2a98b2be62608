// Agent addresses: syntax, splitting, and DRAGONMEM_AGENT at serialize time (agent_address.hpp).
#include "descr/agent_address.hpp"

#include "descr/descriptor_codec.hpp"
#include "os/error.hpp"

#include <charconv>
#include <cstdlib>

namespace dragonmem::detail {

namespace {

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == '_';
}

bool is_ipv6_char(char c) {
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' || c == '.';
}

}  // namespace

dragonError_t split_agent_address(std::string_view address, const char* what, std::string& host, std::uint16_t& port,
                                  bool port_zero_ok) {
    auto bad = [&](const char* why) {
        return failf(DRAGON_INVALID_ARGUMENT, "{} '{}' is not HOST:PORT: {}", what, address, why);
    };
    if (address.empty()) return bad("it is empty");
    if (address.size() > k_agent_address_max) return bad("longer than 63 characters");
    const std::size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad("no ':PORT'");
    std::string_view host_part = address.substr(0, colon);
    const std::string_view port_part = address.substr(colon + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
    if (port_part.empty() || ec != std::errc() || end != port_part.data() + port_part.size() ||
        (value == 0 && !port_zero_ok) || value > 65535)
        return bad(port_zero_ok ? "the port is not a number in 0..65535" : "the port is not a number in 1..65535");
    if (host_part.size() >= 2 && host_part.front() == '[' && host_part.back() == ']') {
        host_part = host_part.substr(1, host_part.size() - 2);
        if (host_part.empty()) return bad("the IPv6 address in brackets is empty");
        for (char c : host_part)
            if (!is_ipv6_char(c)) return bad("the IPv6 address has a character that is not hex, ':' or '.'");
    } else {
        if (host_part.empty()) return bad("the host is empty");
        for (char c : host_part)
            if (!is_name_char(c)) return bad("the host has a character outside A-Z a-z 0-9 . - _ (IPv6 goes in [])");
    }
    host.assign(host_part);
    port = static_cast<std::uint16_t>(value);
    return DRAGON_SUCCESS;
}

dragonError_t validate_agent_address(std::string_view address, const char* what) {
    std::string host;
    std::uint16_t port = 0;
    return split_agent_address(address, what, host, port);
}

dragonError_t identity_to_serialize(const PoolIdentity& pool, bool local, bool with_secret, PoolIdentity& out) {
    out = pool;
    if (!with_secret) {
        out.secret = {};
        out.agent.clear();
        return DRAGON_SUCCESS;
    }
    if (!local) return DRAGON_SUCCESS;
    const char* agent = std::getenv(k_agent_env);  // NOLINT(concurrency-mt-unsafe): read-only use of the environment
    if (agent == nullptr || *agent == '\0') return DRAGON_SUCCESS;
    if (dragonError_t rc = validate_agent_address(agent, "DRAGONMEM_AGENT")) {
        const std::string why = last_error_message();
        return failf(rc, "serializing a descriptor of pool '{}': {}", pool.name, why);
    }
    out.agent = agent;
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
