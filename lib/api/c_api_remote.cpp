// <dragonmem/remote.h>: argument checks, then lib/remote/byte_range.hpp.
#include <dragonmem/remote.h>

#include "api/c_api_boundary.hpp"
#include "api/c_api_handles.hpp"
#include "remote/byte_range.hpp"
#include "remote/remote_client.hpp"

using namespace dragonmem::detail;

extern "C" {

dragonError_t dragonmem_memory_read(const dragonMemoryDescr_t* mem_descr, size_t offset, void* buffer, size_t bytes,
                                    const timespec_t* timeout) {
    return c_call("memory_read", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "memory_read", mem)) return rc;
        return mem_read_range(*mem, offset, buffer, bytes, timeout);
    });
}

dragonError_t dragonmem_memory_write(const dragonMemoryDescr_t* mem_descr, size_t offset, const void* buffer,
                                     size_t bytes, const timespec_t* timeout) {
    return c_call("memory_write", [&] {
        MemoryRef* mem = nullptr;
        if (dragonError_t rc = find_memory(mem_descr, "memory_write", mem)) return rc;
        return mem_write_range(*mem, offset, buffer, bytes, timeout);
    });
}

int dragonmem_remote_available(void) { return remote_built_in() ? 1 : 0; }

}  // extern "C"
