// libFuzzer target: strict decoding of serialized MEMORY (allocation) descriptors.
// Oracles as for pools (fuzz_decode_pool.cpp): no crash, INVALID_ARGUMENT + message on
// refusal, exact re-encoding on acceptance, the accepted fields are self-consistent
// (the view lies inside the requested size, the block inside the heap), and
// dragon_memory_attach agrees with the decoder.
#include <dragon/managed_memory.h>

#include "descriptor_seal.hpp"

#include "descr/descriptor_codec.hpp"
#include "os/error.hpp"

#include <cstdint>
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
    DecodedMemory memory;
    dragonError_t rc = decode_memory({data, size}, memory);
    if (rc != DRAGON_SUCCESS) {
        if (rc != DRAGON_INVALID_ARGUMENT || last_error_message().empty()) __builtin_trap();
    } else {
        std::vector<std::uint8_t> again = encode_memory(memory);
        if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
        if (memory.id != 0) {
            std::uint64_t heap = memory.pool.heap_bytes;
            if (memory.requested_bytes == 0 || memory.requested_bytes > heap || memory.block_offset >= heap)
                __builtin_trap();
            if (memory.view_offset > memory.requested_bytes ||
                memory.view_bytes > memory.requested_bytes - memory.view_offset)
                __builtin_trap();
        }
    }
    std::vector<std::uint8_t> copy(data, data + size);
    copy.push_back(0);
    dragonMemorySerial_t ser{size, copy.data()};
    dragonMemoryDescr_t mem;
    dragonError_t rc_attach = dragon_memory_attach(&mem, &ser);
    if (rc != DRAGON_SUCCESS && rc_attach == DRAGON_SUCCESS) __builtin_trap();
    if (rc_attach == DRAGON_SUCCESS) {
        std::size_t bytes = 0;
        std::uint64_t id = 0;
        if (dragon_memory_get_size(&mem, &bytes) != DRAGON_SUCCESS || bytes != memory.view_bytes) __builtin_trap();
        if (dragon_memory_id(&mem, &id) != DRAGON_SUCCESS || id != memory.id) __builtin_trap();
        (void)dragon_memory_detach(&mem);
    }
    return 0;
}
}  // namespace
