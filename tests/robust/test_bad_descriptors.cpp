// Bad-input matrix, descriptor rows (BAD_INPUTS.md, rows D*): every malformed serialized
// pool or allocation descriptor is refused with the row's code and a message, nothing
// crashes, and the pool the descriptor was taken from is unchanged (free size, listing,
// free blocks and check() identical before and after).
#include "shm_view.hpp"
#include "testing.hpp"

#include <cstring>
#include <random>
#include <thread>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

TEST_SUITE_BEGIN("bad_descriptors");

namespace {

// Serialized layout (lib/descr/descriptor_codec.hpp): envelope 16 B, pool fields, name,
// in format 2 the secret (16 B) and the agent address (length byte + bytes), then the
// allocation fields of a memory descriptor.
constexpr std::size_t k_version_at = 4, k_kind_at = 6, k_hostid_at = 16, k_nonce_at = 40, k_heap_at = 48,
                      k_slot_bits_at = 56, k_name_len_at = 57, k_name_at = 58, k_secret_bytes = 16;

// Where the pool part's tail (format 2: the secret) starts, and where it ends.
std::size_t name_end(const std::vector<std::uint8_t>& d) { return k_name_at + d[k_name_len_at]; }
std::size_t mem_fields_at(const std::vector<std::uint8_t>& d) {
    if (d[k_version_at] == 1) return name_end(d);
    const std::size_t agent_len_at = name_end(d) + k_secret_bytes;
    return agent_len_at + 1 + d[agent_len_at];
}

void put64(std::vector<std::uint8_t>& d, std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) d[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get64(const std::vector<std::uint8_t>& d, std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(d[at + static_cast<std::size_t>(i)]) << (8 * i);
    return v;
}

// Attaching `bytes` as a pool descriptor, through the C API, the C++ API and
// get_uid_fname, must give `expected` with a message.
void pool_rejected(const std::vector<std::uint8_t>& bytes, dragonError_t expected, const std::string& row) {
    count_bad_inputs();
    dragonMemoryPoolSerial_t ser{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
    dragonMemoryPoolDescr_t descr;
    dragonError_t rc = dragon_memory_pool_attach(&descr, &ser);
    std::string msg = rc != DRAGON_SUCCESS ? last_error() : "";
    CHECK_MESSAGE(rc == expected, row << ": pool_attach returned " << toString(rc) << " (expected " << toString(expected)
                                      << "): " << msg);
    if (rc == DRAGON_SUCCESS) (void)dragon_memory_pool_detach(&descr);
    CHECK_MESSAGE((rc == DRAGON_SUCCESS || !msg.empty()), row << ": no message");
    if (expected == DRAGON_INVALID_ARGUMENT) {
        dragonULInt uid = 0;
        char* fname = nullptr;
        rc = dragon_memory_pool_get_uid_fname(&ser, &uid, &fname);
        std::free(fname);
        CHECK_MESSAGE(rc == expected, row << ": pool_get_uid_fname returned " << toString(rc));
    }
    try {
        Pool p = Pool::attach(bytes);
        CHECK_MESSAGE(expected == DRAGON_SUCCESS, row << ": Pool::attach accepted it");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == expected, row << ": Pool::attach threw " << e.code_name() << ": " << e.what());
        CHECK_MESSAGE(std::strlen(e.what()) > 0, row << ": empty exception message");
    }
}

void memory_rejected(const std::vector<std::uint8_t>& bytes, dragonError_t expected, const std::string& row) {
    count_bad_inputs();
    dragonMemorySerial_t ser{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
    dragonMemoryDescr_t mem;
    dragonError_t rc = dragon_memory_attach(&mem, &ser);
    std::string msg = rc != DRAGON_SUCCESS ? last_error() : "";
    CHECK_MESSAGE(rc == expected, row << ": memory_attach returned " << toString(rc) << " (expected "
                                      << toString(expected) << "): " << msg);
    if (rc == DRAGON_SUCCESS) (void)dragon_memory_detach(&mem);
    CHECK_MESSAGE((rc == DRAGON_SUCCESS || !msg.empty()), row << ": no message");
    try {
        Memory m = Memory::attach(bytes);
        CHECK_MESSAGE(expected == DRAGON_SUCCESS, row << ": Memory::attach accepted it");
    } catch (const dragonmem::Error& e) {
        CHECK_MESSAGE(e.code() == expected, row << ": Memory::attach threw " << e.code_name() << ": " << e.what());
    }
}

// A pool with some allocations, a free block or two, and a snapshot to compare with.
struct BadDescriptorFixture {
    ScopedPool scoped{64 * 1024, {}, "bd"};
    std::vector<Memory> live;
    std::vector<std::uint8_t> pool_ser;
    std::vector<std::uint8_t> mem_ser;
    PoolSnapshot before;
    BadDescriptorFixture() {
        Pool& p = scoped.pool();
        for (int i = 0; i < 6; ++i) live.push_back(p.alloc(static_cast<std::size_t>(300 * (i + 1)), static_cast<std::uint64_t>(i)));
        live[2].free();
        pool_ser = p.serialize();
        mem_ser = live[3].serialize();
        before = snapshot(p);
    }
    void require_unchanged(const std::string& row) {
        PoolSnapshot after = snapshot(scoped.pool());
        CHECK_MESSAGE(after == before, row << ": the pool changed\nbefore " << before.describe() << "\nafter  "
                                           << after.describe());
    }
};

}  // namespace

TEST_CASE("D1-D4: empty, truncated at every length, oversized, every single bit flipped") {
    BadDescriptorFixture f;
    for (const auto* source : {&f.pool_ser, &f.mem_ser}) {
        const bool is_pool = source == &f.pool_ser;
        const std::vector<std::uint8_t>& good = *source;
        auto rejected = [&](const std::vector<std::uint8_t>& b, const std::string& row) {
            if (is_pool)
                pool_rejected(b, DRAGON_INVALID_ARGUMENT, row);
            else
                memory_rejected(b, DRAGON_INVALID_ARGUMENT, row);
        };
        const std::string kind = is_pool ? "pool" : "memory";
        // D1: empty (length 0 with a buffer; NULL data).
        rejected({}, "D1 empty " + kind + " descriptor");
        {
            std::uint8_t one = 0;
            if (is_pool) {
                dragonMemoryPoolSerial_t ser{0, &one};
                dragonMemoryPoolDescr_t d;
                DM_CHECK_RC(dragon_memory_pool_attach(&d, &ser), DRAGON_INVALID_ARGUMENT);
                dragonMemoryPoolSerial_t null_data{16, nullptr};
                DM_CHECK_RC(dragon_memory_pool_attach(&d, &null_data), DRAGON_INVALID_ARGUMENT);
            } else {
                dragonMemorySerial_t ser{0, &one};
                dragonMemoryDescr_t d;
                DM_CHECK_RC(dragon_memory_attach(&d, &ser), DRAGON_INVALID_ARGUMENT);
                dragonMemorySerial_t null_data{16, nullptr};
                DM_CHECK_RC(dragon_memory_attach(&d, &null_data), DRAGON_INVALID_ARGUMENT);
            }
            count_bad_inputs(2);
        }
        // D2: truncated at every length.
        for (std::size_t len = 1; len < good.size(); ++len)
            rejected(std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<long>(len)),
                     "D2 " + kind + " truncated to " + std::to_string(len));
        // D3: oversized (trailing bytes, zeros or garbage; and far too long).
        for (std::size_t extra = 1; extra <= 64; ++extra) {
            std::vector<std::uint8_t> b = good;
            b.resize(good.size() + extra, static_cast<std::uint8_t>(extra * 37));
            rejected(b, "D3 " + kind + " with " + std::to_string(extra) + " extra bytes");
            reseal(b);  // even with length and checksum made consistent
            rejected(b, "D3 " + kind + " with " + std::to_string(extra) + " extra bytes, resealed");
        }
        rejected(std::vector<std::uint8_t>(1 << 20, 0x41), "D3 " + kind + " of 1 MiB");
        // D4: every single bit flipped.
        for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
            std::vector<std::uint8_t> b = good;
            b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
            rejected(b, "D4 " + kind + " bit " + std::to_string(bit) + " flipped");
        }
    }
    f.require_unchanged("D1-D4");
}

TEST_CASE("D5-D7: wrong magic, wrong version, wrong kind (with a valid checksum)") {
    BadDescriptorFixture f;
    for (auto* d : {&f.pool_ser, &f.mem_ser}) {
        const bool is_pool = d == &f.pool_ser;
        auto rejected = [&](std::vector<std::uint8_t> b, const std::string& row) {
            reseal(b);
            if (is_pool)
                pool_rejected(b, DRAGON_INVALID_ARGUMENT, row);
            else
                memory_rejected(b, DRAGON_INVALID_ARGUMENT, row);
        };
        std::vector<std::uint8_t> b = *d;
        b[0] = 'X';
        rejected(b, "D5 wrong magic");
        // 1: a format-2 body read as format 1 (no secret, no agent) has bytes left over.
        for (std::uint16_t version : {0, 1, 3, 0xFFFF}) {
            b = *d;
            b[k_version_at] = static_cast<std::uint8_t>(version);
            b[k_version_at + 1] = static_cast<std::uint8_t>(version >> 8);
            rejected(b, "D6 version " + std::to_string(version));
        }
        for (std::uint16_t kind : {0, 3, 0xFFFF}) {
            b = *d;
            b[k_kind_at] = static_cast<std::uint8_t>(kind);
            b[k_kind_at + 1] = 0;
            rejected(b, "D7 kind " + std::to_string(kind));
        }
    }
    // D7: a pool descriptor given as a memory descriptor and the other way round.
    memory_rejected(f.pool_ser, DRAGON_INVALID_ARGUMENT, "D7 pool descriptor to memory_attach");
    pool_rejected(f.mem_ser, DRAGON_INVALID_ARGUMENT, "D7 memory descriptor to pool_attach");
    f.require_unchanged("D5-D7");
}

TEST_CASE("D8: a valid envelope around garbage (checksum recomputed) is refused, or is a well-formed remote pool") {
    BadDescriptorFixture f;
    std::mt19937_64 rng(42);
    int refused = 0, remote = 0, local_but_other = 0, outside = 0;
    std::string outside_example;
    const int trials = long_mode() ? 20000 : 3000;
    for (int trial = 0; trial < trials; ++trial) {
        bool is_pool = trial % 2 == 0;
        std::vector<std::uint8_t> b = is_pool ? f.pool_ser : f.mem_ser;
        // Garbage over a random span of the body; sometimes keep the name length sane.
        std::size_t from = 16 + rng() % (b.size() - 16);
        std::size_t to = from + 1 + rng() % (b.size() - from);
        for (std::size_t i = from; i < to; ++i) b[i] = static_cast<std::uint8_t>(rng());
        if (trial % 3 == 0) b[k_name_len_at] = f.pool_ser[k_name_len_at];
        reseal(b);
        count_bad_inputs();
        if (is_pool) {
            dragonMemoryPoolSerial_t ser{b.size(), b.data()};
            dragonMemoryPoolDescr_t d;
            dragonError_t rc = dragon_memory_pool_attach(&d, &ser);
            if (rc == DRAGON_SUCCESS) {
                // Accepted: a descriptor of a pool elsewhere, or (garbage that missed the
                // identity fields) exactly this pool.
                ++remote;
                if (dragon_memory_pool_is_local(&d)) {
                    dragonMemoryPoolSerial_t again{};
                    bool same = dragon_memory_pool_serialize(&again, &d) == DRAGON_SUCCESS &&
                                std::vector<std::uint8_t>(again.data, again.data + again.len) == f.pool_ser;
                    (void)dragon_memory_pool_serial_free(&again);
                    if (!same) ++local_but_other;
                }
                (void)dragon_memory_pool_detach(&d);
            } else {
                ++refused;
                std::string msg = last_error();
                CHECK_MESSAGE((rc == DRAGON_INVALID_ARGUMENT || rc == DRAGON_OBJECT_DESTROYED),
                              "D8 trial " << trial << ": " << toString(rc) << ": " << msg);
                CHECK(!msg.empty());
            }
        } else {
            dragonMemorySerial_t ser{b.size(), b.data()};
            dragonMemoryDescr_t m;
            dragonError_t rc = dragon_memory_attach(&m, &ser);
            if (rc == DRAGON_SUCCESS) {
                ++remote;
                // Accepted garbage must never give a pointer outside the real allocation.
                void* ptr = nullptr;
                std::size_t size = 0;
                if (dragon_memory_get_pointer(&m, &ptr) == DRAGON_SUCCESS && ptr != nullptr) {
                    (void)dragon_memory_get_size(&m, &size);
                    auto* heap = static_cast<std::uint8_t*>(f.scoped.pool().base_pointer());
                    auto* p = static_cast<std::uint8_t*>(ptr);
                    bool inside = false;
                    for (const auto& a : f.scoped.pool().allocations())
                        inside = inside || (p >= heap + a.offset && p + size <= heap + a.offset + a.size);
                    if (!inside && outside++ == 0)
                        outside_example = "trial " + std::to_string(trial) + ": pointer heap+" +
                                          std::to_string(p - heap) + ", size " + std::to_string(size);
                }
                (void)dragon_memory_detach(&m);
            } else {
                ++refused;
                CHECK_MESSAGE((rc == DRAGON_INVALID_ARGUMENT || rc == DRAGON_OBJECT_DESTROYED),
                              "D8 trial " << trial << ": " << toString(rc) << ": " << last_error());
            }
        }
    }
    MESSAGE("D8: " << refused << " refused, " << remote << " accepted as well-formed");
    CHECK_MESSAGE(local_but_other == 0, local_but_other << " garbage pool descriptors attached a local pool other "
                                                           "than the one they came from");
    CHECK_MESSAGE(outside == 0, outside << " garbage memory descriptors were accepted and gave a pointer+size outside "
                                           "every live allocation, e.g. "
                                        << outside_example);
    f.require_unchanged("D8");
}

TEST_CASE("D9-D13: field checks behind a valid checksum (names, hostid, instance, heap size, slot bits)") {
    BadDescriptorFixture f;
    auto with = [&](auto edit) {
        std::vector<std::uint8_t> b = f.pool_ser;
        edit(b);
        reseal(b);
        return b;
    };
    // D9: names that cannot be pool names.
    auto set_name = [&](std::vector<std::uint8_t>& b, const std::string& name) {
        const std::vector<std::uint8_t> tail(b.begin() + static_cast<std::ptrdiff_t>(name_end(b)), b.end());
        b.resize(k_name_at);
        b[k_name_len_at] = static_cast<std::uint8_t>(name.size());
        b.insert(b.end(), name.begin(), name.end());
        b.insert(b.end(), tail.begin(), tail.end());  // the secret and agent stay
    };
    for (std::string name : {std::string(""), std::string(30, 'a'), std::string("a/b"), std::string(".hidden"),
                             std::string("-dash"), std::string("sp ace"), std::string("nul\0x", 5), std::string("é")})
        pool_rejected(with([&](auto& b) { set_name(b, name); }), DRAGON_INVALID_ARGUMENT, "D9 name '" + name + "'");
    // A name length byte that runs past the end.
    pool_rejected(with([&](auto& b) { b[k_name_len_at] = 200; }), DRAGON_INVALID_ARGUMENT, "D9 name length 200");
    // D10-D13: zero host, zero instance, impossible heap sizes and slot bits.
    pool_rejected(with([&](auto& b) { put64(b, k_hostid_at, 0); }), DRAGON_INVALID_ARGUMENT, "D10 hostid 0");
    pool_rejected(with([&](auto& b) { put64(b, k_nonce_at, 0); }), DRAGON_INVALID_ARGUMENT, "D11 nonce 0");
    for (std::uint64_t heap : {0ULL, 1ULL, 128ULL, 3000ULL, (1ULL << 20) + 1, ~0ULL})
        pool_rejected(with([&](auto& b) { put64(b, k_heap_at, heap); }), DRAGON_INVALID_ARGUMENT,
                      "D12 heap size " + std::to_string(heap));
    for (int bits : {0, 33, 64, 255})
        pool_rejected(with([&](auto& b) { b[k_slot_bits_at] = static_cast<std::uint8_t>(bits); }),
                      DRAGON_INVALID_ARGUMENT, "D13 slot bits " + std::to_string(bits));
    // D14: a well-formed descriptor of this host naming a pool that does not exist.
    pool_rejected(with([&](auto& b) { set_name(b, "dmrnosuchpool" + std::to_string(::getpid())); }),
                  DRAGON_OBJECT_DESTROYED, "D14 local pool that does not exist");
    // The same pool with another instance number: not this pool.
    pool_rejected(with([&](auto& b) { put64(b, k_nonce_at, get64(b, k_nonce_at) ^ 1); }), DRAGON_OBJECT_DESTROYED,
                  "D14 right name, wrong pool instance");
    f.require_unchanged("D9-D14");
}

TEST_CASE("D15-D16: memory descriptors whose allocation fields are inconsistent or forged") {
    BadDescriptorFixture f;
    Pool& pool = f.scoped.pool();
    const std::size_t at = mem_fields_at(f.mem_ser);
    const std::uint64_t heap = pool.heap_bytes();
    enum { ID = 0, TYPE = 8, BLOCK = 16, REQ = 24, VOFF = 32, VLEN = 40 };
    auto with = [&](std::initializer_list<std::pair<int, std::uint64_t>> edits) {
        std::vector<std::uint8_t> b = f.mem_ser;
        for (auto [field_at, value] : edits) put64(b, at + static_cast<std::size_t>(field_at), value);
        reseal(b);
        return b;
    };
    const std::uint64_t id = f.live[3].id();
    const std::uint64_t req = f.live[3].size();
    // D15: fields that cannot describe any allocation.
    memory_rejected(with({{REQ, 0}}), DRAGON_INVALID_ARGUMENT, "D15 requested 0 with a non-zero id");
    memory_rejected(with({{REQ, heap + 1}}), DRAGON_INVALID_ARGUMENT, "D15 requested larger than the heap");
    memory_rejected(with({{BLOCK, heap}}), DRAGON_INVALID_ARGUMENT, "D15 block offset at the heap end");
    memory_rejected(with({{VOFF, req + 1}}), DRAGON_INVALID_ARGUMENT, "D15 view offset past the allocation");
    memory_rejected(with({{VLEN, req + 1}}), DRAGON_INVALID_ARGUMENT, "D15 view longer than the allocation");
    memory_rejected(with({{VOFF, 1}, {VLEN, req}}), DRAGON_INVALID_ARGUMENT, "D15 view offset + length past the end");
    memory_rejected(with({{ID, 0}}), DRAGON_INVALID_ARGUMENT, "D15 id 0 with a size");
    memory_rejected(with({{BLOCK, ~0ULL}}), DRAGON_INVALID_ARGUMENT, "D15 block offset 2^64-1");
    memory_rejected(with({{VOFF, ~0ULL}, {VLEN, 2}}), DRAGON_INVALID_ARGUMENT, "D15 view offset overflow");

    // D16: forged fields of a LIVE allocation. Whatever attach does with them, it must
    // never hand out a pointer+size outside that allocation's block.
    struct Forgery {
        std::string row;
        std::vector<std::uint8_t> bytes;
    };
    const std::uint64_t real_block = f.live[3].block_offset();
    std::vector<Forgery> forged = {
        {"D16 block offset of another allocation", with({{BLOCK, f.live[0].block_offset()}})},
        {"D16 block offset near the heap end (block would run past the heap)", with({{BLOCK, heap - 32}})},
        {"D16 requested size larger than the real allocation", with({{REQ, heap / 2}, {VLEN, heap / 2}})},
        {"D16 misaligned block offset", with({{BLOCK, real_block + 8}})},
    };
    for (const Forgery& fg : forged) {
        count_bad_inputs();
        Isolated r = run_isolated([&]() -> std::string {
            dragonMemorySerial_t ser{fg.bytes.size(), const_cast<std::uint8_t*>(fg.bytes.data())};
            dragonMemoryDescr_t m;
            dragonError_t rc = dragon_memory_attach(&m, &ser);
            if (rc != DRAGON_SUCCESS) return "refused " + std::to_string(static_cast<int>(rc)) + " " + last_error();
            void* ptr = nullptr;
            std::size_t size = 0;
            dragonError_t rp = dragon_memory_get_pointer(&m, &ptr);
            (void)dragon_memory_get_size(&m, &size);
            if (rp != DRAGON_SUCCESS) return "pointer-refused " + std::to_string(static_cast<int>(rp)) + " " + last_error();
            auto* base = static_cast<std::uint8_t*>(pool.base_pointer());
            auto* p = static_cast<std::uint8_t*>(ptr);
            bool inside = p >= base + real_block && p + size <= base + real_block + req;
            return std::string(inside ? "inside" : "OUTSIDE") + " pointer=heap+" + std::to_string(p - base) +
                   " size=" + std::to_string(size) + " (real block at " + std::to_string(real_block) + ", " +
                   std::to_string(req) + " B; heap " + std::to_string(heap) + " B)";
        });
        REQUIRE_MESSAGE(r.completed, fg.row << ": " << r.text);
        bool ok = r.text.rfind("refused 1 ", 0) == 0 || r.text.rfind("pointer-refused", 0) == 0 ||
                  r.text.rfind("inside", 0) == 0;
        CHECK_MESSAGE(ok, fg.row << ": attach accepted a forged descriptor of live id " << id << " and gave "
                                 << r.text);
    }
    f.require_unchanged("D15-D16");
}

TEST_CASE("D17-D19: descriptors of freed allocations and of destroyed or re-created pools") {
    // D17: an allocation freed after it was serialized.
    {
        BadDescriptorFixture f;
        Pool& pool = f.scoped.pool();
        std::vector<std::uint8_t> stale = f.live[4].serialize();
        f.live[4].free();
        PoolSnapshot before = snapshot(pool);
        count_bad_inputs();
        dragonMemorySerial_t ser{stale.size(), stale.data()};
        dragonMemoryDescr_t m;
        dragonError_t rc = dragon_memory_attach(&m, &ser);
        if (rc == DRAGON_SUCCESS) {
            void* ptr = nullptr;
            DM_CHECK_RC(dragon_memory_get_pointer(&m, &ptr), DRAGON_KEY_NOT_FOUND);
            int flag = 7;
            DM_CHECK_RC(dragon_memory_pool_allocation_exists(&m, &flag), DRAGON_SUCCESS);
            CHECK(flag == 0);
            DM_CHECK_RC(dragon_memory_free(&m), DRAGON_KEY_NOT_FOUND);
            (void)dragon_memory_detach(&m);
        } else {
            CHECK_MESSAGE(rc == DRAGON_KEY_NOT_FOUND, toString(rc));
        }
        // A newer allocation in the same block is not reachable through the stale one.
        Memory newer = pool.alloc(1500);
        rc = dragon_memory_attach(&m, &ser);
        if (rc == DRAGON_SUCCESS) {
            DM_CHECK_RC(dragon_memory_free(&m), DRAGON_KEY_NOT_FOUND);
            (void)dragon_memory_detach(&m);
        }
        CHECK(newer.exists());
        newer.free();
        PoolSnapshot after = snapshot(pool);
        CHECK_MESSAGE(after == before, "D17\nbefore " << before.describe() << "\nafter  " << after.describe());
    }
    // D18: a destroyed pool, in this process and in another one.
    {
        std::string name;
        std::vector<std::uint8_t> pool_ser, mem_ser;
        {
            ScopedPool scoped(64 * 1024, {}, "ds");
            name = scoped.name();
            Memory m = scoped.pool().alloc(100);
            pool_ser = scoped.pool().serialize();
            mem_ser = m.serialize();
            scoped.pool().destroy();
        }
        REQUIRE_FALSE(shm_exists(name));
        pool_rejected(pool_ser, DRAGON_OBJECT_DESTROYED, "D18 pool descriptor of a destroyed pool");
        memory_rejected(mem_ser, DRAGON_OBJECT_DESTROYED, "D18 memory descriptor of a destroyed pool");
        Child other = Child::spawn({child_program(), "attach"}, {{"DMR_POOL", base64_encode(pool_ser)}});
        auto line = other.wait_line("attach", 10000);
        REQUIRE_MESSAGE(line.has_value(), other.output());
        int rc = std::stoi(field(*line, "rc"));
        CHECK_MESSAGE((rc == DRAGON_OBJECT_DESTROYED || rc == DRAGON_MEMORY_ERRNO), *line);
        CHECK_FALSE(field(*line, "msg").empty());
        count_bad_inputs();
    }
    // D19: a pool destroyed and re-created under the same name.
    {
        ScopedPool first(64 * 1024, {}, "rc");
        const std::string name = first.name();
        Memory m = first.pool().alloc(100);
        std::vector<std::uint8_t> old_pool = first.pool().serialize();
        std::vector<std::uint8_t> old_mem = m.serialize();
        first.pool().destroy();
        Pool second = Pool::create(name, 64 * 1024);
        Memory m2 = second.alloc(100);  // same offset and likely the same id as the old one
        PoolSnapshot before = snapshot(second);
        pool_rejected(old_pool, DRAGON_OBJECT_DESTROYED, "D19 old pool descriptor, pool re-created");
        memory_rejected(old_mem, DRAGON_OBJECT_DESTROYED, "D19 old memory descriptor, pool re-created");
        PoolSnapshot after = snapshot(second);
        CHECK_MESSAGE(after == before, "D19\nbefore " << before.describe() << "\nafter  " << after.describe());
        m2.free();
        second.destroy();
    }
}

TEST_CASE("D20: base64 and environment-variable forms") {
    BadDescriptorFixture f;
    const std::string good = base64_encode(f.pool_ser);
    struct Case {
        std::string value;
        const char* row;
    };
    std::vector<Case> cases = {
        {"", "D20 empty string"},
        {"!!!!", "D20 not base64"},
        {good.substr(0, good.size() - 4), "D20 base64 of a truncated descriptor"},
        {good + "AAAA", "D20 base64 with extra bytes"},
        {good.substr(0, good.size() - 1), "D20 base64 with a missing character"},
        {std::string(4000, 'A'), "D20 4000 base64 characters of zeros"},
        {"QUJD\nREVG", "D20 base64 with a newline"},
    };
    const std::string var = "DMR_BAD_" + std::to_string(::getpid());
    for (const Case& c : cases) {
        count_bad_inputs(3);
        ::setenv(var.c_str(), c.value.c_str(), 1);
        dragonMemoryPoolDescr_t d;
        dragonError_t rc = dragon_memory_pool_attach_from_env(&d, var.c_str());
        std::string msg = last_error();
        CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, c.row << ": " << toString(rc) << ": " << msg);
        CHECK_MESSAGE(!msg.empty(), c.row);
        try {
            Pool p = Pool::attach_base64(c.value);
            FAIL_CHECK(c.row << ": Pool::attach_base64 accepted it");
        } catch (const dragonmem::Error& e) {
            CHECK_MESSAGE(e.code() == DRAGON_INVALID_ARGUMENT, c.row << ": " << e.what());
        }
        try {
            Memory m = Memory::attach_base64(c.value);
            FAIL_CHECK(c.row << ": Memory::attach_base64 accepted it");
        } catch (const dragonmem::Error& e) {
            CHECK_MESSAGE(e.code() == DRAGON_INVALID_ARGUMENT, c.row << ": " << e.what());
        }
    }
    ::unsetenv(var.c_str());
    dragonMemoryPoolDescr_t d;
    DM_CHECK_RC(dragon_memory_pool_attach_from_env(&d, var.c_str()), DRAGON_INVALID_ARGUMENT);  // unset
    count_bad_inputs();
    f.require_unchanged("D20");
}

// D21-D26 (issue 9, item 3): a descriptor naming an id the pool has not issued yet
// would, once that id is issued, resolve to whatever allocation gets it, with the
// descriptor's forged offset and size. Attach must refuse it; and get_pointer must take
// the block from the manifest record, so that a descriptor attached in the instant
// between an id's counter being taken and its record being published (D26) still yields
// only that allocation's bytes.
TEST_CASE("D21-D26: forged descriptors naming ids not issued yet, and ids in flight") {
    BadDescriptorFixture f;
    Pool& pool = f.scoped.pool();
    const std::size_t at = mem_fields_at(f.mem_ser);
    const std::uint64_t heap = pool.heap_bytes();
    const unsigned slot_bits = f.mem_ser[k_slot_bits_at];
    enum { ID = 0, TYPE = 8, BLOCK = 16, REQ = 24, VOFF = 32, VLEN = 40 };
    auto with = [&](std::uint64_t id, std::initializer_list<std::pair<int, std::uint64_t>> edits) {
        std::vector<std::uint8_t> b = f.mem_ser;
        put64(b, at + ID, id);
        for (auto [field_at, value] : edits) put64(b, at + static_cast<std::size_t>(field_at), value);
        reseal(b);
        return b;
    };
    auto id_of = [&](std::uint64_t counter, std::uint64_t slot) { return (counter << slot_bits) | slot; };
    // The pool's counter: every counter up to it is reserved (issued, or held unissued in
    // a thread's id block); the next locked allocation of a thread without a cache entry
    // gets the one after it.
    std::uint64_t counter = 0;
    {
        dmtest::ShmView view(f.scoped.name(), false);
        REQUIRE(view.ok());
        counter = view.header()->id_counter.load();
    }
    REQUIRE(counter >= (f.live[5].id() >> slot_bits));
    // A freed allocation whose fields we know: D25 forges its slot's next id.
    const std::vector<std::uint8_t> freed_ser = f.live[4].serialize();
    const std::uint64_t freed_slot = f.live[4].id() & ((std::uint64_t{1} << slot_bits) - 1);
    f.live[4].free();
    f.before = snapshot(pool);
    const std::uint64_t real_block = f.live[3].block_offset();

    struct Forgery {
        std::string row;
        std::uint64_t id;
        std::vector<std::uint8_t> bytes;
    };
    // The allocations below are each made by a fresh thread (no thread cache: the locked
    // path), so they take the lowest free slot or the high-water mark: a slot below
    // slot_hwm + 4.
    std::uint64_t slot_limit = 0;
    {
        dmtest::ShmView view(f.scoped.name(), false);
        REQUIRE(view.ok());
        slot_limit = view.header()->slot_hwm + 4;
    }
    std::vector<Forgery> forged;
    // The next three ids in every such slot: the allocations made below get three of them.
    for (std::uint64_t k = 1; k <= 3; ++k)
        for (std::uint64_t slot = 0; slot < slot_limit; ++slot) {
            const std::uint64_t id = id_of(counter + k, slot);
            const std::string of = " (future id " + std::to_string(id) + ")";
            forged.push_back({"D21 future id, fields of another live allocation" + of, id, with(id, {})});
            forged.push_back({"D22 future id, block offset heap-32, size and view the whole heap" + of, id,
                              with(id, {{BLOCK, heap - 32}, {REQ, heap}, {VOFF, 0}, {VLEN, heap}})});
            forged.push_back({"D23 future id, the real offset, size the whole heap" + of, id,
                              with(id, {{BLOCK, real_block}, {REQ, heap}, {VOFF, 0}, {VLEN, heap}})});
            forged.push_back({"D24 future id, view offset heap-64 of a forged whole-heap size" + of, id,
                              with(id, {{BLOCK, 0}, {REQ, heap}, {VOFF, heap - 64}, {VLEN, 64}})});
        }
    // D25: the id the freed allocation's slot gets when it is reissued, with the freed
    // allocation's own (once true) fields.
    {
        const std::uint64_t id = id_of(counter + 1, freed_slot);
        std::vector<std::uint8_t> b = freed_ser;
        put64(b, at + ID, id);
        reseal(b);
        forged.push_back({"D25 the freed slot's next id, with the freed allocation's fields", id, b});
    }
    // Not issued yet: refused at attach, through the C and the C++ API.
    std::vector<std::pair<const Forgery*, dragonMemoryDescr_t>> accepted;
    std::vector<std::pair<const Forgery*, Memory>> accepted_cxx;
    for (const Forgery& fg : forged) {
        count_bad_inputs(2);
        dragonMemorySerial_t ser{fg.bytes.size(), const_cast<std::uint8_t*>(fg.bytes.data())};
        dragonMemoryDescr_t m;
        dragonError_t rc = dragon_memory_attach(&m, &ser);
        std::string msg = rc == DRAGON_SUCCESS ? "" : last_error();
        CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, fg.row << ": memory_attach returned " << toString(rc) << ": " << msg);
        if (rc == DRAGON_SUCCESS)
            accepted.emplace_back(&fg, m);
        else
            CHECK_MESSAGE(msg.find(std::to_string(fg.id)) != std::string::npos, fg.row << ": message without the id: " << msg);
        try {
            accepted_cxx.emplace_back(&fg, Memory::attach(fg.bytes));
            FAIL_CHECK(fg.row << ": Memory::attach accepted it");
        } catch (const dragonmem::Error& e) {
            CHECK_MESSAGE(e.code() == DRAGON_INVALID_ARGUMENT, fg.row << ": Memory::attach threw " << e.code_name());
        }
    }
    f.require_unchanged("D21-D25 attach");

    // D26: an id in flight. A thread has taken the next counter but not yet published
    // its record (simulated: the counter is advanced in shared memory, a forged
    // descriptor of that id attached, the counter put back, and the allocation made).
    // Attach cannot tell this id from one freed since (it is issued, not live) and
    // accepts it; get_pointer must then use the record, not the forged fields.
    const std::uint64_t in_flight_counter = counter + 4;
    const std::size_t in_flight_bytes = 100;
    struct InFlight {
        std::string row;
        std::vector<std::uint8_t> bytes;
        dragonMemoryDescr_t descr{};
        bool attached = false;
    };
    std::vector<InFlight> in_flight;
    {
        dmtest::ShmView view(f.scoped.name(), true);
        REQUIRE(view.ok());
        auto& id_counter = view.header()->id_counter;
        for (std::uint64_t slot = 0; slot < slot_limit; ++slot) {
            const std::uint64_t id = id_of(in_flight_counter, slot);
            const std::string of = " (id " + std::to_string(id) + " in flight)";
            in_flight.push_back({"D26 block offset heap-32, the right size" + of,
                                 with(id, {{BLOCK, heap - 32}, {REQ, in_flight_bytes}, {VOFF, 0}, {VLEN, in_flight_bytes}})});
            in_flight.push_back({"D26 another allocation's block, size the whole heap" + of,
                                 with(id, {{BLOCK, real_block}, {REQ, heap}, {VOFF, 0}, {VLEN, heap}})});
        }
        // Allocations below take counters counter+1..counter+3; the in-flight one is +4.
        for (InFlight& fl : in_flight) {
            count_bad_inputs();
            const std::uint64_t saved = id_counter.load();
            id_counter.store(in_flight_counter);
            dragonMemorySerial_t ser{fl.bytes.size(), fl.bytes.data()};
            dragonError_t rc = dragon_memory_attach(&fl.descr, &ser);
            id_counter.store(saved);
            fl.attached = rc == DRAGON_SUCCESS;
            // Refusing is fine too (a stricter attach); what matters is what an accepted one yields.
            if (!fl.attached)
                CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, fl.row << ": " << toString(rc) << ": " << last_error());
        }
    }

    // Issue the ids: counters +1..+3, then +4 (the one in flight), each by a fresh thread.
    std::vector<Memory> issued;
    for (std::size_t bytes : {std::size_t{900}, std::size_t{500}, std::size_t{40}, in_flight_bytes})
        std::thread([&] { issued.push_back(pool.alloc(bytes)); }).join();
    REQUIRE((issued.back().id() >> slot_bits) == in_flight_counter);
    for (const Memory& m : issued)  // every issued id was among the forged ones
        REQUIRE_MESSAGE((m.id() & ((std::uint64_t{1} << slot_bits) - 1)) < slot_limit, "id " << m.id());
    auto* base = static_cast<std::uint8_t*>(pool.base_pointer());
    // Whatever an accepted descriptor yields lies inside the allocation that holds its id.
    auto verdict = [&](const std::string& row, std::uint64_t id, void* ptr, dragonError_t rp, std::size_t size) {
        if (rp != DRAGON_SUCCESS) return;
        const Memory* owner = nullptr;
        for (const Memory& m : issued)
            if (m.id() == id) owner = &m;
        auto* p = static_cast<std::uint8_t*>(ptr);
        bool inside = owner != nullptr && p >= base + owner->block_offset() &&
                      p + size <= base + owner->block_offset() + owner->size();
        CHECK_MESSAGE(inside, row << ": get_pointer gave heap+" << (p - base) << " and " << size << " B, outside "
                                  << (owner ? "the block of that id at heap+" + std::to_string(owner->block_offset()) +
                                                  " (" + std::to_string(owner->size()) + " B)"
                                            : std::string("every allocation of that id")));
    };
    for (auto& [fg, m] : accepted) {
        void* ptr = nullptr;
        std::size_t size = 0;
        dragonError_t rp = dragon_memory_get_pointer(&m, &ptr);
        (void)dragon_memory_get_size(&m, &size);
        verdict(fg->row, fg->id, ptr, rp, size);
        (void)dragon_memory_detach(&m);
    }
    for (auto& [fg, m] : accepted_cxx) {
        try {
            verdict(fg->row + " (C++)", fg->id, m.pointer(), DRAGON_SUCCESS, m.size());
        } catch (const dragonmem::Error&) {
        }
    }
    accepted_cxx.clear();
    int in_flight_attached = 0;
    for (InFlight& fl : in_flight) {
        if (!fl.attached) continue;
        ++in_flight_attached;
        void* ptr = nullptr;
        std::size_t size = 0;
        dragonError_t rp = dragon_memory_get_pointer(&fl.descr, &ptr);
        std::string msg = rp == DRAGON_SUCCESS ? "" : last_error();
        (void)dragon_memory_get_size(&fl.descr, &size);
        std::uint64_t id = 0;
        (void)dragon_memory_id(&fl.descr, &id);
        if (rp != DRAGON_SUCCESS)
            CHECK_MESSAGE((rp == DRAGON_KEY_NOT_FOUND && !msg.empty()), fl.row << ": " << toString(rp) << ": " << msg);
        verdict(fl.row, id, ptr, rp, size);
        (void)dragon_memory_detach(&fl.descr);
    }
    MESSAGE("D26: " << in_flight_attached << " of " << in_flight.size() << " in-flight forgeries attached");
    for (Memory& m : issued) m.free();
    CHECK(pool.check().ok);
}

// D27 (issue 11): a thread that caches takes its ids from a block of counters reserved
// on the pool's counter. Counters of that block it has not issued yet are below the
// pool's counter, yet no allocation holds them: attach must refuse them as it refuses
// counters past the pool's. Once the thread issues one, a true descriptor of it attaches.
TEST_CASE("D27: ids reserved in a thread's id block but not issued yet are refused; issued ones attach") {
    ScopedPool scoped{64 * 1024, {}, "bd27"};
    Pool& pool = scoped.pool();
    std::vector<Memory> live;
    for (int i = 0; i < 4; ++i) live.push_back(pool.alloc(64));  // the 2nd claims an entry; then its block
    const std::vector<std::uint8_t> ser = live.back().serialize();
    const std::size_t at = mem_fields_at(ser);
    const unsigned slot_bits = ser[k_slot_bits_at];
    const std::uint64_t newest = live.back().id() >> slot_bits;
    std::uint64_t pool_counter = 0;
    {
        dmtest::ShmView view(scoped.name(), false);
        REQUIRE(view.ok());
        pool_counter = view.header()->id_counter.load();
    }
    // The block reaches well past the newest id: the counters after it are reserved, not issued.
    REQUIRE_MESSAGE(pool_counter >= newest + 8, "pool counter " << pool_counter << ", newest " << newest);
    auto forge = [&](std::uint64_t id) {
        std::vector<std::uint8_t> b = ser;
        put64(b, at, id);
        reseal(b);
        return b;
    };
    const PoolSnapshot before = snapshot(pool);
    for (std::uint64_t k = 1; k <= 4; ++k)
        for (std::uint64_t slot = 0; slot < 8; ++slot) {
            const std::uint64_t id = (((newest + k) << slot_bits) | slot);
            const std::vector<std::uint8_t> b = forge(id);
            count_bad_inputs();
            dragonMemorySerial_t s{b.size(), const_cast<std::uint8_t*>(b.data())};
            dragonMemoryDescr_t m;
            dragonError_t rc = dragon_memory_attach(&m, &s);
            std::string msg = rc == DRAGON_SUCCESS ? "" : last_error();
            CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, "reserved id " << id << ": attach returned " << toString(rc));
            if (rc == DRAGON_SUCCESS) (void)dragon_memory_detach(&m);
            else CHECK_MESSAGE(msg.find(std::to_string(id)) != std::string::npos, "message without the id: " << msg);
        }
    CHECK_MESSAGE(snapshot(pool) == before, "D27: the pool changed");
    // The same thread's next allocation issues the next counter of its block; its own
    // descriptor attaches (and a freed one's too: issued, then freed).
    Memory next = pool.alloc(64);
    CHECK((next.id() >> slot_bits) == newest + 1);
    Memory again = Memory::attach(next.serialize());
    CHECK(again.pointer() == next.pointer());
    const std::vector<std::uint8_t> freed = live.front().serialize();
    live.front().free();
    Memory gone = Memory::attach(freed);
    CHECK_FALSE(gone.exists());
    CHECK(pool.check().ok);
}

TEST_SUITE_END();
