// The GPU, through the CUDA driver API: the few calls a DRAGON_MEMORY_TYPE_GPU pool needs
// (device memory, CUDA IPC handles, copies, host registration). Two implementations:
// cuda_device.cpp when the library is built with CUDA (meson option `cuda`: the toolkit's
// cuda.h; the driver, libcuda.so.1, is loaded at run time), and cuda_device_absent.cpp,
// where every call fails with "built without CUDA".
//
// CUDA is touched only by these calls, never at load time: a process that uses no GPU
// pool never loads the driver (CUDA forbids its use in a child forked after the parent
// initialised it, and the library's users fork freely).
//
// Every call that works on a device runs in that device's primary context, made current
// for the call only: the library never changes its caller's current context or device.
#pragma once

#include <dragon/return_codes.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace dragonmem::detail {

// A CUDA IPC memory handle (CUipcMemHandle, the runtime's cudaIpcMemHandle_t): what another process opens to map the
// same device memory. Stored in a GPU pool's header.
inline constexpr std::size_t k_ipc_handle_bytes = 64;
struct IpcHandle {
    unsigned char bytes[k_ipc_handle_bytes];
};

// Whether the library was built with CUDA.
bool cuda_built_in() noexcept;

// Whether `device` can hold a GPU pool here: MEMORY_ILLEGAL_MEMTYPE "built without
// CUDA"; MEMORY_ERRNO naming what is missing (no driver, no device, the runtime's error);
// INVALID_ARGUMENT when `device` is not one of the visible devices (naming how many are).
// `who` starts the message (e.g. "pool 'p1'").
dragonError_t cuda_check_device(int device, const std::string& who);

// Device memory of `bytes` on `device` (cuMemAlloc) and its IPC handle. On failure nothing is allocated.
dragonError_t cuda_alloc_shared(int device, std::size_t bytes, void*& out, IpcHandle& handle, const std::string& who);
// Frees what cuda_alloc_shared returned (errors are ignored: nothing can be done).
void cuda_free(int device, void* ptr) noexcept;
// Opens another process's IPC handle on `device` (cuIpcOpenMemHandle).
dragonError_t cuda_open_shared(int device, const IpcHandle& handle, void*& out, const std::string& who);
// Closes what cuda_open_shared returned.
void cuda_close_shared(int device, void* ptr) noexcept;

// Where a copy's end lives: host memory (device -1) or device `device`'s memory.
struct CopyEnd {
    int device = -1;
    bool on_device() const noexcept { return device >= 0; }
};
// Copies `bytes` from `src` to `dst` with the copy their places call for
// (host to device, device to host, device to device on one device, peer between two),
// synchronously. Overlapping device ranges are copied through a temporary device buffer
// (a CUDA copy does not promise memmove's semantics). Host to host is the caller's job.
dragonError_t cuda_copy(void* dst, CopyEnd dst_end, const void* src, CopyEnd src_end, std::size_t bytes,
                        const std::string& what);
// Zeroes `bytes` at `ptr` on `device`, synchronously.
dragonError_t cuda_zero(int device, void* ptr, std::size_t bytes, const std::string& what);

// Page-locks host memory [ptr, ptr + bytes) for `device` (cuMemHostRegister, portable:
// every context sees it pinned), and undoes it.
dragonError_t cuda_host_register(int device, void* ptr, std::size_t bytes, const std::string& who);
dragonError_t cuda_host_unregister(int device, void* ptr, const std::string& who);

}  // namespace dragonmem::detail
