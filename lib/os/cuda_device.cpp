// cuda_device.hpp over the CUDA driver API, loaded at run time (dlopen of libcuda.so.1,
// the driver's own library). The library links nothing of CUDA: built with the toolkit's
// header only, it runs anywhere, and GPU pools work wherever an NVIDIA driver is
// installed; without one, the first GPU call says that libcuda.so.1 is missing. (Linking
// the CUDA runtime instead would tie the static library's users to the toolkit's
// libcudart_static.a and every consumer's link line to the toolkit's path.)
//
// Contexts: every call runs in the device's primary context (the one the CUDA runtime
// uses too, so pointers and IPC handles pass freely between this library and a
// program's own runtime calls), pushed for the call and popped after: the calling
// thread's current context is as it was.
#include "os/cuda_device.hpp"

#include "os/error.hpp"

#include <cuda.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace dragonmem::detail {

static_assert(sizeof(CUipcMemHandle) == k_ipc_handle_bytes, "IpcHandle holds a CUipcMemHandle");

namespace {

// The driver's entry points this file uses. Each macro of cuda.h that renames a call to
// its versioned symbol (cuMemAlloc -> cuMemAlloc_v2) is matched by the name looked up.
struct Driver {
    std::string unusable;  // why the driver cannot be used ("" when it can)
    CUresult (*init)(unsigned int) = nullptr;
    CUresult (*driver_version)(int*) = nullptr;
    CUresult (*error_name)(CUresult, const char**) = nullptr;
    CUresult (*error_string)(CUresult, const char**) = nullptr;
    CUresult (*device_count)(int*) = nullptr;
    CUresult (*device_get)(CUdevice*, int) = nullptr;
    CUresult (*primary_retain)(CUcontext*, CUdevice) = nullptr;
    CUresult (*ctx_push)(CUcontext) = nullptr;
    CUresult (*ctx_pop)(CUcontext*) = nullptr;
    CUresult (*mem_alloc)(CUdeviceptr*, std::size_t) = nullptr;
    CUresult (*mem_free)(CUdeviceptr) = nullptr;
    CUresult (*mem_info)(std::size_t*, std::size_t*) = nullptr;
    CUresult (*ipc_get)(CUipcMemHandle*, CUdeviceptr) = nullptr;
    CUresult (*ipc_open)(CUdeviceptr*, CUipcMemHandle, unsigned int) = nullptr;
    CUresult (*ipc_close)(CUdeviceptr) = nullptr;
    CUresult (*copy_htod)(CUdeviceptr, const void*, std::size_t) = nullptr;
    CUresult (*copy_dtoh)(void*, CUdeviceptr, std::size_t) = nullptr;
    CUresult (*copy_dtod)(CUdeviceptr, CUdeviceptr, std::size_t) = nullptr;
    CUresult (*copy_peer)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, std::size_t) = nullptr;
    CUresult (*memset_d8)(CUdeviceptr, unsigned char, std::size_t) = nullptr;
    CUresult (*stream_sync)(CUstream) = nullptr;
    CUresult (*host_register)(void*, std::size_t, unsigned int) = nullptr;
    CUresult (*host_unregister)(void*) = nullptr;

    std::mutex mutex;                 // guards contexts
    std::vector<CUcontext> contexts;  // primary contexts retained, by device (never released)
};

template <typename F>
bool resolve(void* lib, const char* symbol, F& out, std::string& missing) {
    out = reinterpret_cast<F>(::dlsym(lib, symbol));
    if (out == nullptr && missing.empty()) missing = symbol;
    return out != nullptr;
}

std::string text_of(const Driver& d, CUresult rc) {
    const char* name = nullptr;
    const char* what = nullptr;
    if (d.error_name == nullptr || d.error_name(rc, &name) != CUDA_SUCCESS) name = "CUDA_ERROR_?";
    if (d.error_string == nullptr || d.error_string(rc, &what) != CUDA_SUCCESS) what = "unknown";
    return fmt::format("{} ({}, code {})", name, what, static_cast<int>(rc));
}

// Loads and initialises the driver once; the result (usable or why not) is kept.
Driver& driver() {
    static Driver* instance = [] {
        auto* d = new Driver();  // never freed: used until exit
        void* lib = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (lib == nullptr) {
            const char* why = ::dlerror();
            d->unusable = fmt::format("no CUDA driver: libcuda.so.1 could not be loaded ({}); is the NVIDIA driver "
                                      "installed?",
                                      why != nullptr ? why : "no reason given");
            return d;
        }
        std::string missing;
        resolve(lib, "cuGetErrorName", d->error_name, missing);
        resolve(lib, "cuGetErrorString", d->error_string, missing);
        resolve(lib, "cuInit", d->init, missing);
        resolve(lib, "cuDriverGetVersion", d->driver_version, missing);
        resolve(lib, "cuDeviceGetCount", d->device_count, missing);
        resolve(lib, "cuDeviceGet", d->device_get, missing);
        resolve(lib, "cuDevicePrimaryCtxRetain", d->primary_retain, missing);
        resolve(lib, "cuCtxPushCurrent_v2", d->ctx_push, missing);
        resolve(lib, "cuCtxPopCurrent_v2", d->ctx_pop, missing);
        resolve(lib, "cuMemAlloc_v2", d->mem_alloc, missing);
        resolve(lib, "cuMemFree_v2", d->mem_free, missing);
        resolve(lib, "cuMemGetInfo_v2", d->mem_info, missing);
        resolve(lib, "cuIpcGetMemHandle", d->ipc_get, missing);
        resolve(lib, "cuIpcOpenMemHandle_v2", d->ipc_open, missing);
        resolve(lib, "cuIpcCloseMemHandle", d->ipc_close, missing);
        resolve(lib, "cuMemcpyHtoD_v2", d->copy_htod, missing);
        resolve(lib, "cuMemcpyDtoH_v2", d->copy_dtoh, missing);
        resolve(lib, "cuMemcpyDtoD_v2", d->copy_dtod, missing);
        resolve(lib, "cuMemcpyPeer", d->copy_peer, missing);
        resolve(lib, "cuMemsetD8_v2", d->memset_d8, missing);
        resolve(lib, "cuStreamSynchronize", d->stream_sync, missing);
        resolve(lib, "cuMemHostRegister_v2", d->host_register, missing);
        resolve(lib, "cuMemHostUnregister", d->host_unregister, missing);
        if (!missing.empty()) {
            d->unusable = fmt::format("the CUDA driver's libcuda.so.1 lacks {} (a driver too old for this library)",
                                      missing);
            return d;
        }
        const CUresult rc = d->init(0);
        if (rc == CUDA_ERROR_NO_DEVICE) {
            const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
            d->unusable = fmt::format("no CUDA device is visible to this process (CUDA_VISIBLE_DEVICES {})",
                                      visible != nullptr ? fmt::format("'{}'", visible) : std::string("unset"));
        } else if (rc != CUDA_SUCCESS) {
            int version = 0;
            (void)d->driver_version(&version);
            d->unusable = fmt::format("the CUDA driver (version {}.{}) did not start: cuInit: {}", version / 1000,
                                      version % 1000 / 10, text_of(*d, rc));
        }
        return d;
    }();
    return *instance;
}

// The primary context of `device`, retained once per process.
CUresult primary_context(Driver& d, int device, CUcontext& out) {
    std::lock_guard guard(d.mutex);
    if (static_cast<std::size_t>(device) < d.contexts.size() && d.contexts[static_cast<std::size_t>(device)] != nullptr) {
        out = d.contexts[static_cast<std::size_t>(device)];
        return CUDA_SUCCESS;
    }
    CUdevice dev = 0;
    if (CUresult rc = d.device_get(&dev, device); rc != CUDA_SUCCESS) return rc;
    CUcontext ctx = nullptr;
    if (CUresult rc = d.primary_retain(&ctx, dev); rc != CUDA_SUCCESS) return rc;
    if (d.contexts.size() <= static_cast<std::size_t>(device)) d.contexts.resize(static_cast<std::size_t>(device) + 1);
    d.contexts[static_cast<std::size_t>(device)] = ctx;
    out = ctx;
    return CUDA_SUCCESS;
}

// `device`'s primary context current for the scope; the caller's back after.
class ContextScope {
public:
    ContextScope(Driver& d, int device) : d_(d) {
        CUcontext ctx = nullptr;
        status_ = primary_context(d, device, ctx);
        if (status_ == CUDA_SUCCESS) {
            status_ = d.ctx_push(ctx);
            pushed_ = status_ == CUDA_SUCCESS;
        }
    }
    ~ContextScope() {
        CUcontext popped = nullptr;
        if (pushed_) (void)d_.ctx_pop(&popped);
    }
    ContextScope(const ContextScope&) = delete;
    ContextScope& operator=(const ContextScope&) = delete;
    CUresult status() const noexcept { return status_; }

private:
    Driver& d_;
    CUresult status_ = CUDA_SUCCESS;
    bool pushed_ = false;
};

CUdeviceptr dptr(const void* p) noexcept { return static_cast<CUdeviceptr>(reinterpret_cast<std::uintptr_t>(p)); }
void* vptr(CUdeviceptr p) noexcept { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(p)); }

dragonError_t failed_call(const Driver& d, const std::string& what, const char* call, CUresult rc) {
    return failf(DRAGON_MEMORY_ERRNO, "{}: {}: {}", what, call, text_of(d, rc));
}

// The driver, usable, with `device` among its devices; else why not.
dragonError_t usable_device(int device, const std::string& who, Driver*& out) {
    Driver& d = driver();
    if (!d.unusable.empty())
        return failf(DRAGON_MEMORY_ERRNO, "{}: GPU device {} cannot be used: {}", who, device, d.unusable);
    int count = 0;
    if (CUresult rc = d.device_count(&count); rc != CUDA_SUCCESS) return failed_call(d, who, "cuDeviceGetCount", rc);
    if (device < 0 || device >= count)
        return failf(DRAGON_INVALID_ARGUMENT, "{}: GPU device {} does not exist: this process sees {} device{} (0{})",
                     who, device, count, count == 1 ? "" : "s",
                     count > 1 ? fmt::format(" to {}", count - 1) : std::string());
    out = &d;
    return DRAGON_SUCCESS;
}

}  // namespace

bool cuda_built_in() noexcept { return true; }

dragonError_t cuda_check_device(int device, const std::string& who) {
    Driver* d = nullptr;
    return usable_device(device, who, d);
}

dragonError_t cuda_alloc_shared(int device, std::size_t bytes, void*& out, IpcHandle& handle, const std::string& who) {
    Driver* d = nullptr;
    if (dragonError_t rc = usable_device(device, who, d)) return rc;
    ContextScope scope(*d, device);
    if (scope.status() != CUDA_SUCCESS) return failed_call(*d, who, "the device's primary context", scope.status());
    CUdeviceptr ptr = 0;
    if (CUresult rc = d->mem_alloc(&ptr, bytes); rc != CUDA_SUCCESS) {
        std::size_t free_bytes = 0, total_bytes = 0;
        (void)d->mem_info(&free_bytes, &total_bytes);
        return failf(rc == CUDA_ERROR_OUT_OF_MEMORY ? DRAGON_OUT_OF_SPACE : DRAGON_MEMORY_ERRNO,
                     "{}: cuMemAlloc of {} B on GPU device {} failed: {} (the device has {} B free of {} B)", who,
                     bytes, device, text_of(*d, rc), free_bytes, total_bytes);
    }
    CUipcMemHandle h{};
    if (CUresult rc = d->ipc_get(&h, ptr); rc != CUDA_SUCCESS) {
        (void)d->mem_free(ptr);
        return failed_call(*d, who, "cuIpcGetMemHandle", rc);
    }
    std::memcpy(handle.bytes, &h, sizeof h);
    out = vptr(ptr);
    return DRAGON_SUCCESS;
}

void cuda_free(int device, void* ptr) noexcept {
    Driver& d = driver();
    if (!d.unusable.empty()) return;
    ContextScope scope(d, device);
    if (scope.status() == CUDA_SUCCESS) (void)d.mem_free(dptr(ptr));
}

dragonError_t cuda_open_shared(int device, const IpcHandle& handle, void*& out, const std::string& who) {
    Driver* d = nullptr;
    if (dragonError_t rc = usable_device(device, who, d)) return rc;
    ContextScope scope(*d, device);
    if (scope.status() != CUDA_SUCCESS) return failed_call(*d, who, "the device's primary context", scope.status());
    CUipcMemHandle h{};
    std::memcpy(&h, handle.bytes, sizeof h);
    CUdeviceptr ptr = 0;
    if (CUresult rc = d->ipc_open(&ptr, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS); rc != CUDA_SUCCESS)
        return failf(DRAGON_MEMORY_ERRNO, "{}: opening its device memory (CUDA IPC handle, GPU device {}) failed: {}",
                     who, device, text_of(*d, rc));
    out = vptr(ptr);
    return DRAGON_SUCCESS;
}

void cuda_close_shared(int device, void* ptr) noexcept {
    Driver& d = driver();
    if (!d.unusable.empty()) return;
    ContextScope scope(d, device);
    if (scope.status() == CUDA_SUCCESS) (void)d.ipc_close(dptr(ptr));
}

dragonError_t cuda_copy(void* dst, CopyEnd dst_end, const void* src, CopyEnd src_end, std::size_t bytes,
                        const std::string& what) {
    if (bytes == 0) return DRAGON_SUCCESS;
    const int device = dst_end.on_device() ? dst_end.device : src_end.device;
    Driver* d = nullptr;
    if (dragonError_t rc = usable_device(device, what, d)) return rc;
    if (dst_end.on_device() && src_end.on_device() && dst_end.device != src_end.device) {
        CUcontext dst_ctx = nullptr, src_ctx = nullptr;
        CUresult rc = primary_context(*d, dst_end.device, dst_ctx);
        if (rc == CUDA_SUCCESS) rc = primary_context(*d, src_end.device, src_ctx);
        ContextScope scope(*d, dst_end.device);
        if (rc == CUDA_SUCCESS) rc = scope.status();
        if (rc == CUDA_SUCCESS) rc = d->copy_peer(dptr(dst), dst_ctx, dptr(src), src_ctx, bytes);
        if (rc == CUDA_SUCCESS) rc = d->stream_sync(nullptr);  // peer copies return before they are done
        if (rc != CUDA_SUCCESS)
            return failf(DRAGON_MEMORY_ERRNO, "{}: cuMemcpyPeer of {} B from GPU device {} to GPU device {}: {}", what,
                         bytes, src_end.device, dst_end.device, text_of(*d, rc));
        return DRAGON_SUCCESS;
    }
    ContextScope scope(*d, device);
    if (scope.status() != CUDA_SUCCESS) return failed_call(*d, what, "the device's primary context", scope.status());
    CUresult rc = CUDA_SUCCESS;
    const char* kind = "";
    if (dst_end.on_device() && src_end.on_device()) {
        kind = "device to device";
        const auto* s = static_cast<const unsigned char*>(src);
        const auto* t = static_cast<const unsigned char*>(dst);
        if (s == t) return DRAGON_SUCCESS;
        if (s < t + bytes && t < s + bytes) {
            // Overlapping ranges of one allocation (the copy has no memmove promise):
            // through a staging buffer of our own.
            CUdeviceptr staging = 0;
            rc = d->mem_alloc(&staging, bytes);
            if (rc != CUDA_SUCCESS)
                return failf(DRAGON_MEMORY_ERRNO,
                             "{}: overlapping ranges need a {} B staging buffer on GPU device {}: {}", what, bytes,
                             device, text_of(*d, rc));
            rc = d->copy_dtod(staging, dptr(src), bytes);
            if (rc == CUDA_SUCCESS) rc = d->copy_dtod(dptr(dst), staging, bytes);
            if (rc == CUDA_SUCCESS) rc = d->stream_sync(nullptr);
            (void)d->mem_free(staging);
        } else {
            rc = d->copy_dtod(dptr(dst), dptr(src), bytes);
            if (rc == CUDA_SUCCESS) rc = d->stream_sync(nullptr);  // device to device returns before it is done
        }
    } else if (dst_end.on_device()) {
        kind = "host to device";
        rc = d->copy_htod(dptr(dst), src, bytes);
    } else {
        kind = "device to host";
        rc = d->copy_dtoh(dst, dptr(src), bytes);
    }
    if (rc != CUDA_SUCCESS)
        return failf(DRAGON_MEMORY_ERRNO, "{}: copying {} B {} (GPU device {}): {}", what, bytes, kind, device,
                     text_of(*d, rc));
    return DRAGON_SUCCESS;
}

dragonError_t cuda_zero(int device, void* ptr, std::size_t bytes, const std::string& what) {
    if (bytes == 0) return DRAGON_SUCCESS;
    Driver* d = nullptr;
    if (dragonError_t rc = usable_device(device, what, d)) return rc;
    ContextScope scope(*d, device);
    CUresult rc = scope.status();
    if (rc == CUDA_SUCCESS) rc = d->memset_d8(dptr(ptr), 0, bytes);
    if (rc == CUDA_SUCCESS) rc = d->stream_sync(nullptr);
    if (rc != CUDA_SUCCESS)
        return failf(DRAGON_MEMORY_ERRNO, "{}: zeroing {} B on GPU device {}: {}", what, bytes, device,
                     text_of(*d, rc));
    return DRAGON_SUCCESS;
}

dragonError_t cuda_host_register(int device, void* ptr, std::size_t bytes, const std::string& who) {
    Driver* d = nullptr;
    if (dragonError_t rc = usable_device(device, who, d)) return rc;
    ContextScope scope(*d, device);
    CUresult rc = scope.status();
    if (rc == CUDA_SUCCESS) rc = d->host_register(ptr, bytes, CU_MEMHOSTREGISTER_PORTABLE);
    if (rc != CUDA_SUCCESS)
        return failf(rc == CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED ? DRAGON_INVALID_OPERATION : DRAGON_MEMORY_ERRNO,
                     "{}: page-locking {} B for GPU device {} (cuMemHostRegister): {}", who, bytes, device,
                     text_of(*d, rc));
    return DRAGON_SUCCESS;
}

dragonError_t cuda_host_unregister(int device, void* ptr, const std::string& who) {
    Driver* d = nullptr;
    if (dragonError_t rc = usable_device(device, who, d)) return rc;
    ContextScope scope(*d, device);
    CUresult rc = scope.status();
    if (rc == CUDA_SUCCESS) rc = d->host_unregister(ptr);
    if (rc != CUDA_SUCCESS)
        return failf(rc == CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED ? DRAGON_INVALID_OPERATION : DRAGON_MEMORY_ERRNO,
                     "{}: cuMemHostUnregister: {}", who, text_of(*d, rc));
    return DRAGON_SUCCESS;
}

}  // namespace dragonmem::detail
