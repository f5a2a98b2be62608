// Off-node access, the parts one process can test: the pool's secret and the agent's
// address in descriptors (format 2, format 1 still read), DRAGONMEM_AGENT at serialize
// time, <dragonmem/remote.h> / remote.hpp on local allocations and on remote
// descriptors that cannot be served, and the agent's control messages. The two-host
// tests (an agent and clients in two network namespaces) are tests/remote/.
#include "testing.hpp"

#include "descr/descriptor_codec.hpp"
#include "remote/wire.hpp"

#include <dragonmem/dragonmem.hpp>
#include <dragonmem/remote.h>
#include <dragonmem/remote.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <span>
#include <thread>

using namespace dmtest;
namespace dd = dragonmem::detail;

TEST_SUITE_BEGIN("remote");

namespace {

// Sets (or, with nullptr, unsets) DRAGONMEM_AGENT for one test, then puts it back.
class AgentEnv {
public:
    explicit AgentEnv(const char* value) {
        if (const char* old = std::getenv("DRAGONMEM_AGENT")) saved_ = old;
        if (value != nullptr) ::setenv("DRAGONMEM_AGENT", value, 1);
        else ::unsetenv("DRAGONMEM_AGENT");
    }
    AgentEnv(const AgentEnv&) = delete;
    AgentEnv& operator=(const AgentEnv&) = delete;
    ~AgentEnv() {
        if (saved_) ::setenv("DRAGONMEM_AGENT", saved_->c_str(), 1);
        else ::unsetenv("DRAGONMEM_AGENT");
    }

private:
    std::optional<std::string> saved_;
};

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
    if (dragonmem_remote_available() != 0) {
        CHECK((rc == DRAGON_FAILURE || rc == DRAGON_TIMEOUT));
        CHECK(last_error().find("agent 127.0.0.1:1") != std::string::npos);
    } else {
        CHECK(rc == DRAGON_NOT_IMPLEMENTED);
        CHECK(last_error().find("without UCX") != std::string::npos);
    }
    // Out of the view is refused before anything is sent.
    DM_CHECK_RC(dragonmem_memory_read(&remote, 98, buffer, 4, &limit), DRAGON_INVALID_ARGUMENT);
    DM_CHECK_OK(dragon_memory_detach(&remote));
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

TEST_CASE("a remote call's timeout holds while another thread's call to a hung agent runs") {
    if (dragonmem_remote_available() == 0) return;  // built without UCX: nothing is waited for
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

TEST_CASE("the agent's control messages round-trip, and malformed requests are INVALID_ARGUMENT") {
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
    for (std::size_t cut : {std::size_t{0}, std::size_t{10}, bytes.size() - 1}) {
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
    auto bad_name = bytes;
    bad_name.back() = '/';
    DM_CHECK_RC(dd::decode_request(bad_name, back), DRAGON_INVALID_ARGUMENT);

    dd::AccessReply reply;
    reply.sequence = 42;
    reply.rc = DRAGON_KEY_NOT_FOUND;
    reply.message = "allocation id 99 of pool 'pool_1' is not live (freed)";
    dd::AccessReply reply_back;
    DM_REQUIRE_OK(dd::decode_reply(dd::encode_reply(reply), reply_back));
    CHECK(reply_back.sequence == 42);
    CHECK(reply_back.rc == DRAGON_KEY_NOT_FOUND);
    CHECK(reply_back.rkey.empty());
    CHECK(reply_back.message == reply.message);
    auto truncated = dd::encode_reply(reply);
    truncated.pop_back();
    CHECK(dd::decode_reply(truncated, reply_back) != DRAGON_SUCCESS);
    // A grant must carry a key (the client would unpack an empty one), a refusal none.
    dd::AccessReply keyless;
    keyless.sequence = 43;
    keyless.rc = DRAGON_SUCCESS;
    keyless.remote_address = 0x7f0000001000;
    CHECK(dd::decode_reply(dd::encode_reply(keyless), reply_back) == DRAGON_FAILURE);
    CHECK(last_error().find("rkey of 0 B") != std::string::npos);
    keyless.rkey = {1, 2, 3};
    DM_CHECK_OK(dd::decode_reply(dd::encode_reply(keyless), reply_back));
    reply.rkey = {1};
    CHECK(dd::decode_reply(dd::encode_reply(reply), reply_back) == DRAGON_FAILURE);
}

TEST_SUITE_END();
