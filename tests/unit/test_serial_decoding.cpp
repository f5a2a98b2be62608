// The bad-descriptor matrix (tests/README.md, "Bad serialized descriptors"): every row
// must be INVALID_ARGUMENT with a message, never a crash or an out-of-bounds read, and
// must leave the pool as it was. Walked for pool descriptors (pool_attach, get_uid_fname)
// and allocation descriptors (memory_attach).
#include "testing.hpp"

#include <cstring>
#include <functional>
#include <memory>
#include <random>

using namespace dmtest;

namespace {

// Attaches `bytes` (exactly `len` of them readable at data) as a pool descriptor.
dragonError_t attach_pool_bytes(const std::uint8_t* data, std::size_t len) {
    dragonMemoryPoolSerial_t ser{len, const_cast<std::uint8_t*>(data)};
    dragonMemoryPoolDescr_t pool{};
    const dragonError_t rc = dragon_memory_pool_attach(&pool, &ser);
    if (rc == DRAGON_SUCCESS) (void)dragon_memory_pool_detach(&pool);
    return rc;
}

dragonError_t uid_fname_bytes(const std::uint8_t* data, std::size_t len) {
    dragonMemoryPoolSerial_t ser{len, const_cast<std::uint8_t*>(data)};
    dragonULInt uid = 0;
    char* fname = nullptr;
    const dragonError_t rc = dragon_memory_pool_get_uid_fname(&ser, &uid, &fname);
    std::free(fname);
    return rc;
}

dragonError_t attach_mem_bytes(const std::uint8_t* data, std::size_t len) {
    dragonMemorySerial_t ser{len, const_cast<std::uint8_t*>(data)};
    dragonMemoryDescr_t mem{};
    const dragonError_t rc = dragon_memory_attach(&mem, &ser);
    if (rc == DRAGON_SUCCESS) (void)dragon_memory_detach(&mem);
    return rc;
}

using Decoder = std::function<dragonError_t(const std::uint8_t*, std::size_t)>;

// Copies `bytes` into a heap block of exactly that size, so that ASan reports any read
// past the end.
std::unique_ptr<std::uint8_t[]> exact_copy(const std::vector<std::uint8_t>& bytes) {
    auto copy = std::make_unique<std::uint8_t[]>(bytes.size() ? bytes.size() : 1);
    if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
    return copy;
}

void expect_invalid(const Decoder& decode, const std::vector<std::uint8_t>& bytes, const std::string& row) {
    auto copy = exact_copy(bytes);
    const dragonError_t rc = decode(copy.get(), bytes.size());
    const std::string message = rc != DRAGON_SUCCESS ? last_error() : std::string();
    CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, row << ": got " << toString(rc) << " '" << message << "'");
    if (rc == DRAGON_INVALID_ARGUMENT) CHECK_MESSAGE(!message.empty(), row << ": no message");
}

// Walks the matrix for one decoder against a valid descriptor `good`; returns how
// many rows were tried.
int walk_matrix(const Decoder& decode, const std::vector<std::uint8_t>& good, std::size_t max_len) {
    int rows = 0;
    // Sanity: the real descriptor decodes.
    {
        auto copy = exact_copy(good);
        const dragonError_t rc = decode(copy.get(), good.size());
        REQUIRE_MESSAGE(rc == DRAGON_SUCCESS, "the valid descriptor did not decode: " << toString(rc) << " "
                                                                                         << last_error());
    }
    // Truncated at every length, including 0.
    for (std::size_t n = 0; n < good.size(); ++n, ++rows)
        expect_invalid(decode, std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<long>(n)),
                       "truncated to " + std::to_string(n) + " of " + std::to_string(good.size()));
    // Oversized: trailing bytes.
    for (std::uint8_t tail : {std::uint8_t{0}, std::uint8_t{0xff}}) {
        auto longer = good;
        longer.push_back(tail);
        expect_invalid(decode, longer, "one trailing byte " + std::to_string(tail));
        ++rows;
    }
    {
        auto longer = good;
        longer.resize(max_len + 1, 0);
        expect_invalid(decode, longer, "padded to max_serialized_len + 1");
        longer.resize(1 << 20, 0);
        expect_invalid(decode, longer, "padded to 1 MiB");
        rows += 2;
    }
    // Zeroed, and all ones.
    expect_invalid(decode, std::vector<std::uint8_t>(good.size(), 0), "zeroed");
    expect_invalid(decode, std::vector<std::uint8_t>(good.size(), 0xff), "all 0xff");
    expect_invalid(decode, std::vector<std::uint8_t>(max_len, 0), "max_serialized_len zero bytes");
    rows += 3;
    // Every single bit flipped.
    for (std::size_t byte = 0; byte < good.size(); ++byte)
        for (int bit = 0; bit < 8; ++bit, ++rows) {
            auto flipped = good;
            flipped[byte] ^= static_cast<std::uint8_t>(1u << bit);
            expect_invalid(decode, flipped, "bit " + std::to_string(bit) + " of byte " + std::to_string(byte) +
                                                " flipped");
        }
    // Every byte replaced by each of a few values (catches fields a bit flip cannot
    // move far, such as lengths and the version).
    for (std::size_t byte = 0; byte < good.size(); ++byte)
        for (std::uint8_t value : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{2}, std::uint8_t{0x7f},
                                   std::uint8_t{0x80}, std::uint8_t{0xff}}) {
            if (good[byte] == value) continue;
            auto changed = good;
            changed[byte] = value;
            expect_invalid(decode, changed, "byte " + std::to_string(byte) + " set to " + std::to_string(value));
            ++rows;
        }
    // Random garbage of assorted lengths.
    std::mt19937 rng(99);
    for (int i = 0; i < 300; ++i, ++rows) {
        std::vector<std::uint8_t> junk(rng() % (max_len + 16));
        for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
        expect_invalid(decode, junk, "random garbage #" + std::to_string(i));
    }
    // The real descriptor with a wild length: refused before anything is read past
    // the real bytes (the length is checked against max_serialized_len first).
    {
        auto copy = exact_copy(good);
        for (std::size_t wild : {SIZE_MAX, SIZE_MAX / 2}) {
            const dragonError_t rc = decode(copy.get(), wild);
            CHECK_MESSAGE(rc == DRAGON_INVALID_ARGUMENT, "length " << wild << ": got " << toString(rc));
            ++rows;
        }
    }
    return rows;
}

// The wire layout documented in lib/descr/descriptor_codec.hpp: magic "DMDS" at 0, u16
// version at 4, u16 kind at 6, u32 total length at 8, u32 CRC-32C at 12 (over the
// descriptor with those four bytes left out, or, as the code does, read as zeros),
// pool identity from 16, u8 name length at 57, name at 58.
constexpr std::size_t kVersionAt = 4, kKindAt = 6, kLengthAt = 8, kCrcAt = 12, kNameLenAt = 57;

bool g_crc_field_as_zeros = true;  // which of the two readings the library uses

std::uint32_t layout_crc(const std::vector<std::uint8_t>& bytes, bool crc_field_as_zeros) {
    static const std::uint8_t zeros[4] = {0, 0, 0, 0};
    std::uint32_t state = crc32c_update(k_crc32c_init, bytes.data(), kCrcAt);
    if (crc_field_as_zeros) state = crc32c_update(state, zeros, 4);
    state = crc32c_update(state, bytes.data() + kCrcAt + 4, bytes.size() - kCrcAt - 4);
    return ~state;
}

std::uint32_t layout_crc(const std::vector<std::uint8_t>& bytes) { return layout_crc(bytes, g_crc_field_as_zeros); }

std::uint32_t get_u32(const std::vector<std::uint8_t>& b, std::size_t at) {
    return std::uint32_t{b[at]} | std::uint32_t{b[at + 1]} << 8 | std::uint32_t{b[at + 2]} << 16 |
           std::uint32_t{b[at + 3]} << 24;
}

void put_u16(std::vector<std::uint8_t>& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v);
    b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

void put_u32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::vector<std::uint8_t> resealed(std::vector<std::uint8_t> bytes) {
    put_u32(bytes, kCrcAt, layout_crc(bytes));
    return bytes;
}

// Checks that `good` has the documented layout, so the sealed rows below change the
// fields they mean to change.
void require_documented_layout(const std::vector<std::uint8_t>& good) {
    REQUIRE_MESSAGE(good.size() > kNameLenAt + 1, "descriptor shorter than the documented header");
    REQUIRE_MESSAGE(std::memcmp(good.data(), "DMDS", 4) == 0,
                    "descriptor does not start with the magic of lib/descr/descriptor_codec.hpp; update this test");
    REQUIRE_MESSAGE(get_u32(good, kLengthAt) == good.size(), "length field does not match the documented layout");
    const std::uint32_t stored = get_u32(good, kCrcAt);
    REQUIRE_MESSAGE((stored == layout_crc(good, true) || stored == layout_crc(good, false)),
                    "checksum is not the documented CRC-32C; update this test");
    g_crc_field_as_zeros = stored == layout_crc(good, true);
}

// Rows whose checksum is valid: the decoder must reject the fields themselves.
void walk_sealed_rows(const Decoder& decode, const std::vector<std::uint8_t>& good, std::uint16_t other_kind) {
    require_documented_layout(good);
    // 1: a version-2 body read as version 1 (no secret, no agent) has bytes left over.
    for (std::uint16_t version : {std::uint16_t{0}, std::uint16_t{1}, std::uint16_t{3}, std::uint16_t{0xffff}}) {
        auto b = good;
        put_u16(b, kVersionAt, version);
        expect_invalid(decode, resealed(b), "sealed, wrong version " + std::to_string(version));
    }
    for (std::uint16_t kind : {std::uint16_t{0}, other_kind, std::uint16_t{3}, std::uint16_t{0xffff}}) {
        auto b = good;
        put_u16(b, kKindAt, kind);
        expect_invalid(decode, resealed(b), "sealed, kind " + std::to_string(kind));
    }
    {
        auto b = good;
        b[0] = 'X';
        expect_invalid(decode, resealed(b), "sealed, wrong magic");
    }
    for (std::uint32_t len : {std::uint32_t{0}, static_cast<std::uint32_t>(good.size() - 1),
                              static_cast<std::uint32_t>(good.size() + 1), ~std::uint32_t{0}}) {
        auto b = good;
        put_u32(b, kLengthAt, len);
        expect_invalid(decode, resealed(b), "sealed, length field " + std::to_string(len));
    }
    for (std::uint8_t name_len : {std::uint8_t{0}, std::uint8_t{30}, std::uint8_t{255},
                                  static_cast<std::uint8_t>(good[kNameLenAt] + 1),
                                  static_cast<std::uint8_t>(good[kNameLenAt] - 1)}) {
        auto b = good;
        b[kNameLenAt] = name_len;
        expect_invalid(decode, resealed(b), "sealed, name length " + std::to_string(name_len));
    }
    for (char bad_char : {'/', ' ', '\0', '*', '\n'}) {
        auto b = good;
        b[kNameLenAt + 2] = static_cast<std::uint8_t>(bad_char);
        expect_invalid(decode, resealed(b), "sealed, name with char " + std::to_string(int(bad_char)));
    }
    // Sanity: re-sealing an unchanged descriptor keeps it valid.
    auto same = resealed(good);
    CHECK(same == good);
}

}  // namespace

TEST_SUITE_BEGIN("serial_decoding");

TEST_CASE("bad pool descriptors are INVALID_ARGUMENT for pool_attach") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    const PoolState before = pool_state(pool.pd());
    const auto good = serialize_pool(pool.pd());
    const int rows = walk_matrix(attach_pool_bytes, good, dragon_memory_pool_max_serialized_len());
    MESSAGE("pool_attach: " << rows << " bad descriptors tried");
    CHECK(pool_state(pool.pd()) == before);
}

TEST_CASE("bad pool descriptors are INVALID_ARGUMENT for pool_get_uid_fname") {
    TestPool pool(65536);
    const auto good = serialize_pool(pool.pd());
    const int rows = walk_matrix(uid_fname_bytes, good, dragon_memory_pool_max_serialized_len());
    MESSAGE("pool_get_uid_fname: " << rows << " bad descriptors tried");
}

TEST_CASE("bad allocation descriptors are INVALID_ARGUMENT for memory_attach") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{}, view{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 1000));
    std::size_t len = 10;
    DM_REQUIRE_OK(dragon_memory_descr_clone(&view, &mem, 5, &len));
    const PoolState before = pool_state(pool.pd());
    for (dragonMemoryDescr_t* d : {&mem, &view}) {
        const auto good = serialize_mem(d);
        const int rows = walk_matrix(attach_mem_bytes, good, dragon_memory_max_serialized_len());
        MESSAGE("memory_attach: " << rows << " bad descriptors tried");
    }
    CHECK(pool_state(pool.pd()) == before);
}

TEST_CASE("sealed descriptors with a wrong version, kind, magic, length or name are INVALID_ARGUMENT") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    const auto pool_bytes = serialize_pool(pool.pd());
    const auto mem_bytes = serialize_mem(&mem);
    SUBCASE("pool descriptors") { walk_sealed_rows(attach_pool_bytes, pool_bytes, 2); }
    SUBCASE("pool descriptors, uid_fname") { walk_sealed_rows(uid_fname_bytes, pool_bytes, 2); }
    SUBCASE("allocation descriptors") { walk_sealed_rows(attach_mem_bytes, mem_bytes, 1); }
}

TEST_CASE("a pool descriptor is not an allocation descriptor and vice versa") {
    TestPool pool(65536);
    dragonMemoryDescr_t mem{};
    DM_REQUIRE_OK(dragon_memory_alloc(&mem, pool.pd(), 100));
    const auto pool_bytes = serialize_pool(pool.pd());
    const auto mem_bytes = serialize_mem(&mem);
    expect_invalid(attach_mem_bytes, pool_bytes, "pool descriptor given to memory_attach");
    expect_invalid(attach_pool_bytes, mem_bytes, "allocation descriptor given to pool_attach");
    expect_invalid(uid_fname_bytes, mem_bytes, "allocation descriptor given to pool_get_uid_fname");
}

TEST_CASE("a NULL data pointer is INVALID_ARGUMENT whatever the length") {
    for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{64}}) {
        CAPTURE(len);
        dragonMemoryPoolSerial_t pser{len, nullptr};
        dragonMemoryPoolDescr_t pool{};
        DM_CHECK_RC(dragon_memory_pool_attach(&pool, &pser), DRAGON_INVALID_ARGUMENT);
        dragonMemorySerial_t mser{len, nullptr};
        dragonMemoryDescr_t mem{};
        DM_CHECK_RC(dragon_memory_attach(&mem, &mser), DRAGON_INVALID_ARGUMENT);
    }
}

TEST_SUITE_END();
