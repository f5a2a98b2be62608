// Off-node access, the parts one process can test: the pool's secret and the agent's
// address in descriptors (format 2, format 1 still read), DRAGONMEM_AGENT at serialize
// time, <dragonmem/remote.h> / remote.hpp on local allocations and on remote
// descriptors that cannot be served, and the agent's control messages. The two-host
// tests (an agent and clients in two network namespaces) are tests/remote/.
#include "testing.hpp"

#include "descr/descriptor_codec.hpp"
#include "pool/pool_name.hpp"
#include "pool/pool_peek.hpp"
#include "remote/remote_client.hpp"
#include "remote/agent_transports.hpp"
#include "remote/wire.hpp"

#include <dragonmem/dragonmem.hpp>
#include <dragonmem/remote.h>
#include <dragonmem/remote.hpp>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef DMTEST_HAVE_UCX
#include "remote/ucx_support.hpp"

#include <ucp/api/ucp.h>
#endif

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <condition_variable>
#include <future>
#include <map>
#include <set>
#include <mutex>
#include <cstdlib>
#include <cstring>
#include <span>
#include <thread>
#include <tuple>

using namespace dmtest;
namespace dd = dragonmem::detail;

TEST_SUITE_BEGIN("remote");

namespace {

// Sets (or, with nullptr, unsets) environment variable `name` for one test, then puts it back.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) saved_ = old;
        if (value != nullptr) ::setenv(name, value, 1);
        else ::unsetenv(name);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;
    ~ScopedEnv() {
        if (saved_) ::setenv(name_.c_str(), saved_->c_str(), 1);
        else ::unsetenv(name_.c_str());
    }

private:
    std::string name_;
    std::optional<std::string> saved_;
};

// DRAGONMEM_AGENT for one test.
class AgentEnv : public ScopedEnv {
public:
    explicit AgentEnv(const char* value) : ScopedEnv("DRAGONMEM_AGENT", value) {}
};

// DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 for one test: UCX is used only on a fabric the
// operator states trusted (agent_transports.hpp says why); these tests run on 127.0.0.1.
class TrustedFabric : public ScopedEnv {
public:
    TrustedFabric() : ScopedEnv(dd::k_trusted_fabric_env, "1") {}
};

// Whether UCX can reach another node from here, decided once: UCX's TCP transport finds
// its interfaces in /sys/class/net, and a machine without /sys (a chroot that mounts only
// /proc and /dev) has no transport that leaves the node, so no agent starts. The cases that
// need one are skipped there (doctest::skip); the refusal itself is checked by "remote
// descriptors that name no agent..." below, whichever way this goes.
bool network_missing() {
    static const bool missing = [] {
        DIR* net = ::opendir("/sys/class/net");
        if (net != nullptr) ::closedir(net);
        return net == nullptr;
    }();
    return missing;
}

dd::PoolIdentity decoded_pool(const std::vector<std::uint8_t>& bytes) {
    dd::PoolIdentity identity;
    const dragonError_t rc = dd::decode_pool(bytes, identity);
    REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, last_error());
    return identity;
}

bool all_zero(const std::array<std::uint8_t, 16>& secret) {
    return std::all_of(secret.begin(), secret.end(), [](std::uint8_t b) { return b == 0; });
}

// The format-1 form of a format-2 descriptor: the secret and agent cut out.
std::vector<std::uint8_t> as_format_1(std::vector<std::uint8_t> bytes) {
    const std::size_t name_end = 58 + bytes[57];
    const std::size_t tail = name_end + 16 + 1 + bytes[name_end + 16];
    bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(name_end), bytes.begin() + static_cast<std::ptrdiff_t>(tail));
    bytes[4] = 1;
    bytes[5] = 0;
    reseal(bytes);
    return bytes;
}

// The same descriptor, said to come from another host (and re-sealed): it attaches as remote.
std::vector<std::uint8_t> from_other_host(std::vector<std::uint8_t> bytes) {
    bytes[16] ^= 0x5a;
    reseal(bytes);
    return bytes;
}

}  // namespace

TEST_CASE("every pool has its own random secret, carried by its pool and memory descriptors") {
    AgentEnv no_agent(nullptr);
    TestPool a(65536);
    TestPool b(65536);
    const dd::PoolIdentity ia = decoded_pool(serialize_pool(a.pd()));
    const dd::PoolIdentity ib = decoded_pool(serialize_pool(b.pd()));
    CHECK(!all_zero(ia.secret));
    CHECK(ia.secret != ib.secret);
    CHECK(ia.agent.empty());
    CHECK(decoded_pool(serialize_pool(a.pd())).secret == ia.secret);  // the pool's, not the call's
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, a.pd(), 100));
    dd::DecodedMemory decoded;
    DM_REQUIRE_OK(dd::decode_memory(serialize_mem(&mem), decoded));
    CHECK(decoded.pool.secret == ia.secret);
    CHECK(decoded.id == mem_id(&mem));
}

TEST_CASE("DRAGONMEM_AGENT at serialize time is carried by the descriptor and survives re-serialization") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 64));
    std::vector<std::uint8_t> mem_bytes;
    {
        AgentEnv agent("10.1.2.3:7070");
        CHECK(decoded_pool(serialize_pool(pool.pd())).agent == "10.1.2.3:7070");
        mem_bytes = serialize_mem(&mem);
    }
    for (const char* address : {"node-7.cluster_a:1", "[fd00::1]:65535", "localhost:9"}) {
        AgentEnv agent(address);
        CHECK(decoded_pool(serialize_pool(pool.pd())).agent == address);
    }
    AgentEnv none(nullptr);
    dd::DecodedMemory decoded;
    DM_REQUIRE_OK(dd::decode_memory(mem_bytes, decoded));
    CHECK(decoded.pool.agent == "10.1.2.3:7070");
    // A remote descriptor keeps its agent when serialized again, wherever that happens.
    dragonMemorySerial_t ser{};
    const auto remote = from_other_host(mem_bytes);
    ser.len = remote.size();
    ser.data = const_cast<std::uint8_t*>(remote.data());
    dragonMemoryDescr_t attached{};
    DM_REQUIRE_OK(dragon_memory_attach(&attached, &ser));
    DM_REQUIRE_OK(dd::decode_memory(serialize_mem(&attached), decoded));
    CHECK(decoded.pool.agent == "10.1.2.3:7070");
    DM_CHECK_OK(dragon_memory_detach(&attached));
}

TEST_CASE("an invalid DRAGONMEM_AGENT fails serialize with INVALID_ARGUMENT naming it; the pool is unchanged") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 64));
    const PoolState before = pool_state(pool.pd());
    const std::string too_long = std::string(60, 'h') + ":7070";
    for (const std::string& bad : {std::string("nohost"), std::string("host:"), std::string(":7070"),
                                   std::string("host:0"), std::string("host:65536"), std::string("host:12x"),
                                   std::string("a b:1"), std::string("[zz::1]:1"), std::string("[]:1"), too_long}) {
        CAPTURE(bad);
        AgentEnv agent(bad.c_str());
        dragonMemoryPoolSerial_t pser{};
        DM_CHECK_RC(dragon_memory_pool_serialize(&pser, pool.pd()), DRAGON_INVALID_ARGUMENT);
        CHECK(last_error().find("DRAGONMEM_AGENT") != std::string::npos);
        CHECK(last_error().find(bad) != std::string::npos);
        dragonMemorySerial_t mser{};
        DM_CHECK_RC(dragon_memory_serialize(&mser, &mem), DRAGON_INVALID_ARGUMENT);
    }
    CHECK(pool_state(pool.pd()) == before);
}

TEST_CASE("format-1 descriptors (no secret, no agent) still attach, and serialize as format 1 again") {
    AgentEnv none(nullptr);
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    const auto v1 = as_format_1(serialize_mem(&mem));
    dd::DecodedMemory decoded;
    DM_REQUIRE_OK(dd::decode_memory(v1, decoded));
    CHECK(all_zero(decoded.pool.secret));
    CHECK(decoded.pool.agent.empty());
    CHECK(dd::encode_memory(decoded) == v1);
    // Local: attaches and reaches the same bytes.
    dragonMemorySerial_t ser{v1.size(), const_cast<std::uint8_t*>(v1.data())};
    dragonMemoryDescr_t attached{};
    DM_REQUIRE_OK(dragon_memory_attach(&attached, &ser));
    CHECK(mem_pointer(&attached) == mem_pointer(&mem));
    DM_CHECK_OK(dragon_memory_detach(&attached));
    const auto pool_v1 = as_format_1(serialize_pool(pool.pd()));
    dd::PoolIdentity identity = decoded_pool(pool_v1);
    CHECK(all_zero(identity.secret));
    CHECK(dd::encode_pool(identity) == pool_v1);
}

TEST_CASE("format-2 descriptors with an all-zero secret or a malformed agent are INVALID_ARGUMENT") {
    AgentEnv agent("10.0.0.1:7070");
    TestPool pool(65536);
    const auto good = serialize_pool(pool.pd());
    const std::size_t secret_at = 58 + good[57];
    auto zero = good;
    std::fill(zero.begin() + static_cast<std::ptrdiff_t>(secret_at),
              zero.begin() + static_cast<std::ptrdiff_t>(secret_at + 16), 0);
    reseal(zero);
    dd::PoolIdentity out;
    DM_CHECK_RC(dd::decode_pool(zero, out), DRAGON_INVALID_ARGUMENT);
    CHECK(last_error().find("all-zero secret") != std::string::npos);
    auto bad_agent = good;
    bad_agent[secret_at + 17] = ' ';  // "10.0.0.1:7070" -> " 0.0.0.1:7070"
    reseal(bad_agent);
    DM_CHECK_RC(dd::decode_pool(bad_agent, out), DRAGON_INVALID_ARGUMENT);
    CHECK(last_error().find("agent address") != std::string::npos);
    auto long_agent = good;
    long_agent[secret_at + 16] = 200;  // an agent length running past the end
    reseal(long_agent);
    DM_CHECK_RC(dd::decode_pool(long_agent, out), DRAGON_INVALID_ARGUMENT);
}

TEST_CASE("dragonmem_memory_read and _write copy a local allocation's bytes; out of range moves nothing") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    std::memset(p, 0, 100);
    const unsigned char hello[] = "hello";
    DM_REQUIRE_OK(dragonmem_memory_write(&mem, 10, hello, 5, nullptr));
    CHECK(std::memcmp(p + 10, "hello", 5) == 0);
    unsigned char back[8] = {};
    const timespec_t second{1, 0};
    DM_REQUIRE_OK(dragonmem_memory_read(&mem, 9, back, 7, &second));
    CHECK(std::memcmp(back, "\0hello\0", 7) == 0);
    // A view: offsets are the view's.
    dragonMemoryDescr_t view{};
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 10, nullptr));
    DM_REQUIRE_OK(dragonmem_memory_read(&view, 0, back, 5, nullptr));
    CHECK(std::memcmp(back, "hello", 5) == 0);
    // Out of range, NULL buffers, bad timeouts: INVALID_ARGUMENT, nothing written.
    unsigned char snapshot[100];
    std::memcpy(snapshot, p, 100);
    DM_CHECK_RC(dragonmem_memory_write(&mem, 96, hello, 5, nullptr), DRAGON_INVALID_ARGUMENT);
    CHECK(last_error().find("do not fit the 100 B view") != std::string::npos);
    DM_CHECK_RC(dragonmem_memory_write(&view, 86, hello, 5, nullptr), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragonmem_memory_read(&mem, 101, back, 0, nullptr), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragonmem_memory_read(&mem, SIZE_MAX, back, 2, nullptr), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragonmem_memory_write(&mem, 0, nullptr, 5, nullptr), DRAGON_INVALID_ARGUMENT);
    const timespec_t negative{-1, 0};
    DM_CHECK_RC(dragonmem_memory_read(&mem, 0, back, 1, &negative), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_RC(dragonmem_memory_read(nullptr, 0, back, 1, nullptr), DRAGON_INVALID_ARGUMENT);
    CHECK(std::memcmp(snapshot, p, 100) == 0);
    // Freed: the manifest says so.
    DM_REQUIRE_OK(dragon_memory_free(&mem));
    DM_CHECK_RC(dragonmem_memory_read(&view, 0, back, 1, nullptr), DRAGON_KEY_NOT_FOUND);
}

TEST_CASE("read_bytes and write_bytes (C++) on a local allocation") {
    TestPool pool(65536);
    dragonmem::Pool cxx = dragonmem::Pool::attach(serialize_pool(pool.pd()));
    dragonmem::Memory memory = cxx.alloc(64);
    const std::array<std::byte, 3> in{std::byte{1}, std::byte{2}, std::byte{3}};
    dragonmem::write_bytes(memory, 61, in);
    std::array<std::byte, 3> out{};
    dragonmem::read_bytes(memory, 61, out);
    CHECK(out == in);
    CHECK_THROWS_AS(dragonmem::write_bytes(memory, 62, in), dragonmem::Error);
    try {
        dragonmem::read_bytes(memory, 62, out);
    } catch (const dragonmem::Error& e) {
        CHECK(e.code() == DRAGON_INVALID_ARGUMENT);
    }
    memory.free();
}

TEST_CASE("remote descriptors that name no agent, or carry no secret, cannot be read; with one, the error is clear") {
    TrustedFabric trusted;
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    unsigned char buffer[4] = {};
    auto attach_remote = [](const std::vector<std::uint8_t>& bytes, dragonMemoryDescr_t& out) {
        dragonMemorySerial_t ser{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
        DM_REQUIRE_OK(dragon_memory_attach(&out, &ser));
    };
    {
        AgentEnv none(nullptr);
        dragonMemoryDescr_t remote{};
        attach_remote(from_other_host(serialize_mem(&mem)), remote);
        DM_CHECK_RC(dragonmem_memory_read(&remote, 0, buffer, 4, nullptr),
                    DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL);
        CHECK(last_error().find("names no agent") != std::string::npos);
        dragonMemoryDescr_t old{};
        attach_remote(from_other_host(as_format_1(serialize_mem(&mem))), old);
        DM_CHECK_RC(dragonmem_memory_write(&old, 0, buffer, 4, nullptr), DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL);
        CHECK(last_error().find("format 1") != std::string::npos);
        DM_CHECK_OK(dragon_memory_detach(&remote));
        DM_CHECK_OK(dragon_memory_detach(&old));
    }
    // An agent nobody listens on (port 1 of this host): an error, never a hang.
    AgentEnv agent("127.0.0.1:1");
    dragonMemoryDescr_t remote{};
    attach_remote(from_other_host(serialize_mem(&mem)), remote);
    const timespec_t limit{10, 0};
    const dragonError_t rc = dragonmem_memory_read(&remote, 0, buffer, 4, &limit);
    if (dragonmem_remote_available() != 0 && network_missing()) {
        MESSAGE("no /sys/class/net: UCX opens no transport that reaches another node, and says so; "
                "the cases that need an agent are skipped");
        CHECK(rc == DRAGON_INVALID_OPERATION);
        CHECK(last_error().find("no transport here that reaches another node") != std::string::npos);
    } else if (dragonmem_remote_available() != 0) {
        CHECK((rc == DRAGON_FAILURE || rc == DRAGON_TIMEOUT));
        CHECK(last_error().find("agent 127.0.0.1:1") != std::string::npos);
    } else {
        CHECK(rc == DRAGON_NOT_IMPLEMENTED);
        CHECK(last_error().find("without UCX") != std::string::npos);
    }
    // Out of the view is refused before anything is sent.
    DM_CHECK_RC(dragonmem_memory_read(&remote, 98, buffer, 4, &limit), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_OK(dragon_memory_detach(&remote));
    if (dragonmem_remote_available() == 0 || network_missing()) return;
    // A host name goes through the bounded lookup (getaddrinfo_a): a clear error either
    // way, within the call's timeout.
    for (const char* named : {"localhost:1", "no-such-host.invalid:7070"}) {
        CAPTURE(named);
        AgentEnv by_name(named);
        dragonMemoryDescr_t remote_named{};
        attach_remote(from_other_host(serialize_mem(&mem)), remote_named);
        const timespec_t short_limit{3, 0};
        const auto start = std::chrono::steady_clock::now();
        const dragonError_t named_rc = dragonmem_memory_read(&remote_named, 0, buffer, 4, &short_limit);
        CHECK((named_rc == DRAGON_FAILURE || named_rc == DRAGON_TIMEOUT || named_rc == DRAGON_NOT_FOUND));
        CHECK(last_error().find(named) != std::string::npos);
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));  // bounded, generously on a loaded machine
        DM_CHECK_OK(dragon_memory_detach(&remote_named));
    }
}

// A TCP port that accepts connections (the kernel's backlog) and never answers: an agent
// that hangs. Closed with the test.
class SilentListener {
public:
    SilentListener() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port_ = ntohs(address.sin_port);
    }
    SilentListener(const SilentListener&) = delete;
    SilentListener& operator=(const SilentListener&) = delete;
    ~SilentListener() { ::close(fd_); }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

private:
    int fd_ = -1;
    unsigned port_ = 0;
};

TEST_CASE("a remote call's timeout holds while another thread's call to a hung agent runs" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;  // built without UCX: nothing is waited for
    TrustedFabric trusted;
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    SilentListener hung;
    AgentEnv agent(hung.address().c_str());
    dragonMemorySerial_t ser{};
    const auto bytes = from_other_host(serialize_mem(&mem));
    ser.len = bytes.size();
    ser.data = const_cast<std::uint8_t*>(bytes.data());
    dragonMemoryDescr_t remote{};
    DM_REQUIRE_OK(dragon_memory_attach(&remote, &ser));
    // The long call holds the process's client for up to 8 s; the short one, started
    // while it waits, must give up after its own 0.3 s (TIMEOUT), not after the long one.
    std::atomic<int> finished{0};
    int long_order = 0;
    int short_order = 0;
    dragonError_t long_rc = DRAGON_SUCCESS;
    dragonError_t short_rc = DRAGON_SUCCESS;
    std::thread long_call([&] {
        unsigned char buffer[4];
        const timespec_t limit{8, 0};
        long_rc = dragonmem_memory_read(&remote, 0, buffer, 4, &limit);
        long_order = ++finished;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the long call is waiting by now
    std::thread short_call([&] {
        unsigned char buffer[4];
        const timespec_t limit{0, 300'000'000};
        short_rc = dragonmem_memory_read(&remote, 0, buffer, 4, &limit);
        short_order = ++finished;
    });
    short_call.join();
    long_call.join();
    CHECK(short_rc == DRAGON_TIMEOUT);
    CHECK(long_rc == DRAGON_TIMEOUT);
    CHECK(short_order == 1);  // it did not wait for the long call to end
    DM_CHECK_OK(dragon_memory_detach(&remote));
}

TEST_CASE("the agent's messages round-trip, and malformed requests are INVALID_ARGUMENT") {
    dd::AccessRequest request;
    request.access = dd::Access::write;
    request.sequence = 42;
    request.nonce = 0x1234;
    request.id = 99;
    request.offset = 7;
    request.length = 1 << 20;
    request.secret.fill(0xab);
    request.pool_name = "pool_1";
    const auto bytes = dd::encode_request(request);
    CHECK(bytes.size() == dd::k_request_fixed_bytes + 6);
    dd::AccessRequest back;
    DM_REQUIRE_OK(dd::decode_request(bytes, back));
    CHECK(back.access == request.access);
    CHECK(back.sequence == 42);
    CHECK(back.nonce == 0x1234);
    CHECK(back.id == 99);
    CHECK(back.offset == 7);
    CHECK(back.length == request.length);
    CHECK(back.secret == request.secret);
    CHECK(back.pool_name == "pool_1");
    for (std::size_t cut : {std::size_t{0}, std::size_t{10}, std::size_t{65}, bytes.size() - 1}) {
        CAPTURE(cut);
        DM_CHECK_RC(dd::decode_request(std::span(bytes.data(), cut), back), DRAGON_INVALID_ARGUMENT);
    }
    auto longer = bytes;
    longer.push_back(0);
    DM_CHECK_RC(dd::decode_request(longer, back), DRAGON_INVALID_ARGUMENT);
    auto bad_access = bytes;
    bad_access[6] = 3;
    DM_CHECK_RC(dd::decode_request(bad_access, back), DRAGON_INVALID_ARGUMENT);
    auto bad_magic = bytes;
    bad_magic[0] ^= 1;
    DM_CHECK_RC(dd::decode_request(bad_magic, back), DRAGON_INVALID_ARGUMENT);
    for (std::uint8_t old : {std::uint8_t{1}, std::uint8_t{2}}) {
        // 1: an rkey to pool memory in the reply; 2: the client's buffer key in the request
        auto old_version = bytes;
        old_version[4] = old;
        DM_CHECK_RC(dd::decode_request(old_version, back), DRAGON_INVALID_ARGUMENT);
        CHECK(last_error().find("version") != std::string::npos);
    }
    auto bad_name = bytes;
    bad_name[65 + 5] = '/';
    DM_CHECK_RC(dd::decode_request(bad_name, back), DRAGON_INVALID_ARGUMENT);
    auto long_name = bytes;
    long_name[64] = 7;  // says one more byte of name than there is
    DM_CHECK_RC(dd::decode_request(long_name, back), DRAGON_INVALID_ARGUMENT);

    dd::AccessReply reply;
    reply.sequence = 42;
    reply.rc = DRAGON_KEY_NOT_FOUND;
    dd::AccessReply reply_back;
    const auto reply_bytes = dd::encode_reply(reply);
    DM_REQUIRE_OK(dd::decode_reply(reply_bytes, reply_back));
    CHECK(reply_back.sequence == 42);
    CHECK(reply_back.rc == DRAGON_KEY_NOT_FOUND);
    CHECK(dd::decode_reply(std::span(reply_bytes.data(), reply_bytes.size() - 1), reply_back) == DRAGON_FAILURE);
    auto old_reply = reply_bytes;
    old_reply[4] = 2;
    CHECK(dd::decode_reply(old_reply, reply_back) == DRAGON_FAILURE);
}

TEST_CASE("peek_pool reads a pool's instance and secret without attaching; anything else is false") {
    TestPool pool(1 << 20);
    const dd::PoolIdentity identity = decoded_pool(serialize_pool(pool.pd()));
    dd::PeekedPool peeked;
    REQUIRE(dd::peek_pool(identity.name, peeked));
    CHECK(peeked.nonce == identity.nonce);
    CHECK(std::equal(peeked.secret.begin(), peeked.secret.end(), identity.secret.begin()));
    CHECK_FALSE(dd::peek_pool(identity.name + "_none", peeked));  // no such object
    CHECK_FALSE(dd::peek_pool("bad/name", peeked));
    // An object that is no pool (all zeros: a creator still formatting), and one too short.
    for (const std::size_t bytes : {std::size_t{1} << 16, std::size_t{100}}) {
        CAPTURE(bytes);
        const std::string name = identity.name + "_z";
        const std::string shm = dd::shm_name_for(name);
        const int fd = ::shm_open(shm.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        REQUIRE(fd >= 0);
        CHECK(::ftruncate(fd, static_cast<off_t>(bytes)) == 0);
        ::close(fd);
        CHECK_FALSE(dd::peek_pool(name, peeked));
        ::shm_unlink(shm.c_str());
    }
}

TEST_CASE("the agent leaves out UCX's shared-memory transports") {
    std::string tls;
    DM_CHECK_OK(dd::ucx_transports(nullptr, true, "serve", tls));
    CHECK(tls == "^shm");
    DM_CHECK_OK(dd::ucx_transports("", true, "serve", tls));
    CHECK(tls == "^shm");
    DM_CHECK_OK(dd::ucx_transports("^ib", true, "serve", tls));
    CHECK(tls == "^ib,shm");
    DM_CHECK_OK(dd::ucx_transports("rc_x,ud,self", true, "serve", tls));
    CHECK(tls == "rc_x,ud,self");
    DM_CHECK_OK(dd::ucx_transports("tcp", true, "serve", tls));
    CHECK(tls == "tcp");
    for (const char* bad : {"tcp,cma", "all", "posix", "sm,tcp", "tcp,sysv", "xpmem", "knem", "mm", "shm"}) {
        CAPTURE(bad);
        DM_CHECK_RC(dd::ucx_transports(bad, true, "serve", tls), DRAGON_INVALID_ARGUMENT);
        CHECK(last_error().find("UCX_TLS") != std::string::npos);
        CHECK(last_error().find(bad) != std::string::npos);
    }
    // The client keeps UCX's configuration.
    DM_CHECK_OK(dd::ucx_transports(nullptr, false, "remote access", tls));
    CHECK(tls.empty());
    DM_CHECK_OK(dd::ucx_transports("tcp,self", false, "remote access", tls));
    CHECK(tls == "tcp,self");
}

TEST_CASE("remote access only with DRAGONMEM_REMOTE_TRUSTED_FABRIC=1, on every transport") {
    bool trusted = true;
    DM_CHECK_OK(dd::trusted_fabric_from(nullptr, trusted));
    CHECK_FALSE(trusted);
    DM_CHECK_OK(dd::trusted_fabric_from("", trusted));
    CHECK_FALSE(trusted);
    DM_CHECK_OK(dd::trusted_fabric_from("0", trusted));
    CHECK_FALSE(trusted);
    DM_CHECK_OK(dd::trusted_fabric_from("1", trusted));
    CHECK(trusted);
    for (const char* bad : {"yes", "true", "2", " 1", "1 "}) {
        CAPTURE(bad);
        DM_CHECK_RC(dd::trusted_fabric_from(bad, trusted), DRAGON_INVALID_ARGUMENT);
        CHECK(last_error().find(std::string("DRAGONMEM_REMOTE_TRUSTED_FABRIC='") + bad + "'") != std::string::npos);
    }
    DM_CHECK_RC(dd::refuse_untrusted_fabric("remote access"), DRAGON_INVALID_OPERATION);
    CHECK(last_error().find("remote access: ") == 0);
    CHECK(last_error().find("DRAGONMEM_REMOTE_TRUSTED_FABRIC=1") != std::string::npos);
    CHECK(last_error().find("executes remote memory writes from any peer") != std::string::npos);
    CHECK(last_error().find("reassembly trusts peers") != std::string::npos);
}

TEST_CASE("the transports UCX opened are checked: one that reaches another node; none of shared memory for the agent") {
    const std::vector<std::string> verbs{"self/memory", "rc_mlx5/mlx5_0:1", "ud_mlx5/mlx5_0:1"};
    const std::vector<std::string> dc{"self/memory", "dc_mlx5/mlx5_0:1"};
    const std::vector<std::string> tcp{"self/memory", "tcp/eth0"};
    const std::vector<std::string> tcp_cma{"self/memory", "tcp/eth0", "cma/memory"};
    const std::vector<std::string> local_only{"self/memory", "cma/memory", "posix/memory"};
    for (bool agent : {false, true}) {
        CAPTURE(agent);
        DM_CHECK_OK(dd::check_opened_transports(verbs, agent, "serve"));
        DM_CHECK_OK(dd::check_opened_transports(dc, agent, "serve"));
        DM_CHECK_OK(dd::check_opened_transports(tcp, agent, "serve"));
        DM_CHECK_RC(dd::check_opened_transports(local_only, agent, "serve"), DRAGON_INVALID_OPERATION);
        CHECK(last_error().find("self/memory, cma/memory, posix/memory") != std::string::npos);
        DM_CHECK_RC(dd::check_opened_transports({}, agent, "serve"), DRAGON_INVALID_OPERATION);
        CHECK(last_error().find("no transport here that reaches another node (opened: none)") != std::string::npos);
    }
    DM_CHECK_OK(dd::check_opened_transports(tcp_cma, false, "remote access"));
    for (const char* shared : {"cma/memory", "posix/memory", "sysv/memory", "xpmem/memory", "knem/memory",
                               "cuda_ipc/cuda"}) {
        CAPTURE(shared);
        DM_CHECK_RC(dd::check_opened_transports({"tcp/eth0", shared}, true, "serve"), DRAGON_INVALID_OPERATION);
        CHECK(last_error().find(std::string("shared-memory transport '") + shared + "'") != std::string::npos);
    }
}

namespace {

// `dragonmem serve` in a thread of this process, on a free port of 127.0.0.1: the pool
// is local to it, and remote to a descriptor said to come from another host. Stopped
// with the test.
class InProcessAgent {
public:
    explicit InProcessAgent(const dragonmem::AgentLimits& limits = {}) {
        options_.listen = "127.0.0.1:0";
        options_.limits = limits;
        options_.stop = &stop_;
        options_.on_event = [this](const std::string& line) {
            const std::lock_guard lock(mutex_);
            events_.push_back(line);
            logged_.notify_all();
        };
        options_.on_ready = [this](const std::string& address) {
            const std::lock_guard lock(mutex_);
            address_ = address;
            ready_.notify_all();
        };
        thread_ = std::thread([this] {
            try {
                dragonmem::serve(options_);
            } catch (const dragonmem::Error& e) {
                const std::lock_guard lock(mutex_);
                failure_ = e.what();
                ready_.notify_all();
            }
        });
        std::unique_lock lock(mutex_);
        ready_.wait_for(lock, std::chrono::seconds(60), [this] { return !address_.empty() || !failure_.empty(); });
        if (address_.empty()) {
            lock.unlock();
            stop_ = true;
            thread_.join();
            FAIL("the agent did not start: ", failure_);
        }
    }
    InProcessAgent(const InProcessAgent&) = delete;
    InProcessAgent& operator=(const InProcessAgent&) = delete;
    ~InProcessAgent() {
        stop_ = true;
        thread_.join();
    }
    const std::string& address() const { return address_; }
    // How many of its events so far contain `part`.
    std::size_t events_with(const std::string& part) {
        const std::lock_guard lock(mutex_);
        return count_locked(part);
    }
    // Waits until at least `count` events contain `part`, for up to `limit` (well inside
    // the suite's meson timeout, so that a missing event fails the check that waited
    // for it, by name); returns how many do. The agent logs some events after the act
    // they report (a rejection sent, a reply gone), so a peer that saw the act may look
    // before the event is there: the agent's thread can be preempted between the two.
    std::size_t wait_for_events(const std::string& part, std::size_t count,
                                std::chrono::seconds limit = std::chrono::seconds(20)) {
        std::unique_lock lock(mutex_);
        logged_.wait_for(lock, limit, [&] { return count_locked(part) >= count; });
        return count_locked(part);
    }

private:
    std::size_t count_locked(const std::string& part) const {  // mutex_ held
        return static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(), [&](const std::string& line) {
            return line.find(part) != std::string::npos;
        }));
    }

    TrustedFabric trusted_;  // first: the agent's UCX reads it when it starts, the client at each call
    dragonmem::AgentOptions options_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::condition_variable ready_;
    std::condition_variable logged_;  // an event was added
    std::string address_;
    std::string failure_;
    std::vector<std::string> events_;
    std::thread thread_;
};

}  // namespace

// `mem` as another host sees it: a descriptor naming `agent`, attached as remote.
class RemoteView {
public:
    RemoteView(dragonMemoryDescr_t* mem, const std::string& agent) {
        AgentEnv env(agent.c_str());
        bytes_ = from_other_host(serialize_mem(mem));
        dragonMemorySerial_t ser{bytes_.size(), bytes_.data()};
        DM_REQUIRE_OK(dragon_memory_attach(&remote_, &ser));
    }
    RemoteView(const RemoteView&) = delete;
    RemoteView& operator=(const RemoteView&) = delete;
    ~RemoteView() { dragon_memory_detach(&remote_); }
    dragonMemoryDescr_t* get() { return &remote_; }

private:
    std::vector<std::uint8_t> bytes_;
    dragonMemoryDescr_t remote_{};
};

// The pool's identity as a remote descriptor carries it (secret, agent): for requests
// made below the C API's checks, straight through the client.
dd::PoolIdentity remote_identity(dragonMemoryPoolDescr_t* pool, const std::string& agent) {
    AgentEnv env(agent.c_str());
    return decoded_pool(serialize_pool(pool));
}

const timespec_t k_limit{30, 0};

TEST_CASE("through an in-process agent, remote writes and reads move the allocation's bytes" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;
    TestPool pool(32 << 20);
    InProcessAgent agent;
    // Sizes of one message, and of several pieces (the client sends requests of at most
    // 1 MiB, 4 in flight: 9 MiB + 5 is 10 pieces, more than are ever in flight).
    for (const std::size_t size : {std::size_t{1}, std::size_t{4096}, std::size_t{(64 << 10) + 3},
                                   std::size_t{(1 << 20) + 17}, std::size_t{(9 << 20) + 5}}) {
        CAPTURE(size);
        dragonMemoryDescr_t mem{};
        DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), size));
        RemoteView remote(&mem, agent.address());
        std::vector<unsigned char> data(size);
        for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<unsigned char>((i * 131) ^ (i >> 8) ^ size);
        DM_REQUIRE_OK(dragonmem_memory_write(remote.get(), 0, data.data(), size, &k_limit));
        CHECK(std::memcmp(mem_pointer(&mem), data.data(), size) == 0);
        std::vector<unsigned char> back(size);
        const std::size_t reads_before = agent.events_with("served read of pool");
        DM_REQUIRE_OK(dragonmem_memory_read(remote.get(), 0, back.data(), size, &k_limit));
        CHECK(back == data);
        // One request per piece (the agent logs a read once its reply has gone: awaited).
        const std::size_t pieces = (size + (1 << 20) - 1) >> 20;
        CHECK(agent.wait_for_events("served read of pool", reads_before + pieces) - reads_before == pieces);
        // From an offset, across pieces: each piece's bytes land at their place.
        std::fill(back.begin(), back.end(), 0);
        DM_REQUIRE_OK(dragonmem_memory_read(remote.get(), size / 3, back.data(), size - size / 3, &k_limit));
        CHECK(std::memcmp(back.data(), data.data() + size / 3, size - size / 3) == 0);
        unsigned char part[100];
        const std::size_t tail = std::min<std::size_t>(size, 100);
        DM_REQUIRE_OK(dragonmem_memory_read(remote.get(), size - tail, part, tail, &k_limit));
        CHECK(std::memcmp(part, data.data() + size - tail, tail) == 0);
        DM_REQUIRE_OK(dragonmem_memory_read(remote.get(), 0, part, 0, &k_limit));  // empty: checked, nothing moved
        DM_REQUIRE_OK(dragonmem_memory_write(remote.get(), 0, part, 0, &k_limit));
        DM_CHECK_OK(dragon_memory_free(&mem));
    }
}

TEST_CASE("a transfer of several pieces: one refused past the first ends the call, naming the piece; EAGAIN pieces are sent again" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;
    TestPool pool(16 << 20);
    dragonmem::AgentLimits limits;
    limits.transfers = 1;  // the client's 4 pieces in flight are more than the agent takes
    limits.requests_per_turn = 1;
    InProcessAgent agent(limits);
    const std::size_t size = 2 << 20;
    dragonMemoryDescr_t a{};
    DM_REQUIRE_OK(dragon_memory_alloc(&a, pool.pd(), size));
    auto* p = static_cast<unsigned char*>(mem_pointer(&a));
    for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<unsigned char>(i * 7 + (i >> 12));
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    // 3 MiB asked of a 2 MiB allocation, below the C API's view check: the third piece is
    // refused, and the error says which piece of the call it was.
    std::vector<unsigned char> buffer(3 << 20, 0xEE);
    DM_CHECK_RC(dd::remote_transfer(identity, {mem_id(&a), 0, buffer.size()}, buffer.data(), dd::Access::read, &k_limit),
                DRAGON_INVALID_ARGUMENT);
    CHECK(last_error().find("outside allocation id") != std::string::npos);
    CHECK(last_error().find("of the piece of 1048576 B at byte 2097152 of this 3145728 B call") != std::string::npos);
    CHECK(std::all_of(buffer.begin() + size, buffer.end(), [](unsigned char c) { return c == 0xEE; }));
    // Whole reads and writes of 2 MiB (two pieces at once against limits of 1): a piece
    // refused with EAGAIN is sent again, and each call succeeds with every byte. Until
    // the agent has refused some (it takes the pieces as they come; a few rounds do it).
    std::vector<unsigned char> back(size, 0);
    const std::vector<unsigned char> original(p, p + size);
    int round = 0;
    for (; round < 200 && agent.events_with("EAGAIN") < 4; ++round) {
        CAPTURE(round);
        std::fill(back.begin(), back.end(), 0);
        DM_REQUIRE_OK(dd::remote_transfer(identity, {mem_id(&a), 0, size}, back.data(), dd::Access::read, &k_limit));
        REQUIRE(back == original);
        std::memset(p, 0, size);
        DM_REQUIRE_OK(dd::remote_transfer(identity, {mem_id(&a), 0, size}, back.data(), dd::Access::write, &k_limit));
        REQUIRE(std::memcmp(p, original.data(), size) == 0);
    }
    MESSAGE(round, " rounds; refusals with EAGAIN (each sent again): ", agent.events_with("EAGAIN"));
    CHECK(agent.events_with("EAGAIN") >= 4);
    DM_CHECK_OK(dragon_memory_free(&a));
}

TEST_CASE("a remote request reaching past the allocation's size is refused; the pool is unchanged" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;
    TestPool pool(1 << 20);
    InProcessAgent agent;
    dragonMemoryDescr_t a{};
    dragonMemoryDescr_t b{};
    DM_REQUIRE_OK(dragon_memory_alloc(&a, pool.pd(), 1000));  // a 1 KiB block: 24 B past the size in the block
    DM_REQUIRE_OK(dragon_memory_alloc(&b, pool.pd(), 1000));
    std::memset(mem_pointer(&a), 0x11, 1000);
    std::memset(mem_pointer(&b), 0x22, 1000);
    const PoolState before = pool_state(pool.pd());
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    std::vector<unsigned char> buffer(8192, 0xEE);
    const std::vector<unsigned char> untouched = buffer;
    // Below the C API's view check, straight to the agent: the block's slack, the next
    // block (b), far past the heap, lengths that wrap.
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges{
        {990, 20}, {1000, 1}, {0, 1001}, {0, 8192}, {1024, 1000}, {5, UINT64_MAX}, {1001, 0}};
    for (const auto& range : ranges) {
        const std::uint64_t offset = range.first;  // not a structured binding: CAPTURE's lambda takes it
        const std::uint64_t length = range.second;
        CAPTURE(offset);
        CAPTURE(length);
        for (dd::Access access : {dd::Access::read, dd::Access::write}) {
            const std::uint64_t moved = std::min<std::uint64_t>(length, buffer.size());
            DM_CHECK_RC(dd::remote_transfer(identity, {mem_id(&a), offset, moved}, buffer.data(), access, &k_limit),
                        DRAGON_INVALID_ARGUMENT);
            CHECK(last_error().find("outside allocation id") != std::string::npos);
            CHECK(last_error().find("(1000 B)") != std::string::npos);
        }
    }
    CHECK(buffer == untouched);
    // The same through a descriptor forged to claim 2000 B: the client's own view check
    // passes, the agent's refuses.
    {
        AgentEnv env(agent.address().c_str());
        dd::DecodedMemory decoded;
        DM_REQUIRE_OK(dd::decode_memory(from_other_host(serialize_mem(&a)), decoded));
        decoded.requested_bytes = 2000;
        decoded.view_bytes = 2000;
        auto forged = dd::encode_memory(decoded);
        dragonMemorySerial_t ser{forged.size(), forged.data()};
        dragonMemoryDescr_t big{};
        DM_REQUIRE_OK(dragon_memory_attach(&big, &ser));
        DM_CHECK_RC(dragonmem_memory_write(&big, 1000, buffer.data(), 1000, &k_limit), DRAGON_INVALID_ARGUMENT);
        DM_CHECK_RC(dragonmem_memory_read(&big, 0, buffer.data(), 2000, &k_limit), DRAGON_INVALID_ARGUMENT);
        DM_CHECK_OK(dragon_memory_detach(&big));
    }
    CHECK(buffer == untouched);
    CHECK(pool_state(pool.pd()) == before);
    CHECK(std::all_of(static_cast<unsigned char*>(mem_pointer(&a)), static_cast<unsigned char*>(mem_pointer(&a)) + 1000,
                      [](unsigned char c) { return c == 0x11; }));
    CHECK(std::all_of(static_cast<unsigned char*>(mem_pointer(&b)), static_cast<unsigned char*>(mem_pointer(&b)) + 1000,
                      [](unsigned char c) { return c == 0x22; }));
    // Within bounds, the same agent serves.
    DM_CHECK_OK(dd::remote_transfer(identity, {mem_id(&a), 990, 10}, buffer.data(), dd::Access::read, &k_limit));
    CHECK(buffer[0] == 0x11);
    DM_CHECK_OK(dragon_memory_free(&a));
    DM_CHECK_OK(dragon_memory_free(&b));
}

TEST_CASE("a freed allocation is stale remotely, also once its block is reused: the new bytes are neither read nor written" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;
    TestPool pool(1 << 20);
    InProcessAgent agent;
    dragonMemoryDescr_t old_mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&old_mem, pool.pd(), 4096));
    void* const block = mem_pointer(&old_mem);
    RemoteView stale(&old_mem, agent.address());
    unsigned char buffer[4096];
    DM_REQUIRE_OK(dragonmem_memory_read(stale.get(), 0, buffer, sizeof buffer, &k_limit));  // live: served
    DM_REQUIRE_OK(dragon_memory_free(&old_mem));
    std::memset(buffer, 0xEE, sizeof buffer);
    DM_CHECK_RC(dragonmem_memory_read(stale.get(), 0, buffer, sizeof buffer, &k_limit), DRAGON_KEY_NOT_FOUND);
    CHECK(last_error().find("is not live") != std::string::npos);
    // The block given to a new allocation: the old descriptor still reaches nothing.
    dragonMemoryDescr_t new_mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&new_mem, pool.pd(), 4096));
    REQUIRE(mem_pointer(&new_mem) == block);  // the same block, reused (what the test is about)
    std::memset(mem_pointer(&new_mem), 0x5A, 4096);
    DM_CHECK_RC(dragonmem_memory_read(stale.get(), 0, buffer, sizeof buffer, &k_limit), DRAGON_KEY_NOT_FOUND);
    CHECK(std::all_of(std::begin(buffer), std::end(buffer), [](unsigned char c) { return c == 0xEE; }));
    std::memset(buffer, 0xFF, sizeof buffer);
    DM_CHECK_RC(dragonmem_memory_write(stale.get(), 0, buffer, sizeof buffer, &k_limit), DRAGON_KEY_NOT_FOUND);
    const auto* now = static_cast<const unsigned char*>(mem_pointer(&new_mem));
    CHECK(std::all_of(now, now + 4096, [](unsigned char c) { return c == 0x5A; }));
    // The new allocation's own descriptor is served.
    RemoteView fresh(&new_mem, agent.address());
    DM_CHECK_OK(dragonmem_memory_read(fresh.get(), 0, buffer, sizeof buffer, &k_limit));
    CHECK(buffer[0] == 0x5A);
    DM_CHECK_OK(dragon_memory_free(&new_mem));
}

TEST_CASE("offsets that would point outside the heap are refused, and the agent keeps serving" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;
    TestPool pool(1 << 20);
    InProcessAgent agent;
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 4096));
    std::memset(mem_pointer(&mem), 0x33, 4096);
    const PoolState before = pool_state(pool.pd());
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    std::vector<unsigned char> buffer(4096, 0xEE);
    // 1 GiB below the heap (the offset wraps), past the heap's end, the last byte of the
    // address space: what crashed the agent when clients held a key to the heap.
    const std::uint64_t below_heap = std::uint64_t{0} - (std::uint64_t{1} << 30);
    for (std::uint64_t offset : {below_heap, std::uint64_t{1} << 20, std::uint64_t{1} << 40, UINT64_MAX - 1}) {
        CAPTURE(offset);
        for (dd::Access access : {dd::Access::read, dd::Access::write}) {
            DM_CHECK_RC(dd::remote_transfer(identity, {mem_id(&mem), offset, 4096}, buffer.data(), access, &k_limit),
                        DRAGON_INVALID_ARGUMENT);
            CHECK(last_error().find("outside allocation id") != std::string::npos);
        }
    }
    // An id that names no live allocation (free space, metadata): not live.
    for (std::uint64_t id : {std::uint64_t{1}, mem_id(&mem) + 1, std::uint64_t{1} << 61}) {
        CAPTURE(id);
        DM_CHECK_RC(dd::remote_transfer(identity, {id, 0, 16}, buffer.data(), dd::Access::read, &k_limit),
                    DRAGON_KEY_NOT_FOUND);
    }
    CHECK(std::all_of(buffer.begin(), buffer.end(), [](unsigned char c) { return c == 0xEE; }));
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_OK(dd::remote_transfer(identity, {mem_id(&mem), 0, 4096}, buffer.data(), dd::Access::read, &k_limit));
    CHECK(std::all_of(buffer.begin(), buffer.end(), [](unsigned char c) { return c == 0x33; }));
    DM_CHECK_OK(dragon_memory_free(&mem));
}

TEST_CASE("a forged secret, or another instance of the pool, is refused; nothing moves" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;
    TestPool pool(1 << 20);
    InProcessAgent agent;
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 256));
    std::memset(mem_pointer(&mem), 0x44, 256);
    const PoolState before = pool_state(pool.pd());
    dd::PoolIdentity forged = remote_identity(pool.pd(), agent.address());
    forged.secret[15] ^= 0x80;
    std::vector<unsigned char> buffer(256, 0xEE);
    for (dd::Access access : {dd::Access::read, dd::Access::write}) {
        DM_CHECK_RC(dd::remote_transfer(forged, {mem_id(&mem), 0, 256}, buffer.data(), access, &k_limit),
                    DRAGON_INVALID_ARGUMENT);
        CHECK(last_error().find("secret presented") != std::string::npos);
    }
    dd::PoolIdentity other = remote_identity(pool.pd(), agent.address());
    other.nonce ^= 1;
    DM_CHECK_RC(dd::remote_transfer(other, {mem_id(&mem), 0, 256}, buffer.data(), dd::Access::write, &k_limit),
                DRAGON_OBJECT_DESTROYED);
    // The refusal names neither instance number (the pool's is not the requester's to learn).
    for (std::uint64_t nonce : {other.nonce, other.nonce ^ 1}) {
        std::array<char, 24> hex{};
        std::snprintf(hex.data(), hex.size(), "%" PRIx64, nonce);
        CHECK(last_error().find(hex.data()) == std::string::npos);
        CHECK(last_error().find(std::to_string(nonce)) == std::string::npos);
    }
    CHECK(last_error().find("another instance") != std::string::npos);
    CHECK(std::all_of(buffer.begin(), buffer.end(), [](unsigned char c) { return c == 0xEE; }));
    const auto* p = static_cast<const unsigned char*>(mem_pointer(&mem));
    CHECK(std::all_of(p, p + 256, [](unsigned char c) { return c == 0x44; }));
    CHECK(pool_state(pool.pd()) == before);
    DM_CHECK_OK(dragon_memory_free(&mem));
}

namespace {

// What serve() throws (or "" when it ran: `stop` is set before, so it returns at once).
std::pair<dragonError_t, std::string> serve_outcome() {
    std::atomic<bool> stop{true};
    dragonmem::AgentOptions options;
    options.listen = "127.0.0.1:0";
    options.stop = &stop;
    try {
        dragonmem::serve(options);
    } catch (const dragonmem::Error& e) {
        return {e.code(), e.what()};
    }
    return {DRAGON_SUCCESS, ""};
}

}  // namespace

TEST_CASE("without DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 the agent and the client refuse UCX, saying why" * doctest::skip(network_missing())) {
    if (dragonmem_remote_available() == 0) return;
    for (const char* tls : {static_cast<const char*>(nullptr), "tcp", "rc,ud"}) {
        CAPTURE(tls != nullptr ? tls : "(unset)");
        ScopedEnv transports("UCX_TLS", tls);  // whatever the transports: refused before UCX is opened
        for (const char* value : {static_cast<const char*>(nullptr), "", "0"}) {
            ScopedEnv untrusted(dd::k_trusted_fabric_env, value);
            auto [rc, message] = serve_outcome();
            CHECK(rc == DRAGON_INVALID_OPERATION);
            CHECK(message.find("serve: remote access over UCX is for trusted fabrics only") != std::string::npos);
            CHECK(message.find("DRAGONMEM_REMOTE_TRUSTED_FABRIC=1") != std::string::npos);
        }
        ScopedEnv bad(dd::k_trusted_fabric_env, "yes");
        auto [rc, message] = serve_outcome();
        CHECK(rc == DRAGON_INVALID_ARGUMENT);
        CHECK(message.find("DRAGONMEM_REMOTE_TRUSTED_FABRIC='yes'") != std::string::npos);
    }
    {
        ScopedEnv trusted(dd::k_trusted_fabric_env, "1");
        ScopedEnv tls("UCX_TLS", nullptr);
        CHECK(serve_outcome().first == DRAGON_SUCCESS);  // the control: with it, serve runs
    }
    // The client: served while the opt-in is set; its calls refused, with nothing moved,
    // while it is not (read at each call); served again once it is back.
    TestPool pool(1 << 20);
    InProcessAgent agent;
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 4096));
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    std::memset(p, 0x66, 4096);
    RemoteView remote(&mem, agent.address());
    std::vector<unsigned char> buffer(4096, 0xEE);
    DM_CHECK_OK(dragonmem_memory_read(remote.get(), 0, buffer.data(), 16, &k_limit));
    CHECK(buffer[0] == 0x66);
    std::fill(buffer.begin(), buffer.end(), 0xEE);
    for (const char* value : {static_cast<const char*>(nullptr), "0"}) {
        ScopedEnv untrusted(dd::k_trusted_fabric_env, value);
        DM_CHECK_RC(dragonmem_memory_read(remote.get(), 0, buffer.data(), 4096, &k_limit), DRAGON_INVALID_OPERATION);
        CHECK(last_error().find("remote access: remote access over UCX is for trusted fabrics only") != std::string::npos);
        CHECK(last_error().find("DRAGONMEM_REMOTE_TRUSTED_FABRIC=1") != std::string::npos);
        DM_CHECK_RC(dragonmem_memory_write(remote.get(), 0, buffer.data(), 4096, &k_limit), DRAGON_INVALID_OPERATION);
    }
    {
        ScopedEnv bad(dd::k_trusted_fabric_env, "yes");
        DM_CHECK_RC(dragonmem_memory_read(remote.get(), 0, buffer.data(), 4096, &k_limit), DRAGON_INVALID_ARGUMENT);
        CHECK(last_error().find("DRAGONMEM_REMOTE_TRUSTED_FABRIC='yes'") != std::string::npos);
    }
    CHECK(std::all_of(buffer.begin(), buffer.end(), [](unsigned char c) { return c == 0xEE; }));
    CHECK(std::all_of(p, p + 4096, [](unsigned char c) { return c == 0x66; }));
    DM_CHECK_OK(dragonmem_memory_read(remote.get(), 0, buffer.data(), 4096, &k_limit));
    CHECK(buffer[4095] == 0x66);
    DM_CHECK_OK(dragon_memory_free(&mem));
}

#ifdef DMTEST_HAVE_UCX
// ---- A bare UCX peer, as another implementation (or an attacker) would write one: its
// own context and worker (active messages only), talking the agent's messages
// (wire.hpp) with whatever UCX flags it likes.
namespace {

struct RawMessage {
    bool arrived = false;
    std::uint64_t recv_attr = 0;
    std::vector<std::uint8_t> header;
    std::vector<std::uint8_t> data;  // eager data only (a rendezvous is not received)
    std::size_t length = 0;          // the data's length, as announced
    ucp_ep_h reply_ep = nullptr;
};

class RawPeer {
public:
    RawPeer() {
        ucp_config_t* config = nullptr;
        REQUIRE(ucp_config_read(nullptr, nullptr, &config) == UCS_OK);
        // It talks only to agents on 127.0.0.1: its UCX ports stay on the loopback device
        // instead of every interface of the machine the tests run on.
        REQUIRE(ucp_config_modify(config, "NET_DEVICES", "lo") == UCS_OK);
        ucp_params_t params{};
        params.field_mask = UCP_PARAM_FIELD_FEATURES;
        params.features = UCP_FEATURE_AM;
        const ucs_status_t st = ucp_init(&params, config, &context_);
        ucp_config_release(config);
        REQUIRE(st == UCS_OK);
        ucp_worker_params_t worker_params{};
        worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
        worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;
        REQUIRE(ucp_worker_create(context_, &worker_params, &worker_) == UCS_OK);
        for (unsigned id : {dd::k_am_request, dd::k_am_reply}) {
            ucp_am_handler_param_t handler{};
            handler.field_mask =
                UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
            handler.id = id;
            handler.cb = &RawPeer::on_message;
            handler.arg = this;
            REQUIRE(ucp_worker_set_am_recv_handler(worker_, &handler) == UCS_OK);
        }
    }
    RawPeer(const RawPeer&) = delete;
    RawPeer& operator=(const RawPeer&) = delete;
    ~RawPeer() {
        for (ucp_ep_h ep : endpoints_) {
            ucp_request_param_t params{};
            params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
            params.flags = UCP_EP_CLOSE_FLAG_FORCE;
            wait(ucp_ep_close_nbx(ep, &params), std::chrono::seconds(10));
        }
        if (listener_ != nullptr) ucp_listener_destroy(listener_);
        ucp_worker_destroy(worker_);
        ucp_cleanup(context_);
    }
    ucp_ep_h connect(const std::string& address) {
        const auto colon = address.rfind(':');
        sockaddr_in to{};
        to.sin_family = AF_INET;
        REQUIRE(::inet_pton(AF_INET, address.substr(0, colon).c_str(), &to.sin_addr) == 1);
        to.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
        ucp_ep_params_t params{};
        params.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
        params.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
        params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&to);
        params.sockaddr.addrlen = sizeof to;
        params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
        ucp_ep_h ep = nullptr;
        REQUIRE(ucp_ep_create(worker_, &params, &ep) == UCS_OK);
        endpoints_.push_back(ep);
        return ep;
    }
    // Listens on 127.0.0.1 (a free port), accepting every connection: "127.0.0.1:PORT".
    std::string listen() {
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ucp_listener_params_t params{};
        params.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
        params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&at);
        params.sockaddr.addrlen = sizeof at;
        params.conn_handler.cb = &RawPeer::on_connection;
        params.conn_handler.arg = this;
        REQUIRE(ucp_listener_create(worker_, &params, &listener_) == UCS_OK);
        ucp_listener_attr_t attr{};
        attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
        REQUIRE(ucp_listener_query(listener_, &attr) == UCS_OK);
        return "127.0.0.1:" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in*>(&attr.sockaddr)->sin_port));
    }
    // Sends an active message (`flags`: UCP_AM_SEND_FLAG_*), waits until it left.
    void send(ucp_ep_h ep, unsigned id, std::span<const std::uint8_t> header, std::span<const std::uint8_t> data,
              std::uint32_t flags) {
        ucp_request_param_t params{};
        params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
        params.flags = flags;
        REQUIRE(wait(ucp_am_send_nbx(ep, id, header.data(), header.size(), data.data(), data.size(), &params),
                     std::chrono::seconds(30)) == UCS_OK);
    }
    // Progresses until a message came (or `limit` passed); the oldest one not taken.
    RawMessage next(std::chrono::seconds limit) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (messages_.empty() && std::chrono::steady_clock::now() < end) progress();
        if (messages_.empty()) return {};
        RawMessage m = std::move(messages_.front());
        messages_.erase(messages_.begin());
        return m;
    }
    void progress() {
        ucp_worker_progress(worker_);
        for (ucp_conn_request_h request : std::exchange(connections_, {})) {
            ucp_ep_params_t params{};
            params.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
            params.conn_request = request;
            ucp_ep_h ep = nullptr;
            if (ucp_ep_create(worker_, &params, &ep) == UCS_OK) endpoints_.push_back(ep);
        }
    }

private:
    static void on_connection(ucp_conn_request_h request, void* arg) {
        static_cast<RawPeer*>(arg)->connections_.push_back(request);
    }
    static ucs_status_t on_message(void* arg, const void* header, std::size_t header_bytes, void* data,
                                   std::size_t length, const ucp_am_recv_param_t* param) {
        RawMessage m;
        m.arrived = true;
        m.recv_attr = param->recv_attr;
        const auto* h = static_cast<const std::uint8_t*>(header);
        m.header.assign(h, h + header_bytes);
        m.length = length;
        if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) == 0 && length != 0) {
            const auto* d = static_cast<const std::uint8_t*>(data);
            m.data.assign(d, d + length);
        }
        if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) != 0) m.reply_ep = param->reply_ep;
        static_cast<RawPeer*>(arg)->messages_.push_back(std::move(m));
        return UCS_OK;  // a rendezvous is dropped unreceived
    }
    ucs_status_t wait(ucs_status_ptr_t request, std::chrono::seconds limit) {
        if (request == nullptr) return UCS_OK;
        if (UCS_PTR_IS_ERR(request)) return UCS_PTR_STATUS(request);
        const auto end = std::chrono::steady_clock::now() + limit;
        ucs_status_t st = UCS_INPROGRESS;
        while ((st = ucp_request_check_status(request)) == UCS_INPROGRESS && std::chrono::steady_clock::now() < end)
            progress();
        if (st == UCS_INPROGRESS) return st;  // left to UCX
        ucp_request_free(request);
        return st;
    }

    ucp_context_h context_ = nullptr;
    ucp_worker_h worker_ = nullptr;
    ucp_listener_h listener_ = nullptr;
    std::vector<ucp_conn_request_h> connections_;
    std::vector<ucp_ep_h> endpoints_;
    std::vector<RawMessage> messages_;
};

// An access request for `length` bytes of `mem` from byte `offset`, as the client encodes it.
std::vector<std::uint8_t> raw_request(const dd::PoolIdentity& pool, dragonMemoryDescr_t* mem, dd::Access access,
                                      std::uint64_t offset, std::uint64_t length, std::uint64_t sequence) {
    dd::AccessRequest request;
    request.access = access;
    request.sequence = sequence;
    request.nonce = pool.nonce;
    request.id = mem_id(mem);
    request.offset = offset;
    request.length = length;
    request.secret = pool.secret;
    request.pool_name = pool.name;
    return dd::encode_request(request);
}

dd::AccessReply decoded_reply(const RawMessage& m) {
    dd::AccessReply reply;
    REQUIRE(m.arrived);
    REQUIRE(dd::decode_reply(m.header, reply) == DRAGON_SUCCESS);
    return reply;
}

}  // namespace

TEST_CASE("the agent sends a read's bytes eagerly, whatever their size: no rendezvous, so no key to its memory" * doctest::skip(network_missing())) {
    TestPool pool(32 << 20);
    InProcessAgent agent;
    dragonMemoryDescr_t mem{};
    const std::size_t size = (9 << 20) + 5;  // past UCX's rendezvous threshold on every transport
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), size));
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<unsigned char>(i * 7 + (i >> 12));
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    RawPeer peer;
    ucp_ep_h ep = peer.connect(agent.address());
    peer.send(ep, dd::k_am_request, raw_request(identity, &mem, dd::Access::read, 0, size, 1), {},
              UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER);
    const RawMessage m = peer.next(std::chrono::seconds(60));
    const dd::AccessReply reply = decoded_reply(m);
    CHECK(reply.rc == DRAGON_SUCCESS);
    CHECK(reply.sequence == 1);
    CHECK((m.recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) == 0);  // a rendezvous would carry a key
    CHECK(m.length == size);
    CHECK((m.data.size() == size && std::memcmp(m.data.data(), p, size) == 0));
    DM_CHECK_OK(dragon_memory_free(&mem));
}

TEST_CASE("a write whose bytes come by rendezvous is refused unreceived; the allocation is unchanged" * doctest::skip(network_missing())) {
    TestPool pool(4 << 20);
    InProcessAgent agent;
    dragonMemoryDescr_t mem{};
    const std::size_t size = 1 << 20;
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), size));
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    std::memset(p, 0x11, size);
    const PoolState before = pool_state(pool.pd());
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    const std::vector<std::uint8_t> data(size, 0xCD);
    RawPeer peer;
    ucp_ep_h ep = peer.connect(agent.address());
    peer.send(ep, dd::k_am_request, raw_request(identity, &mem, dd::Access::write, 0, size, 7), data,
              UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_RNDV);
    const RawMessage refused = peer.next(std::chrono::seconds(60));
    CHECK(decoded_reply(refused).rc == DRAGON_INVALID_ARGUMENT);
    const std::string message(refused.data.begin(), refused.data.end());
    CHECK(message.find("came by rendezvous") != std::string::npos);
    CHECK(std::all_of(p, p + size, [](unsigned char c) { return c == 0x11; }));
    CHECK(pool_state(pool.pd()) == before);
    // The same bytes sent eagerly are written (the refusal is about how they came).
    peer.send(ep, dd::k_am_request, raw_request(identity, &mem, dd::Access::write, 0, size, 8), data,
              UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER);
    CHECK(decoded_reply(peer.next(std::chrono::seconds(60))).rc == DRAGON_SUCCESS);
    CHECK(std::all_of(p, p + size, [](unsigned char c) { return c == 0xCD; }));
    DM_CHECK_OK(dragon_memory_free(&mem));
}

TEST_CASE("a reply that comes by rendezvous is refused by the client; the caller's buffer is untouched" * doctest::skip(network_missing())) {
    TrustedFabric trusted;
    TestPool pool(1 << 20);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 65536));
    // A fake agent in a thread: it answers the first request with 64 KiB by rendezvous.
    std::promise<std::string> listening;
    std::atomic<bool> stop{false};
    std::thread fake([&] {
        RawPeer agent;
        listening.set_value(agent.listen());
        RawMessage request;
        while (!stop && !request.arrived) request = agent.next(std::chrono::seconds(1));
        if (stop) return;
        dd::AccessRequest decoded;
        if (dd::decode_request(request.header, decoded) != DRAGON_SUCCESS) return;  // (no REQUIRE off the main thread)
        dd::AccessReply reply;
        reply.sequence = decoded.sequence;
        const std::vector<std::uint8_t> bytes(decoded.length, 0xAB);
        agent.send(request.reply_ep, dd::k_am_reply, dd::encode_reply(reply), bytes, UCP_AM_SEND_FLAG_RNDV);
        while (!stop) agent.progress();
    });
    const dd::PoolIdentity identity = remote_identity(pool.pd(), listening.get_future().get());
    std::vector<unsigned char> buffer(65536, 0xEE);
    const timespec_t limit{10, 0};
    const dragonError_t rc = dd::remote_transfer(identity, {mem_id(&mem), 0, buffer.size()}, buffer.data(),
                                                 dd::Access::read, &limit);
    stop = true;
    fake.join();
    CHECK(rc == DRAGON_FAILURE);
    CHECK(last_error().find("came by rendezvous") != std::string::npos);
    CHECK(std::all_of(buffer.begin(), buffer.end(), [](unsigned char c) { return c == 0xEE; }));
    DM_CHECK_OK(dragon_memory_free(&mem));
}

// A small read through `peer`, waited for: the connection is wired up after it, so that
// the requests sent next go out at once (no progress, so no reply is read meanwhile).
void warm_up(RawPeer& peer, ucp_ep_h ep, const dd::PoolIdentity& pool, dragonMemoryDescr_t* mem) {
    peer.send(ep, dd::k_am_request, raw_request(pool, mem, dd::Access::read, 0, 4, 1000), {},
              UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER);
    REQUIRE(decoded_reply(peer.next(std::chrono::seconds(60))).rc == DRAGON_SUCCESS);
}

// Sends a request without progressing (UCX sends a small one at once on a wired-up
// endpoint); REQUIREs that it went.
void send_now(ucp_ep_h ep, const std::vector<std::uint8_t>& header) {
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_EAGER;
    const ucs_status_ptr_t sent = ucp_am_send_nbx(ep, dd::k_am_request, header.data(), header.size(), nullptr, 0, &params);
    REQUIRE(sent == nullptr);
}

TEST_CASE("AgentLimits of 0 are refused, naming the limit") {
    for (int which = 0; which < 4; ++which) {
        CAPTURE(which);
        dragonmem::AgentOptions options;
        options.listen = "127.0.0.1:0";
        std::atomic<bool> stop{true};
        options.stop = &stop;
        const char* names[] = {"connections", "requests_per_turn", "transfers", "unread_replies"};
        std::size_t* limits[] = {&options.limits.connections, &options.limits.requests_per_turn,
                                 &options.limits.transfers, &options.limits.unread_replies};
        *limits[which] = 0;
        try {
            dragonmem::serve(options);
            FAIL("serve took a limit of 0");
        } catch (const dragonmem::Error& e) {
            CHECK(e.code() == DRAGON_INVALID_ARGUMENT);
            CHECK(std::string(e.what()).find(std::string("AgentLimits::") + names[which] + " is 0") != std::string::npos);
        }
    }
}

TEST_CASE("past AgentLimits::transfers reads in flight, a read is refused with EAGAIN; the one in flight completes" * doctest::skip(network_missing())) {
    TestPool pool(80 << 20);
    dragonmem::AgentLimits limits;
    limits.transfers = 1;
    InProcessAgent agent(limits);
    dragonMemoryDescr_t mem{};
    const std::size_t size = 32 << 20;  // far more than the sockets hold: in flight until the peer reads
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), size));
    auto* p = static_cast<unsigned char*>(mem_pointer(&mem));
    for (std::size_t i = 0; i < size; i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    RawPeer peer;
    ucp_ep_h ep = peer.connect(agent.address());
    warm_up(peer, ep, identity, &mem);
    for (std::uint64_t sequence : {1, 2, 3}) send_now(ep, raw_request(identity, &mem, dd::Access::read, 0, size, sequence));
    // Not reading (no progress) until the agent has taken all three: the first read stays
    // in flight meanwhile, however late the agent's thread runs on a loaded machine.
    REQUIRE(agent.wait_for_events("AgentLimits::transfers", 2) >= 2);
    std::map<std::uint64_t, RawMessage> replies;
    for (int i = 0; i < 3; ++i) {
        RawMessage m = peer.next(std::chrono::seconds(60));
        REQUIRE(m.arrived);
        replies[decoded_reply(m).sequence] = std::move(m);
    }
    REQUIRE(replies.size() == 3);
    CHECK(decoded_reply(replies[1]).rc == DRAGON_SUCCESS);
    CHECK((replies[1].data.size() == size && std::memcmp(replies[1].data.data(), p, size) == 0));
    for (std::uint64_t refused : {2, 3}) {
        CAPTURE(refused);
        CHECK(decoded_reply(replies[refused]).rc == DRAGON_EAGAIN);
        const std::string message(replies[refused].data.begin(), replies[refused].data.end());
        CHECK(message.find("AgentLimits::transfers") != std::string::npos);
    }
    // Once it is sent, the agent serves reads again.
    RemoteView remote(&mem, agent.address());
    std::vector<unsigned char> buffer(4096);
    DM_CHECK_OK(dragonmem_memory_read(remote.get(), 0, buffer.data(), buffer.size(), &k_limit));
    CHECK(buffer[0] == p[0]);
    DM_CHECK_OK(dragon_memory_free(&mem));
}

TEST_CASE("a client that does not read its replies is disconnected at AgentLimits::unread_replies; others are served" * doctest::skip(network_missing())) {
    TestPool pool(80 << 20);
    dragonmem::AgentLimits limits;
    limits.unread_replies = 1;
    InProcessAgent agent(limits);
    dragonMemoryDescr_t mem{};
    const std::size_t size = 32 << 20;
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), size));
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    dd::PoolIdentity forged = identity;
    forged.secret[0] ^= 1;
    {
        RawPeer peer;
        ucp_ep_h ep = peer.connect(agent.address());
        warm_up(peer, ep, identity, &mem);
        // A read whose bytes fill the connection, then refusals queued behind them: the
        // first is one reply unread, the second finds the bound.
        send_now(ep, raw_request(identity, &mem, dd::Access::read, 0, size, 1));
        for (std::uint64_t sequence : {2, 3, 4}) send_now(ep, raw_request(forged, &mem, dd::Access::read, 0, 4, sequence));
        REQUIRE(agent.wait_for_events("replies to it unread", 1) >= 1);
    }
    CHECK(agent.events_with("closing a connection: 1 replies to it unread (the most, AgentLimits::unread_replies)") == 1);
    RemoteView remote(&mem, agent.address());
    std::vector<unsigned char> buffer(4096, 0xEE);
    DM_CHECK_OK(dragonmem_memory_read(remote.get(), 0, buffer.data(), buffer.size(), &k_limit));
    DM_CHECK_OK(dragon_memory_free(&mem));
}

TEST_CASE("past AgentLimits::connections a connection is rejected, and the client says so; one closed makes room" * doctest::skip(network_missing())) {
    TestPool pool(1 << 20);
    dragonmem::AgentLimits limits;
    limits.connections = 1;
    InProcessAgent agent(limits);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 4096));
    std::memset(mem_pointer(&mem), 0x77, 4096);
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    std::vector<unsigned char> buffer(4096, 0xEE);
    {
        RawPeer holder;  // the one connection the agent takes
        warm_up(holder, holder.connect(agent.address()), identity, &mem);
        DM_CHECK_RC(dd::remote_transfer(identity, {mem_id(&mem), 0, 4096}, buffer.data(), dd::Access::read, &k_limit),
                    DRAGON_FAILURE);
        CHECK(last_error().find("rejected the connection") != std::string::npos);
        CHECK(std::all_of(buffer.begin(), buffer.end(), [](unsigned char c) { return c == 0xEE; }));
        CHECK(agent.wait_for_events("connection rejected: 1 connections open (the most, AgentLimits::connections)", 1) >= 1);
    }
    // The holder gone (the agent notices its endpoint failed), the client connects again.
    dragonError_t rc = DRAGON_FAILURE;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (rc != DRAGON_SUCCESS && std::chrono::steady_clock::now() < end) {
        rc = dd::remote_transfer(identity, {mem_id(&mem), 0, 4096}, buffer.data(), dd::Access::read, &k_limit);
        if (rc != DRAGON_SUCCESS) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(rc == DRAGON_SUCCESS);
    CHECK(buffer[0] == 0x77);
    DM_CHECK_OK(dragon_memory_free(&mem));
}

TEST_CASE("requests past AgentLimits::requests_per_turn are refused with EAGAIN; every request is answered once" * doctest::skip(network_missing())) {
    TestPool pool(1 << 20);
    dragonmem::AgentLimits limits;
    limits.requests_per_turn = 2;
    InProcessAgent agent(limits);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 4096));
    const dd::PoolIdentity identity = remote_identity(pool.pd(), agent.address());
    RawPeer peer;
    ucp_ep_h ep = peer.connect(agent.address());
    warm_up(peer, ep, identity, &mem);
    // Bursts of 64 requests sent faster than the agent wakes: it takes 2 from UCX, then
    // refuses what the same progress call delivered beyond them. (A burst the agent
    // happens to take in pieces is served whole: up to 10 bursts until one is refused.)
    std::size_t refused = 0;
    std::uint64_t sequence = 1;
    for (int burst = 0; burst < 10 && refused == 0; ++burst) {
        const std::uint64_t first = sequence;
        for (int i = 0; i < 64; ++i) send_now(ep, raw_request(identity, &mem, dd::Access::read, 0, 4, sequence++));
        std::set<std::uint64_t> answered;
        for (int i = 0; i < 64; ++i) {
            const RawMessage m = peer.next(std::chrono::seconds(60));
            REQUIRE(m.arrived);
            const dd::AccessReply reply = decoded_reply(m);
            CHECK((reply.sequence >= first && reply.sequence < sequence));
            CHECK(answered.insert(reply.sequence).second);  // once
            if (reply.rc == DRAGON_EAGAIN) {
                ++refused;
                CHECK(std::string(m.data.begin(), m.data.end()).find("AgentLimits::requests_per_turn") != std::string::npos);
            } else {
                CHECK(reply.rc == DRAGON_SUCCESS);
            }
        }
    }
    MESSAGE("refused with EAGAIN: ", refused);
    CHECK(refused > 0);
    DM_CHECK_OK(dragon_memory_free(&mem));
}

// The protocols UCX chose for active messages on an endpoint, as ucp_ep_print_info lists
// them ("am_send: 0..<egr/short>..8185..<egr/bcopy>..(inf)").
std::string am_send_protocols(ucp_ep_h ep) {
    char* text = nullptr;
    std::size_t size = 0;
    FILE* stream = ::open_memstream(&text, &size);
    REQUIRE(stream != nullptr);
    ucp_ep_print_info(ep, stream);
    std::fclose(stream);
    std::string all(text, size);
    std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): open_memstream's buffer
    const std::size_t at = all.find("am_send:");
    return at == std::string::npos ? "" : all.substr(at, all.find('\n', at) - at);
}

TEST_CASE("UCX sends without zero copy (no pool or caller memory registered for a send), whatever UCX_ZCOPY_THRESH says" * doctest::skip(network_missing())) {
    TrustedFabric trusted;
    ScopedEnv tls("UCX_TLS", "tcp");  // a transport with zero-copy sends (TCP's start at 8 KiB by default)
    ScopedEnv zcopy("UCX_ZCOPY_THRESH", "0");
    for (bool agent : {false, true}) {
        CAPTURE(agent);
        dd::UcxWorker ucx;
        DM_REQUIRE_OK(ucx.open(agent, "zcopy test"));
        ucp_address_t* address = nullptr;
        std::size_t address_bytes = 0;
        REQUIRE(ucp_worker_get_address(ucx.worker(), &address, &address_bytes) == UCS_OK);
        ucp_ep_params_t params{};
        params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
        params.address = address;
        ucp_ep_h ep = nullptr;
        REQUIRE(ucp_ep_create(ucx.worker(), &params, &ep) == UCS_OK);
        const std::string protocols = am_send_protocols(ep);
        CAPTURE(protocols);
        CHECK(protocols.find("egr/bcopy") != std::string::npos);
        CHECK(protocols.find("zcopy") == std::string::npos);
        ucp_request_param_t close{};
        close.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
        close.flags = UCP_EP_CLOSE_FLAG_FORCE;
        dd::finish_request(ucx.worker(), ucp_ep_close_nbx(ep, &close));
        ucp_worker_release_address(ucx.worker(), address);
    }
}
#endif  // DMTEST_HAVE_UCX

TEST_SUITE_END();
