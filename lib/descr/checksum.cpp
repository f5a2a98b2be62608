// CRC-32C: the SSE4.2 instruction where the CPU has it, a byte-wise table elsewhere.
#include "descr/checksum.hpp"

#include <array>
#include <cstring>

namespace dragonmem::detail {

namespace {

constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t crc = i;
        for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        table[i] = crc;
    }
    return table;
}

constexpr std::array<std::uint32_t, 256> k_table = make_table();

std::uint32_t crc32c_table(std::uint32_t state, const unsigned char* bytes, std::size_t len) {
    for (std::size_t i = 0; i < len; ++i) state = k_table[(state ^ bytes[i]) & 0xFF] ^ (state >> 8);
    return state;
}

#if defined(__x86_64__)
// SSE4.2 has CRC-32C in hardware: 8 bytes an instruction instead of one table lookup a byte.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(std::uint32_t state, const unsigned char* bytes,
                                                              std::size_t len) {
    std::uint64_t wide = state;
    for (; len >= 8; len -= 8, bytes += 8) {
        std::uint64_t word;
        std::memcpy(&word, bytes, 8);
        wide = __builtin_ia32_crc32di(wide, word);
    }
    state = static_cast<std::uint32_t>(wide);
    for (; len > 0; --len, ++bytes) state = __builtin_ia32_crc32qi(state, *bytes);
    return state;
}

bool have_sse42() {
    static const bool have = __builtin_cpu_supports("sse4.2");
    return have;
}
#endif

}  // namespace

std::uint32_t crc32c_update(std::uint32_t state, const void* data, std::size_t len) {
    const auto* bytes = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
    if (have_sse42()) return crc32c_sse42(state, bytes, len);
#endif
    return crc32c_table(state, bytes, len);
}

std::uint32_t crc32c(const void* data, std::size_t len) { return ~crc32c_update(k_crc32c_init, data, len); }

}  // namespace dragonmem::detail
