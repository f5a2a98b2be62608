// UCX context and worker, request waits, socket addresses (ucx_support.hpp).
#include "remote/ucx_support.hpp"

#include "descr/agent_address.hpp"
#include "os/deadline.hpp"
#include "os/error.hpp"
#include "remote/wire.hpp"

#include <netdb.h>
#include <poll.h>
#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <vector>

namespace dragonmem::detail {

namespace {
constexpr std::int64_t k_finish_limit_ns = 10'000'000'000;
constexpr unsigned k_idle_turns_before_sleep = 16;
}  // namespace

dragonError_t UcxWorker::set_handler(unsigned id, ucp_am_recv_callback_t callback, void* arg, const char* who,
                                     const char* what) {
    ucp_am_handler_param_t handler{};
    handler.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    handler.id = id;
    handler.cb = callback;
    handler.arg = arg;
    if (ucs_status_t st = ucp_worker_set_am_recv_handler(worker_, &handler); st != UCS_OK)
        return failf(DRAGON_FAILURE, "{}: setting the {} handler failed: {}", who, what, ucs_status_string(st));
    return DRAGON_SUCCESS;
}

void UcxWorker::close() noexcept {
    if (worker_ != nullptr) ucp_worker_destroy(worker_);
    if (context_ != nullptr) ucp_cleanup(context_);
    worker_ = nullptr;
    context_ = nullptr;
    event_fd_ = -1;
    idle_turns_ = 0;
}

dragonError_t trusted_fabric_now(bool& out) {
    return trusted_fabric_from(std::getenv(k_trusted_fabric_env), out);  // NOLINT(concurrency-mt-unsafe)
}

namespace {

// The transports of `context` ("transport/device"), from the listing UCX prints of it
// (the one place UCX 1.13 says which of its resources a context kept).
std::vector<std::string> context_transports(ucp_context_h context) {
    char* text = nullptr;
    std::size_t size = 0;
    FILE* stream = ::open_memstream(&text, &size);
    if (stream == nullptr) return {};
    ucp_context_print_info(context, stream);
    std::fclose(stream);
    std::vector<std::string> out;
    std::istringstream lines(std::string(text, size));
    std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): open_memstream's buffer
    // "#      resource 2  :  md 1  dev 2  flags -- tcp/eth0": the last word.
    for (std::string line; std::getline(lines, line);) {
        if (line.find(" resource ") == std::string::npos) continue;
        const std::size_t last = line.find_last_of(' ');
        if (last != std::string::npos && last + 1 < line.size()) out.push_back(line.substr(last + 1));
    }
    return out;
}

}  // namespace

dragonError_t UcxWorker::open(bool agent, const char* who) {
    close();
    bool trusted = false;
    if (dragonError_t rc = trusted_fabric_now(trusted)) return rc;
    if (!trusted) return refuse_untrusted_fabric(who);
    std::string transports;
    if (dragonError_t rc = ucx_transports(std::getenv("UCX_TLS"), agent, who, transports)) return rc;  // NOLINT(concurrency-mt-unsafe)
    ucp_config_t* config = nullptr;
    if (ucs_status_t st = ucp_config_read(nullptr, nullptr, &config); st != UCS_OK)
        return failf(DRAGON_FAILURE, "{}: reading the UCX configuration failed: {}", who, ucs_status_string(st));
    if (!transports.empty()) {
        if (ucs_status_t st = ucp_config_modify(config, "TLS", transports.c_str()); st != UCS_OK) {
            ucp_config_release(config);
            return failf(DRAGON_INVALID_ARGUMENT, "{}: UCX refuses the transports '{}': {}", who, transports,
                         ucs_status_string(st));
        }
    }
    // No zero-copy sends: with a threshold of infinity UCX copies every eager fragment
    // into its own bounce buffers, and never registers the memory being sent (a pool's
    // heap, a caller's buffer) with the network device (ucp_ep.c sets the eager zcopy
    // thresholds from ZCOPY_THRESH; UCX_PROTO_ENABLE=n, 1.13's default protocol selection).
    // Set after the environment is read: UCX_ZCOPY_THRESH cannot turn it back on.
    if (ucs_status_t st = ucp_config_modify(config, "ZCOPY_THRESH", "inf"); st != UCS_OK) {
        ucp_config_release(config);
        return failf(DRAGON_FAILURE, "{}: UCX refuses ZCOPY_THRESH=inf: {}", who, ucs_status_string(st));
    }

    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    // Active messages and wake-up only, never UCP_FEATURE_RMA: with RMA on, UCX 1.13's
    // software get/put over TCP serves any address of this process, with no key check,
    // to any peer connected (a raw UCX client read the agent's ELF header; without RMA
    // the same get went unanswered: tests/remote/raw_get.cpp checks it). The bytes move
    // as the data of active messages instead (design.md 3.4).
    params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
    const ucs_status_t init = ucp_init(&params, config, &context_);
    ucp_config_release(config);
    if (init != UCS_OK) {
        context_ = nullptr;
        return failf(DRAGON_FAILURE, "{}: ucp_init failed: {}", who, ucs_status_string(init));
    }
    // What UCX opened, not what UCX_TLS asked for: aliases and auxiliary transports
    // (rc pulls in ud) make names a poor guide.
    if (dragonError_t rc = check_opened_transports(context_transports(context_), agent, who)) {
        close();
        return rc;
    }
    ucp_worker_params_t worker_params{};
    worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;  // one thread at a time (callers hold a lock or own it)
    if (ucs_status_t st = ucp_worker_create(context_, &worker_params, &worker_); st != UCS_OK) {
        worker_ = nullptr;
        close();
        return failf(DRAGON_FAILURE, "{}: ucp_worker_create failed: {}", who, ucs_status_string(st));
    }
    if (ucp_worker_get_efd(worker_, &event_fd_) != UCS_OK) event_fd_ = -1;
    // A request travels as an active message's header: every transport must carry it.
    ucp_worker_attr_t attr{};
    attr.field_mask = UCP_WORKER_ATTR_FIELD_MAX_AM_HEADER;
    if (ucp_worker_query(worker_, &attr) == UCS_OK && attr.max_am_header < k_request_max_bytes) {
        close();
        return failf(DRAGON_FAILURE, "{}: UCX carries active-message headers of {} B at most; a request has up to {}",
                     who, attr.max_am_header, k_request_max_bytes);
    }
    return DRAGON_SUCCESS;
}

void UcxWorker::progress_or_sleep() {
    if (ucp_worker_progress(worker_) != 0) {
        idle_turns_ = 0;
        return;
    }
    // A few idle turns first (an answer already on its way costs no wake-up), then sleep:
    // spinning longer made every figure of bench/remote_bench.sh worse on 2 loaded cores
    // (8 B reads: 114 us median after 16 turns, 186 after 64, 496 after 512).
    if (++idle_turns_ < k_idle_turns_before_sleep) return;
    idle_turns_ = 0;
    if (event_fd_ < 0) {
        ::sched_yield();
        return;
    }
    if (ucp_worker_arm(worker_) != UCS_OK) return;  // BUSY: events came in meanwhile
    pollfd waiting{event_fd_, POLLIN, 0};
    ::poll(&waiting, 1, 1);  // short: callers check their deadline between turns
}

ucs_status_t wait_request(UcxWorker& ucx, ucs_status_ptr_t request, const std::optional<timespec>& deadline,
                          ucs_status_ptr_t* pending) {
    *pending = nullptr;
    if (request == nullptr) return UCS_OK;
    if (UCS_PTR_IS_ERR(request)) return UCS_PTR_STATUS(request);
    unsigned spins = 0;
    for (;;) {
        ucx.progress_or_sleep();
        const ucs_status_t st = ucp_request_check_status(request);
        if (st != UCS_INPROGRESS) {
            ucp_request_free(request);
            return st;
        }
        // The clock only every 64 turns: progress is the hot part of a short transfer.
        if (deadline && (++spins % 64) == 0 && deadline_passed(*deadline)) {
            *pending = request;
            return UCS_ERR_TIMED_OUT;
        }
    }
}

void finish_request(ucp_worker_h worker, ucs_status_ptr_t request) {
    if (request == nullptr || UCS_PTR_IS_ERR(request)) return;
    const timespec limit = deadline_after_ns(k_finish_limit_ns);
    unsigned spins = 0;
    while (ucp_request_check_status(request) == UCS_INPROGRESS) {
        ucp_worker_progress(worker);
        if ((++spins % 64) == 0 && deadline_passed(limit)) return;  // left to UCX, not freed
    }
    ucp_request_free(request);
}

void finish_request_now(ucp_worker_h worker, ucs_status_ptr_t request) {
    if (request == nullptr || UCS_PTR_IS_ERR(request)) return;
    // A no-op for a send in UCX 1.13 (the forced close before this completes those); kept
    // for a receive, which it does cancel.
    if (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_request_cancel(worker, request);
    while (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_worker_progress(worker);
    ucp_request_free(request);
}

namespace {

// One asynchronous lookup (getaddrinfo_a). Heap-held: a lookup that cannot be cancelled
// when its caller gives up still writes here, so it is then left behind, never freed.
struct Lookup {
    std::string host;
    std::string service;
    addrinfo hints{};
    gaicb request{};
};

}  // namespace

dragonError_t resolve_agent_address(const std::string& address, const char* what, bool listening,
                                    const std::optional<timespec>& deadline, sockaddr_storage& out,
                                    socklen_t& out_len) {
    std::string host;
    std::uint16_t port = 0;
    if (dragonError_t rc = split_agent_address(address, what, host, port, listening)) return rc;
    auto lookup = std::make_unique<Lookup>();
    lookup->host = host;
    lookup->service = std::to_string(port);
    lookup->hints.ai_family = AF_UNSPEC;
    lookup->hints.ai_socktype = SOCK_STREAM;
    lookup->hints.ai_flags = AI_NUMERICHOST | (listening ? AI_PASSIVE : 0);
    addrinfo* found = nullptr;
    int err = ::getaddrinfo(lookup->host.c_str(), lookup->service.c_str(), &lookup->hints, &found);
    if (err == EAI_NONAME) {
        // A name: the resolver may wait on DNS far longer than the caller's timeout.
        lookup->hints.ai_flags &= ~AI_NUMERICHOST;
        lookup->request.ar_name = lookup->host.c_str();
        lookup->request.ar_service = lookup->service.c_str();
        lookup->request.ar_request = &lookup->hints;
        gaicb* list[1] = {&lookup->request};
        err = ::getaddrinfo_a(GAI_NOWAIT, list, 1, nullptr);
        while (err == 0 && (err = ::gai_error(&lookup->request)) == EAI_INPROGRESS) {
            timespec wait{0, 100'000'000};
            if (deadline) {
                const std::int64_t left = ns_between(now_monotonic(), *deadline);
                if (left <= 0) {
                    if (::gai_cancel(&lookup->request) == EAI_NOTCANCELED) static_cast<void>(lookup.release());  // NOLINT(bugprone-unused-return-value)
                    else if (::gai_error(&lookup->request) == 0) ::freeaddrinfo(lookup->request.ar_result);
                    return failf(DRAGON_TIMEOUT, "{} '{}': looking up host '{}' timed out", what, address, host);
                }
                if (left < 100'000'000) wait.tv_nsec = left;
            }
            const gaicb* const waiting[1] = {&lookup->request};
            ::gai_suspend(waiting, 1, &wait);
            err = 0;
        }
        found = lookup->request.ar_result;
    }
    if (err != 0 || found == nullptr)
        return failf(DRAGON_NOT_FOUND, "{} '{}': host '{}' does not resolve: {}", what, address, host,
                     ::gai_strerror(err));
    std::memcpy(&out, found->ai_addr, found->ai_addrlen);
    out_len = found->ai_addrlen;
    ::freeaddrinfo(found);
    return DRAGON_SUCCESS;
}

std::string format_sockaddr(const sockaddr* address, socklen_t length) {
    char host[NI_MAXHOST];
    char service[NI_MAXSERV];
    if (::getnameinfo(address, length, host, sizeof host, service, sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    if (address->sa_family == AF_INET6) return std::string("[") + host + "]:" + service;
    return std::string(host) + ":" + service;
}

}  // namespace dragonmem::detail
