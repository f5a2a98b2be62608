// libFuzzer target: strict decoding of serialized POOL descriptors (lib/descriptor_codec).
// Oracles: decoding never crashes or reads out of bounds (ASan); a refusal is
// INVALID_ARGUMENT with a message; an accepted input re-encodes to exactly the same
// bytes (strictness: no two encodings of one descriptor, no ignored bytes); the public C
// entry points that decode (pool_get_uid_fname, pool_attach) agree with the decoder.
#include <dragon/managed_memory.h>

#include "descriptor_seal.hpp"

#include "descr/descriptor_codec.hpp"
#include "os/error.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>

using namespace dragonmem::detail;

namespace {
int check_one(const std::uint8_t* data, std::size_t size);
}

// Each input is tried as it is, and again with its length and checksum fields made
// consistent (the fuzzer cannot forge a CRC-32C, and the field checks behind it are what
// needs exploring).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_one(data, size);
    if (size >= 16) {
        std::vector<std::uint8_t> sealed(data, data + size);
        dmtest::reseal(sealed);
        check_one(sealed.data(), sealed.size());
    }
    return 0;
}

namespace {
int check_one(const std::uint8_t* data, std::size_t size) {
    PoolIdentity identity;
    dragonError_t rc = decode_pool({data, size}, identity);
    if (rc != DRAGON_SUCCESS) {
        if (rc != DRAGON_INVALID_ARGUMENT || last_error_message().empty()) __builtin_trap();
    } else {
        std::vector<std::uint8_t> again = encode_pool(identity);
        if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
        if (identity.name.empty() || identity.name.size() > 29) __builtin_trap();
    }
    // The C API over the same bytes (a copy: the API may not keep pointers into it).
    std::vector<std::uint8_t> copy(data, data + size);
    copy.push_back(0);  // non-null data even for size 0
    dragonMemoryPoolSerial_t ser{size, copy.data()};
    dragonULInt uid = 0;
    char* fname = nullptr;
    dragonError_t rc_fname = dragon_memory_pool_get_uid_fname(&ser, &uid, &fname);
    if (rc_fname != rc) __builtin_trap();
    if (rc_fname == DRAGON_SUCCESS && (fname == nullptr || uid != identity.m_uid)) __builtin_trap();
    std::free(fname);
    dragonMemoryPoolDescr_t pool;
    dragonError_t rc_attach = dragon_memory_pool_attach(&pool, &ser);
    if (rc != DRAGON_SUCCESS && rc_attach == DRAGON_SUCCESS) __builtin_trap();
    if (rc_attach == DRAGON_SUCCESS) {
        // Remote (another host's boot id in the corpus) or, rarely, this host's: either
        // way the descriptor answers identity queries consistently.
        dragonULInt muid = 0;
        if (dragon_memory_pool_muid(&pool, &muid) != DRAGON_SUCCESS || muid != identity.m_uid) __builtin_trap();
        (void)dragon_memory_pool_detach(&pool);
    }
    return 0;
}
}  // namespace
