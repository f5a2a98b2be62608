// A raw UCX client with one-sided access (UCP_FEATURE_RMA), as an attacker would write
// one: it connects to HOST:PORT and tries ucp_get_nbx of 64 bytes at ADDRESS with a key
// of its own making (over TCP, UCX 1.13 checks none). The agent's UCX offers no
// one-sided access, so this must never return bytes.
//   raw_get HOST PORT ADDRESS   exit 0: no bytes came back (the get failed or timed out,
//                                       or the connection failed); 1: bytes came back
//   raw_get --control           the same get against a listener of its own, on
//                               127.0.0.1 in the same context (RMA on): bytes must come
//                               back (exit 1), which shows the probe can see a read
// Exit 2: the probe could not run (a UCX call failed). remote_test.sh runs both.
#include <ucp/api/ucp.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

ucs_status_t g_failure = UCS_OK;
std::vector<ucp_conn_request_h> g_connections;
const char k_marker[64] = "raw_get control: these bytes were read one-sided";

void on_error(void* /*arg*/, ucp_ep_h /*ep*/, ucs_status_t status) { g_failure = status; }
void on_connection(ucp_conn_request_h request, void* /*arg*/) { g_connections.push_back(request); }

int fail(const char* what, ucs_status_t st) {
    std::printf("raw_get: %s: %s\n", what, ucs_status_string(st));
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    const bool control = argc == 2 && std::strcmp(argv[1], "--control") == 0;
    if (!control && argc != 4) {
        std::fprintf(stderr, "usage: raw_get HOST PORT ADDRESS | raw_get --control\n");
        return 2;
    }
    ucp_config_t* config = nullptr;
    if (ucs_status_t st = ucp_config_read(nullptr, nullptr, &config); st != UCS_OK) return fail("config", st);
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM;
    ucp_context_h context = nullptr;
    ucs_status_t st = ucp_init(&params, config, &context);
    ucp_config_release(config);
    if (st != UCS_OK) return fail("ucp_init", st);
    ucp_worker_params_t worker_params{};
    worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;
    ucp_worker_h worker = nullptr;
    if (st = ucp_worker_create(context, &worker_params, &worker); st != UCS_OK) return fail("ucp_worker_create", st);

    sockaddr_in address{};
    address.sin_family = AF_INET;
    std::uint64_t target = 0;
    if (control) {
        // Our own listener: the peer's memory is ours, and RMA is on at both ends.
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
        ucp_listener_params_t listen{};
        listen.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
        listen.sockaddr.addr = reinterpret_cast<const sockaddr*>(&address);
        listen.sockaddr.addrlen = sizeof address;
        listen.conn_handler.cb = &on_connection;
        ucp_listener_h listener = nullptr;
        if (st = ucp_listener_create(worker, &listen, &listener); st != UCS_OK) return fail("ucp_listener_create", st);
        ucp_listener_attr_t attr{};
        attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
        if (st = ucp_listener_query(listener, &attr); st != UCS_OK) return fail("ucp_listener_query", st);
        address.sin_port = reinterpret_cast<const sockaddr_in*>(&attr.sockaddr)->sin_port;
        target = reinterpret_cast<std::uintptr_t>(k_marker);
    } else {
        if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1) return fail("HOST is not an IPv4 address", UCS_ERR_INVALID_PARAM);
        address.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[2])));
        target = std::strtoull(argv[3], nullptr, 0);
    }

    ucp_ep_params_t ep_params{};
    ep_params.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                           UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep_params.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
    ep_params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&address);
    ep_params.sockaddr.addrlen = sizeof address;
    ep_params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep_params.err_handler.cb = &on_error;
    ucp_ep_h ep = nullptr;
    if (st = ucp_ep_create(worker, &ep_params, &ep); st != UCS_OK) {
        std::printf("no bytes: connecting failed: %s\n", ucs_status_string(st));
        return 0;
    }
    // A key of our own making: our buffer's, unpacked as if it were the peer's.
    static char buffer[4096];
    ucp_mem_map_params_t map{};
    map.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    map.address = buffer;
    map.length = sizeof buffer;
    ucp_mem_h memh = nullptr;
    if (st = ucp_mem_map(context, &map, &memh); st != UCS_OK) return fail("ucp_mem_map", st);
    void* packed = nullptr;
    std::size_t packed_bytes = 0;
    if (st = ucp_rkey_pack(context, memh, &packed, &packed_bytes); st != UCS_OK) return fail("ucp_rkey_pack", st);

    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::steady_clock::now() - start; };
    ucp_rkey_h rkey = nullptr;
    ucs_status_ptr_t get = nullptr;
    ucs_status_ptr_t flush = nullptr;
    bool posted = false;
    std::memset(buffer, 0, sizeof buffer);
    while (elapsed() < std::chrono::seconds(8)) {
        ucp_worker_progress(worker);
        for (ucp_conn_request_h request : g_connections) {  // --control: accept our own connection
            ucp_ep_params_t accept{};
            accept.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
            accept.conn_request = request;
            ucp_ep_h server_ep = nullptr;
            if (ucp_ep_create(worker, &accept, &server_ep) != UCS_OK) return fail("accepting", UCS_ERR_IO_ERROR);
        }
        g_connections.clear();
        if (g_failure != UCS_OK) {
            std::printf("no bytes: the endpoint failed: %s\n", ucs_status_string(g_failure));
            return 0;
        }
        if (!posted) {
            // Unpacked on the endpoint once it is wired up (it may need the peer's transports).
            if (st = ucp_ep_rkey_unpack(ep, packed, &rkey); st != UCS_OK) {
                std::printf("no bytes: the key does not unpack on this endpoint: %s\n", ucs_status_string(st));
                return 0;
            }
            ucp_request_param_t none{};
            get = ucp_get_nbx(ep, buffer, 64, target, rkey, &none);
            if (UCS_PTR_IS_ERR(get)) {
                std::printf("no bytes: ucp_get_nbx failed at once: %s\n", ucs_status_string(UCS_PTR_STATUS(get)));
                return 0;
            }
            flush = ucp_ep_flush_nbx(ep, &none);
            posted = true;
        }
        const ucs_status_t get_st = get == nullptr ? UCS_OK : ucp_request_check_status(get);
        const ucs_status_t flush_st = flush == nullptr ? UCS_OK : ucp_request_check_status(flush);
        if (UCS_PTR_IS_ERR(flush) || (get_st != UCS_INPROGRESS && get_st != UCS_OK) ||
            (flush_st != UCS_INPROGRESS && flush_st != UCS_OK)) {
            std::printf("no bytes: the get failed: %s\n", ucs_status_string(get_st != UCS_OK ? get_st : flush_st));
            return 0;
        }
        if (get_st == UCS_OK && flush_st == UCS_OK) {
            std::printf("BYTES came back from %#llx: '%.48s' (first bytes %02x %02x %02x %02x)\n",
                        static_cast<unsigned long long>(target), buffer, static_cast<unsigned char>(buffer[0]),
                        static_cast<unsigned char>(buffer[1]), static_cast<unsigned char>(buffer[2]),
                        static_cast<unsigned char>(buffer[3]));
            return 1;
        }
    }
    std::printf("no bytes: the get did not complete within 8 s\n");
    return 0;  // the process exits with UCX objects alive: the probe is done with them
}
